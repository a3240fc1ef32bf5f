"""A build asked to stop stops at once; damaged build state is noticed; host problems are one line.

Real scons runs in a private copy of the repository: a real SIGTERM during a real sandboxed configure step,
a real artifact damaged on disk, a PATH without bubblewrap or git, a build directory on a read-only mount.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import copy_repository, run_scons, scons_command

pytestmark = pytest.mark.integration

DEPS = Path("build/x86_64-unknown-linux-gnu/deps")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repository(tmp_path_factory.mktemp("stop") / "repo")


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (sandboxes left running would)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and str(os.getpid()) != entry.name:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def _wait_for(predicate: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigterm_stops_a_running_sandboxed_step(repo: Path, tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    log = build_dir / "x86_64-unknown-linux-gnu" / "logs" / "sqlite-3.53.4.log"
    work = build_dir / "x86_64-unknown-linux-gnu" / "work" / "sqlite-3.53.4"
    scons = subprocess.Popen(
        [*scons_command(), "-Q", "sqlite", "scons_cache=off", f"build_dir={build_dir}"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # sqlite's build step takes most of a minute: stop it in the middle of that step's compiles.
        _wait_for(lambda: log.is_file() and "\n$ make" in log.read_text(), "the sqlite build step", 300)
        time.sleep(2)
        assert scons.poll() is None, "the step ended before the signal could be sent"
        scons.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        stdout, stderr = scons.communicate(timeout=60)
        stopped_after = time.monotonic() - sent
    finally:
        if scons.poll() is None:
            scons.kill()
    assert scons.returncode == 128 + signal.SIGTERM, stdout + stderr
    errors = [line for line in stderr.splitlines() if line.startswith("scons: ***")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert "interrupted by SIGTERM during step" in errors[0] and str(log) in errors[0]
    assert stopped_after < 30, f"took {stopped_after:.1f}s to stop"
    assert "interrupted by SIGTERM" in log.read_text()  # the log is kept, and says why it ends
    assert (work / "src" / "configure").is_file()  # so is the work tree
    assert not (build_dir / "x86_64-unknown-linux-gnu" / "deps" / "sqlite-3.53.4.tar.zst").exists()
    assert not list((build_dir / "x86_64-unknown-linux-gnu" / "deps").glob("*.part"))
    assert _processes_mentioning(str(work)) == []  # no sandbox, configure or compiler left running
    with open(build_dir / ".lock", "a+") as lock:  # and no lock held
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_damaged_artifact_is_made_again_before_use(repo: Path) -> None:
    run_scons(repo, "zlib", check=True)
    artifact = repo / DEPS / "zlib-1.3.1.tar.zst"
    good = hashlib.sha256(artifact.read_bytes()).hexdigest()
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    time.sleep(1.1)  # SCons records whole seconds: a change within the second it was built looks untouched
    artifact.write_bytes(bytes(data))

    result = run_scons(repo, "zlib")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"zlib-1\.3\.1\.tar\.zst changed since it was built .* removed, making it again", result.stderr)
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == good


def test_a_failed_step_exits_with_the_action_error_code(repo: Path, tmp_path: Path) -> None:
    broken = copy_repository(tmp_path / "broken")
    recipe = broken / "site_scons" / "pydist" / "libraries.py"
    source = recipe.read_text()
    # Make zlib's configure fail: a recipe change, so the action key differs and nothing comes from the cache.
    marker = 'cmd("configure", "./configure", f"--prefix={DEPS}", "--static"),'
    assert marker in source
    recipe.write_text(source.replace(marker, 'sh("fail on purpose", "exit 3"), ' + marker, 1))
    result = run_scons(broken, "zlib")
    assert result.returncode == 7, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("scons: ***")]
    assert len(errors) == 1 and "step 'fail on purpose' failed (exit code 3)" in errors[0]


def _path_without(tmp_path: Path, *programs: str) -> str:
    """A PATH with everything of the current one except `programs` (by symlinking the rest)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not Path(directory).is_dir():
            continue
        for entry in Path(directory).iterdir():
            if entry.name not in programs and not (bin_dir / entry.name).exists():
                (bin_dir / entry.name).symlink_to(entry)
    return str(bin_dir)


@pytest.mark.parametrize(("missing", "expected"), [("bwrap", "bubblewrap (bwrap) is not installed"), ("git", None)])
def test_missing_host_programs(repo: Path, tmp_path: Path, missing: str, expected: str | None) -> None:
    env = {**os.environ, "PATH": _path_without(tmp_path, missing)}
    assert shutil.which(missing, path=env["PATH"]) is None
    result = subprocess.run(
        [*scons_command(), "-Q", "-n", f"build_dir={tmp_path / 'build'}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in result.stderr
    if expected is None:  # git only names the commit in the provenance: the build goes on without it
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "apt-get install bubblewrap" in lines[0]


@pytest.mark.parametrize("variable", ["build_dir", "cache_root"])
def test_read_only_directories_are_one_line(repo: Path, tmp_path: Path, variable: str) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir()
    others = {"build_dir": tmp_path / "build", "cache_root": tmp_path / "cache"}
    others[variable] = read_only / variable
    arguments = " ".join(f"{name}={path}" for name, path in others.items())
    script = (
        f"mount --bind {read_only} {read_only} && mount -o remount,bind,ro {read_only} && "
        f"exec {' '.join(scons_command())} -Q -n {arguments}"
    )
    unshared = ["unshare", "-m", "sh", "-c", script]
    result = subprocess.run(unshared, cwd=repo, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{variable}=" in lines[0] and "Read-only file system" in lines[0]


def test_a_full_disk_during_a_step_is_one_line_naming_where(repo: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    # 2 MiB holds the lock, logs and the work tree's first files, not zlib's unpacked source.
    script = (
        f"mount -t tmpfs -o size=2m tmpfs {small} && "
        f"exec {' '.join(scons_command())} -Q zlib scons_cache=off build_dir={small / 'build'}"
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=repo, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 7, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("scons: ***")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "no space left on the device holding" in errors[0] and str(small / "build") in errors[0]
    assert "build_dir=" in errors[0]
