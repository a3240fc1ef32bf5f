"""The scons command line: defaults in -h, and one clear line for every mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT, copy_repository, run_scons
from hermetic.errors import LockError

pytestmark = pytest.mark.integration


def assert_one_line_error(result_stderr: str, *fragments: str) -> None:
    lines = [line for line in result_stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result_stderr
    assert lines[0].startswith("scons: *** ")
    assert "Traceback" not in result_stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_lists_every_variable_and_its_default(tmp_path: Path) -> None:
    result = run_scons(REPO_ROOT, "-h", "target=aarch64-apple-darwin", f"build_dir={tmp_path / 'build'}")
    assert result.returncode == 0, result.stderr
    for name, default in [
        ("target", "[x86_64-unknown-linux-gnu]"),
        ("py", "[3.13]"),
        ("options", "[pgo+lto]"),
    ]:
        assert f"  {name} " in result.stdout and default in result.stdout
    for name in ("distdir", "mirrors", "scons_cache", "cache_root", "jobs", "debian_mirror"):
        assert f"  {name} " in result.stdout
    assert "fetch" in result.stdout and "openssl" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["target=x86_64-linux"],
            ["target=x86_64-linux", "valid: aarch64-unknown-linux-gnu, x86_64-unknown-linux-gnu"],
        ),
        (["py=3.9"], ["py=3.9", "3.10, 3.11, 3.12, 3.13, 3.14"]),
        (["py=3.13.99"], ["py=3.13.99", "not pinned", "3.13.15"]),
        (["py=three"], ["not a Python version"]),
        (["options=lto"], ["options=lto", "pgo+lto, freethreaded+pgo+lto"]),
        (["py=3.11", "options=freethreaded+pgo+lto"], ["needs Python 3.13 or newer"]),
        (["pyy=3.11"], ["unknown variable pyy=", "valid variables:"]),
        (["jobs=many"], ["jobs=many"]),
        (["distdir=/nonexistent/dir"], ["distdir=/nonexistent/dir is not a directory"]),
        (
            ["opensll"],
            ["unknown named target 'opensll'", "dist, cpython, libs, fetch, toolchain, fips-provider, zlib", "openssl"],
        ),
    ],
)
def test_mistakes_are_one_line_errors(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    result = run_scons(REPO_ROOT, "-n", *args, f"build_dir={tmp_path / 'build'}")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, *fragments)


def test_macos_target_stops_at_once_on_linux(tmp_path: Path) -> None:
    result = run_scons(REPO_ROOT, "target=aarch64-apple-darwin", "py=3.11", f"build_dir={tmp_path / 'build'}")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "aarch64-apple-darwin", "macOS")
    assert "[start]" not in result.stdout
    assert not (tmp_path / "build" / "aarch64-apple-darwin").exists()


def test_a_cross_build_plans_the_build_python_of_the_build_host(tmp_path: Path) -> None:
    result = run_scons(REPO_ROOT, "-n", "target=aarch64-unknown-linux-gnu", f"build_dir={tmp_path / 'build'}")
    assert result.returncode == 0, result.stderr
    planned = [line for line in result.stdout.splitlines() if line.startswith("would build ")]
    aarch64 = [line for line in planned if "(aarch64-unknown-linux-gnu)" in line]
    host = [line for line in planned if "(x86_64-unknown-linux-gnu)" in line]
    assert any(line.startswith("would build cpython-3.13.15-pgo+lto (aarch64") for line in aarch64)
    assert any(line.startswith("would build openssl-3.5.7 (aarch64") for line in aarch64)
    # The build Python: the build host's own noopt CPython of the same version, with its own libraries.
    assert any(line.startswith("would build cpython-3.13.15-noopt (x86_64") for line in host)
    assert planned.index(next(line for line in host if "cpython" in line)) < planned.index(
        next(line for line in aarch64 if "cpython" in line)
    )


def test_minor_without_fips_patches_is_refused_and_only_planned(tmp_path: Path) -> None:
    result = run_scons(REPO_ROOT, "py=3.14", f"build_dir={tmp_path / 'build'}")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "CPython 3.14 has no patch series", "FIPS")
    planned = run_scons(REPO_ROOT, "-n", "py=3.14", f"build_dir={tmp_path / 'build'}")
    assert planned.returncode == 0, planned.stderr
    assert "(planning only)" in planned.stderr
    assert "would build cpython-3.14.8-pgo+lto (x86_64-unknown-linux-gnu)" in planned.stdout


def test_unfetchable_source_names_the_file_and_where_to_put_it(tmp_path: Path) -> None:
    # CPython 3.11.16 is pinned from upstream only, which these machines cannot reach.
    distdir = tmp_path / "offline"
    distdir.mkdir()
    result = run_scons(REPO_ROOT, "fetch", "py=3.11.16", f"distdir={distdir}", f"build_dir={tmp_path / 'build'}")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("scons: ***")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "Python-3.11.16.tar.xz" in errors[0] and str(distdir) in errors[0]
    assert "91bcdebfdde239a003ae93738a7fce0f9230fee5c4bc2b86f6e6e8c6f98aabe8" in errors[0]


def test_a_second_build_in_the_same_build_dir_is_refused(tmp_path: Path) -> None:
    import fcntl

    build_dir = tmp_path / "build"
    build_dir.mkdir()
    with open(build_dir / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 4242\n")
        held.flush()
        result = run_scons(REPO_ROOT, "fetch", f"build_dir={build_dir}")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "is in use by a running build (pid 4242)", "build_dir=")


# Each pin file, and the target whose build reads it on this (x86_64 Linux) host.
PIN_FILES = {
    "x86_64-unknown-linux-gnu.toml": "x86_64-unknown-linux-gnu",
    "compilers/llvm-19-debian12-x86_64.toml": "x86_64-unknown-linux-gnu",
    "tools/bolt-19-debian12-x86_64.toml": "x86_64-unknown-linux-gnu",
    "tools/zig-0.17.1-x86_64.toml": "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu.toml": "aarch64-unknown-linux-gnu",
    "emulators/qemu-user-debian12-x86_64.toml": "aarch64-unknown-linux-gnu",
    "aarch64-apple-darwin.toml": "aarch64-apple-darwin",
}


# Pin files that hold no digest to damage (the x86_64 Linux target pins no package: its sysroot is generated).
NO_DIGEST = {"x86_64-unknown-linux-gnu.toml", "aarch64-apple-darwin.toml"}


@pytest.fixture(scope="module")
def pin_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repository(tmp_path_factory.mktemp("pins") / "repo")


@pytest.mark.parametrize(
    ("pin_file", "damage"),
    [
        *((pin_file, "broken TOML") for pin_file in PIN_FILES),
        *((pin_file, "short sha256") for pin_file in PIN_FILES if pin_file not in NO_DIGEST),
    ],
)
def test_a_malformed_toolchain_pin_is_one_line_and_exit_3(pin_project: Path, pin_file: str, damage: str) -> None:
    path = pin_project / "toolchains" / pin_file
    original = path.read_text()
    if damage == "broken TOML":
        damaged = original + "\nbroken = [\n"
    else:
        damaged = re.sub(r'sha256 = "([0-9a-f]{6})[0-9a-f]{58}"', r'sha256 = "\1"', original, count=1)
    assert damaged != original
    path.write_text(damaged)
    try:
        result = run_scons(pin_project, "-n", "fetch", f"target={PIN_FILES[pin_file]}")
    finally:
        path.write_text(original)
    assert result.returncode == LockError.exit_code, result.stdout[-2000:] + result.stderr[-2000:]
    assert_one_line_error(result.stderr, pin_file.rpartition("/")[2])
