"""uv's downloads list: entries named after our archive names, in the fields uv reads."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from hermetic.errors import ConfigError
from hermetic.pins import Pin
from pydist import uv_downloads
from pydist.__main__ import main
from pydist.distribution import DistNames
from pydist.matrix import BuildRequest
from pydist.options import BuildOptions

BASE = "https://example.invalid/releases/download/20261130T0000"


def names(version: str, target: str, options: str, tag: str = "20261130T0000") -> DistNames:
    pin = Pin(name="cpython", version=version, filename=f"Python-{version}.tar.xz", size=1, sha256="0" * 64, urls=())
    return DistNames(request=BuildRequest(target=target, python=pin, options=BuildOptions.parse(options)), tag=tag)


def test_a_release_build_is_the_default_variant_and_points_at_the_stripped_archive() -> None:
    dist = names("3.13.15", "x86_64-unknown-linux-gnu", "pgo+lto")
    archives = {dist.install_only: "a" * 64, dist.install_only_stripped: "b" * 64, dist.full: "c" * 64}
    document = uv_downloads.downloads(archives, BASE + "/")
    assert document == {
        "cpython-3.13.15-linux-x86_64-gnu": {
            "name": "cpython",
            "arch": {"family": "x86_64", "variant": None},
            "os": "linux",
            "libc": "gnu",
            "major": 3,
            "minor": 13,
            "patch": 15,
            "prerelease": "",
            "url": f"{BASE}/cpython-3.13.15-x86_64-unknown-linux-gnu-install_only_stripped-20261130T0000.tar.gz",
            "sha256": "b" * 64,
            "variant": None,
            "build": "20261130T0000",
        }
    }
    assert "version" not in document  # uv refuses a list with a top-level "version"


def test_a_freethreaded_build_is_the_freethreaded_variant() -> None:
    dist = names("3.13.15", "aarch64-apple-darwin", "freethreaded+pgo+lto")
    assert dist.install_only_stripped.startswith("cpython-3.13.15-aarch64-apple-darwin-freethreaded-install_only")
    [(key, entry)] = uv_downloads.downloads({dist.install_only_stripped: "d" * 64}, BASE).items()
    assert key == "cpython-3.13.15+freethreaded-darwin-aarch64-none"
    assert (entry["variant"], entry["os"], entry["libc"], entry["arch"]["family"]) == (
        "freethreaded",
        "darwin",
        "none",
        "aarch64",
    )
    # '+' is escaped in the URL path, as GitHub's download URLs escape it.
    assert entry["url"] == f"{BASE}/{dist.install_only_stripped}"


@pytest.mark.parametrize(
    ("options", "variant"),
    [
        ("noopt", None),
        ("debug", "debug"),
        ("freethreaded+debug", "freethreaded+debug"),
        ("freethreaded+noopt", "freethreaded"),
    ],
)
def test_every_option_set_parses_back_from_its_name(options: str, variant: str | None) -> None:
    dist = names("3.14.8", "aarch64-unknown-linux-gnu", options)
    for name in (dist.install_only, dist.install_only_stripped):
        parsed = uv_downloads.parse_install_only(name)
        assert parsed is not None
        assert (parsed.version, parsed.target, parsed.options, parsed.tag) == (
            "3.14.8",
            "aarch64-unknown-linux-gnu",
            options,
            "20261130T0000",
        )
        assert parsed.variant == variant
    assert uv_downloads.parse_install_only(dist.full) is None


def test_a_prerelease_version_fills_prerelease() -> None:
    [entry] = uv_downloads.downloads(
        {"cpython-3.15.0rc1-x86_64-unknown-linux-gnu-install_only-t1.tar.gz": "e" * 64}, BASE
    ).values()
    assert (entry["major"], entry["minor"], entry["patch"], entry["prerelease"]) == (3, 15, 0, "rc1")


def test_two_option_sets_that_uv_cannot_tell_apart_are_refused() -> None:
    release = names("3.13.15", "x86_64-unknown-linux-gnu", "pgo+lto")
    noopt = names("3.13.15", "x86_64-unknown-linux-gnu", "noopt")
    with pytest.raises(ConfigError, match=re.escape("would be the same uv entry cpython-3.13.15-linux-x86_64-gnu")):
        uv_downloads.downloads({release.install_only: "1" * 64, noopt.install_only: "2" * 64}, BASE)


def test_the_command_reads_a_directory_and_writes_the_file_atomically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = names("3.11.2", "x86_64-unknown-linux-gnu", "pgo+lto")
    (tmp_path / "d").mkdir()
    data = b"not really a tarball, but its digest is what the entry must carry"
    (tmp_path / "d" / dist.install_only).write_bytes(data)
    (tmp_path / "d" / "SHA256SUMS").write_text("ignored\n")
    out = tmp_path / "out" / "downloads.json"
    assert main(["uv-downloads", str(tmp_path / "d"), "--base-url", BASE, "-o", str(out)]) == 0
    [entry] = json.loads(out.read_text()).values()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["url"].endswith(dist.install_only)
    assert [p.name for p in out.parent.iterdir()] == ["downloads.json"]  # no temporary file left

    assert main(["uv-downloads", str(tmp_path / "out"), "--base-url", BASE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no install_only archives" in err[0]
