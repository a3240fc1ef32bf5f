"""What a build killed with SIGKILL leaves, and that the next run removes it and finishes the job.

Real scons runs are killed at fail points (``HERMETIC_FAILPOINT``, see hermetic/failpoint.py): the process
kills itself with SIGKILL right after a step created its temporary file or directory, so no handler and no
``finally`` block runs, as under an out-of-memory killer or a CI runner's hard timeout. Each kind of step is
killed: a library build (in a sandboxed step and while packing), the distribution (assembly, validation,
install_only conversion, the runtime tests, stripping, SHA256SUMS, the SBOM, the provenance) and the remote
cache (a blob fetched but not yet in place). After each kill the test checks the temporary is there; after the
next run, that nothing temporary is left anywhere and the outputs are whole.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from webdav_server import start_webdav_server

from conftest import NOOPT_TARGET, copy_repository, scons_command

pytestmark = pytest.mark.integration

# Names only a temporary has (hermetic/scratch.py, hermetic/verified_cache.py, the validator's work).
TEMPORARY = re.compile(r"\..+\.part|\.staging|\..+\.tree|tmp[a-z0-9_]{8}|\.sidecar-.*|\.remote-\d+-.*|validate-.*")


def scons(project: Path, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run scons in `project`; with `failpoint`, the run is expected to kill itself there."""
    env = {k: v for k, v in os.environ.items() if k != "HERMETIC_FAILPOINT"}
    if failpoint:
        env["HERMETIC_FAILPOINT"] = failpoint
    result = subprocess.run(
        [*scons_command(), "-Q", *args], cwd=project, env=env, capture_output=True, text=True, timeout=3600
    )
    output = result.stdout[-4000:] + result.stderr[-3000:]
    if failpoint:
        assert result.returncode == -signal.SIGKILL, f"not killed at {failpoint!r}:\n{output}"
        assert f"fail point {failpoint!r}" in result.stderr or failpoint.endswith("*"), output
    else:
        assert result.returncode == 0, output
    return result


def temporaries(*roots: Path) -> list[Path]:
    """Every file or directory under `roots` whose name only a temporary has."""
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            found += [Path(dirpath, n) for n in dirnames + filenames if TEMPORARY.fullmatch(n)]
    return sorted(found)


def work_trees(build_dir: Path) -> list[str]:
    work = build_dir / NOOPT_TARGET / "work"
    return sorted(p.name for p in work.iterdir()) if work.is_dir() else []


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repository(tmp_path_factory.mktemp("killed") / "repo")


@pytest.mark.parametrize(
    ("failpoint", "left"),
    [
        ("step zlib-1.3.1 build", "work/zlib-1.3.1"),  # configured, about to compile
        ("pack zlib-1.3.1.tar.zst", "deps/.zlib-1.3.1.tar.zst."),  # half the artifact written
    ],
)
def test_a_library_build_killed_is_finished_by_the_next_run_with_nothing_left(
    repo: Path, tmp_path: Path, failpoint: str, left: str
) -> None:
    build_dir = tmp_path / "build"
    args = ("zlib", "scons_cache=off", f"build_dir={build_dir}")
    scons(repo, *args, failpoint=failpoint)
    target_dir = build_dir / NOOPT_TARGET
    assert any(str(p.relative_to(target_dir)).startswith(left) for p in target_dir.rglob("*")), left
    assert not (target_dir / "deps" / "zlib-1.3.1.tar.zst").exists()
    again = scons(repo, *args)
    if "pack" in failpoint:
        assert "removed 1 temporary file(s) left by an interrupted build: .zlib-1.3.1.tar.zst." in again.stderr
    assert temporaries(build_dir) == [] and work_trees(build_dir) == []
    assert (target_dir / "deps" / "zlib-1.3.1.tar.zst").is_file()


def test_a_distribution_killed_at_each_of_its_steps_is_finished_by_the_next_run_with_nothing_left(
    project: Path, noopt_dist: Path
) -> None:
    """One distribution (CPython and the libraries come from the cache the noopt build filled), killed at a
    later step on each run, each run resuming where the last was killed."""
    name = f"cpython-3.13.15-{NOOPT_TARGET}-noopt-killed"
    install_only = f"cpython-3.13.15-{NOOPT_TARGET}-noopt-install_only-killed"
    stripped = f"cpython-3.13.15-{NOOPT_TARGET}-noopt-install_only_stripped-killed"
    dist, build_dir = project / "dist" / name, project / "build"
    args = ("py=3.13", "options=noopt", "tag=killed")
    kills = [
        # (fail point, a temporary that must be there after the kill)
        (f"validate {name}.tar.zst", [dist / ".staging" / f"{name}.tar.zst", build_dir / NOOPT_TARGET / "work"]),
        (f"pack {install_only}.tar.gz", [dist / ".staging" / f".{install_only}.tar.gz.tree"]),
        (f"step runtime-tests-{install_only} runtime tests", [dist / ".staging" / f"{install_only}.tar.gz"]),
        (f"pack {stripped}.tar.gz", [dist / ".staging"]),
        ("write SHA256SUMS", [dist / ".SHA256SUMS.part"]),
        ("write sbom.cdx.json", [dist / ".sbom.cdx.json.part"]),
        ("write provenance.json", [dist / ".provenance.json.part"]),
    ]
    for failpoint, expected in kills:
        scons(project, *args, failpoint=failpoint)
        for path in expected:
            assert path.exists(), f"{failpoint}: {path} was not left"
    scons(project, *args)
    assert temporaries(dist, build_dir) == []
    assert not [t for t in work_trees(build_dir) if "killed" in t]
    archives = [f"{name}.tar.zst", f"{install_only}.tar.gz", f"{stripped}.tar.gz"]
    documents = ["SHA256SUMS", "sbom.cdx.json", "provenance.json"]
    assert sorted(p.name for p in dist.iterdir()) == sorted([*archives, *documents])


def test_a_restore_from_the_remote_cache_killed_before_the_entry_is_in_place(tmp_path: Path) -> None:
    server = start_webdav_server(tmp_path / "nginx")
    try:
        remote = (f"remote_cache={server.url}", "remote_cache_mode=rw")
        writer, reader = copy_repository(tmp_path / "writer"), copy_repository(tmp_path / "reader")
        scons(writer, "zlib", f"scons_cache={tmp_path / 'writer-cache'}", *remote)
        reader_cache = tmp_path / "reader-cache"
        scons(reader, "zlib", f"scons_cache={reader_cache}", *remote, failpoint="cache fetch *")
        [orphan] = [p for p in temporaries(reader_cache) if p.name.startswith(".remote-")]
        again = scons(reader, "zlib", f"scons_cache={reader_cache}", *remote)
        assert not orphan.exists() and temporaries(reader_cache, reader / "build") == []
        assert "[start] build" not in again.stdout  # restored, not built
    finally:
        server.stop()
