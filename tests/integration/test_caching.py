"""Caching: a second build is a no-op, a deleted build is restored from CacheDir, and a changed patch or
pin rebuilds exactly the artifacts that depend on it. Real builds of zlib, bzip2, ncurses and libedit."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import copy_repository, generated_sysroot_name, run_scons
from pydist.settings import default_cache_root

pytestmark = pytest.mark.integration

TARGETS = ("zlib", "bzip2", "libedit")  # libedit pulls in ncurses
DEPS = Path("build/x86_64-unknown-linux-gnu/deps")


class Build:
    """A private copy of the repository with its own CacheDir (downloads and toolchains are shared)."""

    def __init__(self, root: Path, cache: Path) -> None:
        self.root = root
        self.cache = cache

    def run(self, *extra: str) -> tuple[set[str], set[str], str]:
        """Build the targets; return (names of actions run, names restored from the cache, stdout)."""
        result = run_scons(self.root, *TARGETS, f"scons_cache={self.cache}", *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        ran = set(re.findall(r"^\[start\] build (\S+) ", result.stdout, re.M))
        restored = set(re.findall(r"^Retrieved `.*/deps/(\S+)\.tar\.zst' from cache", result.stdout, re.M))
        return ran, restored, result.stdout

    def digests(self) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (self.root / DEPS).glob("*.tar.zst")}


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    base = tmp_path_factory.mktemp("caching")
    return Build(copy_repository(base / "repo"), base / "scons-cache")


# Every library compiles against the target's generated glibc sysroot: an action of the build like them.
SYSROOT = generated_sysroot_name("x86_64-unknown-linux-gnu")
ALL = {SYSROOT, "zlib-1.3.1", "bzip2-1.0.8", "ncurses-6.5-20250216", "libedit-20250104-3.1"}


def test_cold_build_then_noop(build: Build) -> None:
    ran, _, _ = build.run()
    assert ran == ALL
    ran, restored, out = build.run()
    assert ran == set() and restored == set()
    assert "is up to date" in out


def test_deleted_build_is_restored_from_cache_without_running_actions(build: Build) -> None:
    before = build.digests()
    shutil.rmtree(build.root / "build")
    ran, restored, _ = build.run()
    assert ran == set()
    assert restored == ALL
    assert build.digests() == before


def test_changed_patch_rebuilds_only_its_library(build: Build) -> None:
    patch_dir = build.root / "patches" / "zlib" / "1.3.1"
    patch_dir.mkdir(parents=True)
    (patch_dir / "0001-test-marker.patch").write_text(
        "Test-only patch: add a marker line to the README.\n\n"
        "--- a/README\n+++ b/README\n@@ -1,3 +1,4 @@\n+marker\n"
        " ZLIB DATA COMPRESSION LIBRARY\n \n"
        " zlib 1.3.1 is a general purpose data compression library.  All the code is\n"
    )
    ran, _, _ = build.run()
    assert ran == {"zlib-1.3.1"}
    # The log says the patch was applied inside the sandbox.
    log = (build.root / "build/x86_64-unknown-linux-gnu/logs/zlib-1.3.1.log").read_text()
    assert "0000-0001-test-marker.patch" in log


def test_changed_patch_of_a_dependency_rebuilds_its_dependents(build: Build) -> None:
    patch_dir = build.root / "patches" / "ncurses" / "6.5-20250216"
    patch_dir.mkdir(parents=True)
    (patch_dir / "0001-test-marker.patch").write_text(
        "Test-only patch: add a marker file.\n\n--- /dev/null\n+++ b/TEST-MARKER\n@@ -0,0 +1 @@\n+marker\n"
    )
    ran, _, _ = build.run()
    assert ran == {"ncurses-6.5-20250216", "libedit-20250104-3.1"}


def test_patch_that_does_not_apply_is_one_clear_line(build: Build) -> None:
    patch = build.root / "patches" / "bzip2" / "1.0.8" / "0001-stale.patch"
    patch.parent.mkdir(parents=True)
    patch.write_text(
        "Test-only patch written against another version.\n\n"
        "--- a/bzlib.c\n+++ b/bzlib.c\n@@ -1,2 +1,2 @@\n"
        "-this line is not in bzlib.c\n+replacement\n context\n"
    )
    result = run_scons(build.root, "bzip2", f"scons_cache={build.cache}")
    patch.unlink()
    patch.parent.rmdir()
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("scons: ***")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "patches/bzip2/1.0.8/0001-stale.patch does not apply to bzip2-1.0.8" in errors[0]


def test_changed_pin_rebuilds_only_its_library(build: Build, tmp_path: Path) -> None:
    # A new bzip2 tarball: the pinned one plus a file, served from a distdir.
    lock = build.root / "sources.lock.toml"
    text = lock.read_text()
    original = re.search(r'sha256 = "(ab5a03176ee106d3[0-9a-f]+)"', text)
    assert original is not None
    source = default_cache_root() / "downloads" / "sha256" / "ab" / original.group(1)
    repacked = tmp_path / "bzip2-1.0.8-test.tar.gz"
    with tarfile.open(source) as old, tarfile.open(repacked, "w:gz") as new:
        for member in old:
            new.addfile(member, old.extractfile(member) if member.isfile() else None)
        extra = tarfile.TarInfo("bzip2-1.0.8/TEST-MARKER")
        extra.size = 7
        new.addfile(extra, io.BytesIO(b"marker\n"))
    data = repacked.read_bytes()
    text = text.replace('filename = "bzip2-1.0.8.tar.gz"', 'filename = "bzip2-1.0.8-test.tar.gz"')
    text = text.replace("size = 810029", f"size = {len(data)}")
    text = text.replace(original.group(1), hashlib.sha256(data).hexdigest())
    lock.write_text(text)
    ran, _, _ = build.run(f"distdir={tmp_path}")
    assert ran == {"bzip2-1.0.8"}


def test_corrupt_cache_entry_is_rebuilt_not_restored(build: Build) -> None:
    zlib = build.root / DEPS / "zlib-1.3.1.tar.zst"
    digest = hashlib.sha256(zlib.read_bytes()).hexdigest()
    [sidecar] = [p for p in build.cache.rglob("*.sha256") if p.read_text().strip() == digest]
    entry = sidecar.with_name(sidecar.name.removesuffix(".sha256"))
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x01
    entry.chmod(0o644)
    entry.write_bytes(bytes(data))
    shutil.rmtree(build.root / "build")
    result = run_scons(build.root, *TARGETS, f"scons_cache={build.cache}")
    assert result.returncode == 0, result.stdout + result.stderr
    ran = set(re.findall(r"^\[start\] build (\S+) ", result.stdout, re.M))
    assert ran == {"zlib-1.3.1"}
    assert "is corrupt; removed, building it again" in result.stderr
    assert hashlib.sha256(zlib.read_bytes()).hexdigest() == digest  # the rebuild gives the same bytes
