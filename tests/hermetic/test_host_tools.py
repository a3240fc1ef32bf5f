"""Host tools are identified by their release (dpkg package and upstream version, or what the tool says), so
action keys survive a distribution's rebuild of the same release; a tool that names no release falls back
to its digest. Real dpkg, real binaries."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from hermetic import host_tools
from hermetic.sandbox import HOST_TOOLS, host_tools_identity


def dpkg_version(package: str) -> str:
    argv = ["dpkg-query", "--show", "--showformat=${Version}", package]
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a dpkg host (Debian)")


@pytest.mark.parametrize(
    ("debian", "upstream"),
    [
        ("4.3-4.1", "4.3"),
        ("5.36.0-7+deb12u2", "5.36.0"),
        ("1:2.3.4-5ubuntu1", "2.3.4"),
        ("1.3.4.20200120-3.1", "1.3.4.20200120"),
        ("1.34+dfsg-1.2+deb12u1", "1.34+dfsg"),
        ("0.5.12-2", "0.5.12"),
        ("3.0", "3.0"),  # a native package has no revision
        ("2:1.0-rc1-2", "1.0-rc1"),
    ],
)
def test_upstream_version_drops_epoch_and_revision(debian: str, upstream: str) -> None:
    assert host_tools.upstream_version(debian) == upstream


@needs_dpkg
def test_packaged_tools_are_named_by_package_and_upstream_version() -> None:
    identity = host_tools.identify(["make", "sh", "awk", "cp"])
    make = host_tools.upstream_version(dpkg_version("make"))
    assert identity["make"] == f"make {make}"
    # sh and awk are symlinks (dash, an alternative); on a merged /usr dpkg knows /bin/dash, not /usr/bin/dash.
    assert identity["sh"].startswith(f"{Path('/bin/sh').resolve().name} ")
    assert identity["awk"].split()[0] in {"mawk", "gawk", "original-awk", "busybox"}
    assert identity["cp"] == f"coreutils {host_tools.upstream_version(dpkg_version('coreutils'))}"
    assert not any(value.startswith("sha256:") for value in identity.values())


def test_an_absent_tool_is_missing(tmp_path: Path) -> None:
    assert host_tools.identify(["no-such-tool-here"], search_path=str(tmp_path)) == {"no-such-tool-here": "missing"}


def test_an_unpackaged_tool_reports_its_version_or_is_hashed(tmp_path: Path) -> None:
    talkative = tmp_path / "talkative"
    talkative.write_text("#!/bin/sh\necho\necho 'talkative (Example Tools) 2.7.1'\necho 'Copyright nobody'\n")
    mute = tmp_path / "mute"
    mute.write_text("#!/bin/sh\necho 'usage: mute FILE' >&2\nexit 64\n")
    for tool in (talkative, mute):
        tool.chmod(0o755)
    identity = host_tools.identify(["talkative", "mute"], search_path=str(tmp_path))
    assert identity["talkative"] == "talkative (Example Tools) 2.7.1"
    assert identity["mute"] == f"sha256:{hashlib.sha256(mute.read_bytes()).hexdigest()}"


def test_a_tool_waiting_for_input_does_not_hang_the_probe(tmp_path: Path) -> None:
    reader = tmp_path / "reader"
    reader.write_text('#!/bin/sh\nread line\necho "reader 1.0 $line"\n')
    reader.chmod(0o755)
    assert host_tools.identify(["reader"], search_path=str(tmp_path)) == {"reader": "reader 1.0"}


@needs_dpkg
def test_every_host_tool_of_the_sandbox_has_a_release_not_a_digest() -> None:
    identity = host_tools_identity()
    assert set(identity) == set(HOST_TOOLS)
    present = {tool: value for tool, value in identity.items() if value != "missing"}
    assert {"sh", "make", "perl"} <= set(present)
    assert all(not value.startswith("sha256:") and " " in value for value in present.values()), present
