"""Archive, metadata and cross-archive rules, against the real noopt distribution and copies of it that
were changed to break one rule each (re-packed with the project's own deterministic packer)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from conftest import archive, unpack
from hermetic.archive_pack import pack_tree
from pydist.validate import validate
from pydist.validate.fips import module_mac

pytestmark = pytest.mark.integration

FULL_NAME = "cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-test.tar.zst"
INSTALL_ONLY_NAME = "cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-install_only-test.tar.gz"


@pytest.fixture(scope="module")
def trees(noopt_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("trees")
    return {
        "full": unpack(archive(noopt_dist, "full"), base / "full") / "python",
        "install_only": unpack(archive(noopt_dist, "install_only"), base / "install_only") / "python",
    }


def variant(tree: Path, dest: Path, change: Callable[[Path], None]) -> Path:
    """A hard-linked copy of `tree` changed by `change` (which must replace files, never edit them)."""
    copy = dest / "python"
    subprocess.run(["cp", "-al", str(tree), str(copy)], check=True)
    change(copy)
    return copy


def replace_text(path: Path, text: str) -> None:
    path.unlink()
    path.write_text(text)


def rules_for(paths: list[Path]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for violation in validate(paths).violations:
        found.setdefault(violation.rule, []).append(f"{violation.file}: {violation.message}")
    return found


def pack_full(tree: Path, out_dir: Path, name: str = FULL_NAME, first: tuple[str, ...] = ("PYTHON.json",)) -> Path:
    out = out_dir / name
    pack_tree(tree, out, mtime=0, prefix="python", first=first, zstd_level=1)
    return out


def test_the_real_archives_pass_clean(noopt_dist: Path) -> None:
    report = validate([archive(noopt_dist, k) for k in ("full", "install_only", "stripped")])
    assert report.violations == [], [str(v) for v in report.violations[:10]]
    assert report.checked_elf > 10 and report.checked_files > 1000


def test_archive_name(noopt_dist: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "python-3.13-linux.tar.zst"
    renamed.hardlink_to(archive(noopt_dist, "full"))
    found = rules_for([renamed])
    assert "archive.name" in found


def test_unreadable_archive(noopt_dist: Path, tmp_path: Path) -> None:
    truncated = tmp_path / FULL_NAME
    truncated.write_bytes(archive(noopt_dist, "full").read_bytes()[:1_000_000])
    report = validate([truncated])
    assert [(v.file, v.rule) for v in report.violations] == [(FULL_NAME, "archive.unreadable")]  # no follow-ons
    assert report.violations[0].message.startswith("truncated")


def test_members_escaping_python_dir(trees: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / FULL_NAME
    with (
        open(out, "wb") as raw,
        zstandard.ZstdCompressor().stream_writer(raw) as stream,
        tarfile.open(fileobj=stream, mode="w|") as tar,
    ):
        tar.add(trees["full"] / "PYTHON.json", arcname="python/PYTHON.json")
        for name in ("python/../escaped.txt", "/etc/evil", "other/top.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    escapes = rules_for([out]).get("archive.escape", [])
    assert {e.split(": ")[0].split(":", 1)[1] for e in escapes} == {
        "python/../escaped.txt",
        "/etc/evil",
        "other/top.txt",
    }
    assert not (tmp_path / "escaped.txt").exists()


def test_symlinks_leading_out_or_nowhere(trees: dict[str, Path], tmp_path: Path) -> None:
    def change(root: Path) -> None:
        (root / "install" / "bin" / "to-etc").symlink_to("/etc/passwd")
        (root / "install" / "bin" / "up-and-out").symlink_to("../../../../outside")
        (root / "install" / "bin" / "dangling").symlink_to("python3.99")

    found = rules_for([pack_full(variant(trees["full"], tmp_path, change), tmp_path)])
    messages = " ".join(found.get("archive.symlink", []))
    assert "to-etc" in messages and "up-and-out" in messages and "dangling" in messages


def test_python_json_must_be_first(trees: dict[str, Path], tmp_path: Path) -> None:
    out = pack_full(trees["full"], tmp_path, first=("build/run_tests.py", "PYTHON.json"))
    found = rules_for([out])
    assert any("is not the first member" in m for m in found["archive.python-json"])


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda d: d.pop("python_exe"), "'python_exe' is a required property"),
        (lambda d: d.update(version="7"), "version"),
        (lambda d: d.update(python_implementation_hex_version="x"), "python_implementation_hex_version"),
    ],
)
def test_python_json_schema(
    trees: dict[str, Path], tmp_path: Path, edit: Callable[[dict], object], fragment: str
) -> None:
    def change(root: Path) -> None:
        data = json.loads((root / "PYTHON.json").read_text())
        edit(data)
        replace_text(root / "PYTHON.json", json.dumps(data))

    found = rules_for([pack_full(variant(trees["full"], tmp_path, change), tmp_path)])
    assert any(fragment in m for m in found["archive.python-json"]), found.get("archive.python-json")


def test_python_json_consistency(trees: dict[str, Path], tmp_path: Path) -> None:
    def change(root: Path) -> None:
        data = json.loads((root / "PYTHON.json").read_text())
        data["python_platform_tag"] = "linux-aarch64"
        replace_text(root / "PYTHON.json", json.dumps(data))
        (root / "build" / "Modules" / "config.o").unlink()
        dynload = root / "install" / "lib" / "python3.13" / "lib-dynload"
        shutil.copyfile(
            dynload / "_testcapi.cpython-313-x86_64-linux-gnu.so",
            dynload / "_stray.cpython-313-x86_64-linux-gnu.so",
        )

    found = " ".join(rules_for([pack_full(variant(trees["full"], tmp_path, change), tmp_path)])["archive.consistency"])
    assert "python_platform_tag is 'linux-aarch64'" in found
    assert "build/Modules/config.o, which is not in the archive" in found
    assert "_stray.cpython-313-x86_64-linux-gnu.so is in the archive but not in build_info.extensions" in found


def test_name_and_metadata_must_agree(trees: dict[str, Path], tmp_path: Path) -> None:
    out = pack_full(trees["full"], tmp_path, name=FULL_NAME.replace("3.13.15", "3.13.16"))
    found = " ".join(rules_for([out])["archive.consistency"])
    assert "python_version is '3.13.15', the file name says '3.13.16'" in found


def test_python_symlinks(trees: dict[str, Path], tmp_path: Path) -> None:
    found = rules_for(
        [pack_full(variant(trees["full"], tmp_path, lambda r: (r / "install/bin/python").unlink()), tmp_path)]
    )
    assert "archive.python-symlinks" in found


def test_build_paths_in_scripts(trees: dict[str, Path], tmp_path: Path) -> None:
    def change(root: Path) -> None:
        (root / "install" / "bin" / "tool").write_text("#!/build/src/python\nprint('hi')\n")
        (root / "install" / "bin" / "pip-old").write_text("#!/install/bin/python\nprint('hi')\n")
        pc = root / "install" / "lib" / "pkgconfig" / "python-3.13.pc"
        replace_text(pc, pc.read_text().replace("prefix=${pcfiledir}/../..", "prefix=/build/out/install"))

    found = " ".join(rules_for([pack_full(variant(trees["full"], tmp_path, change), tmp_path)])["archive.build-paths"])
    assert "bin/tool" in found and "python-3.13.pc" in found and "bin/pip-old: its shebang" in found


def test_fips_module_must_be_identical_across_archives(
    noopt_dist: Path, trees: dict[str, Path], tmp_path: Path
) -> None:
    def change(root: Path) -> None:
        ssl = root / "share" / "ssl"
        data = bytearray((ssl / "ossl-modules" / "fips.so").read_bytes())
        data[100] ^= 0x01
        (ssl / "ossl-modules" / "fips.so").unlink()
        (ssl / "ossl-modules" / "fips.so").write_bytes(bytes(data))
        # Re-seal it, so this archive is consistent on its own and only the cross-archive rule can fail.
        for name in ("fipsmodule.cnf", "openssl-fips.cnf"):
            text = re.sub(r"module-mac = \S+", f"module-mac = {module_mac(bytes(data))}", (ssl / name).read_text())
            replace_text(ssl / name, text)

    changed = variant(trees["install_only"], tmp_path, change)
    out = tmp_path / INSTALL_ONLY_NAME
    pack_tree(changed, out, mtime=0, prefix="python", compression="gz")
    alone = rules_for([out])
    assert "fips.identical" not in alone and "fips.module-mac" not in alone
    together = rules_for([archive(noopt_dist, "full"), out])
    assert list(together.get("fips.identical", [])), together
