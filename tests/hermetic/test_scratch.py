"""Temporary names beside outputs: a writer killed with SIGKILL leaves them, and the next run finds and removes
exactly those, nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT
from hermetic import failpoint, scratch


def test_a_writer_killed_mid_write_leaves_only_its_temporary_name(tmp_path: Path) -> None:
    final = tmp_path / "out" / "provenance.json"
    final.parent.mkdir()
    code = (
        "import sys; from pathlib import Path; from hermetic import scratch; scratch.write_text(Path(sys.argv[1]), 'x')"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "site_scons"), failpoint.VARIABLE: "write provenance.json"}
    child = subprocess.run([sys.executable, "-c", code, str(final)], env=env, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL and "fail point 'write provenance.json'" in child.stderr
    assert not final.exists() and scratch.part_path(final).read_text() == "x"
    assert scratch.remove_leftovers([final]) == [scratch.part_path(final)]
    scratch.write_text(final, "whole")  # without the fail point: written and renamed
    assert final.read_text() == "whole" and sorted(p.name for p in final.parent.iterdir()) == ["provenance.json"]


def test_leftovers_are_those_of_the_named_outputs_only(tmp_path: Path) -> None:
    deps, dist = tmp_path / "deps", tmp_path / "dist"
    artifact, archive, sums = deps / "zlib-1.3.1.tar.zst", dist / "cpython.tar.gz", dist / "SHA256SUMS"
    deps.mkdir()
    artifact.write_bytes(b"built")  # an output itself is never a leftover
    left = [
        scratch.unique_part(artifact)[1],  # packing, killed
        scratch.part_path(sums),  # written whole, killed before the rename
        scratch.staged_path(archive),  # staged, killed before its checks passed
        scratch.unique_part(scratch.staged_path(archive))[1],
        scratch.tree_path(scratch.staged_path(archive)),
    ]
    for path in left[1:3]:
        path.write_bytes(b"part")
    left[4].mkdir()
    (left[4] / "python").mkdir()
    kept = [
        deps / ".bzip2-1.0.8.tar.zst.a1b2c3.part",  # another output's (not asked about here)
        deps / "zlib-1.3.1.tar.zst.part",  # not a name scratch makes
        dist / scratch.STAGING / "other.tar.gz",
    ]
    for path in kept:
        path.write_bytes(b"keep")
    removed = scratch.remove_leftovers([artifact, archive, sums])
    assert sorted(removed) == sorted(left)
    assert all(p.exists() for p in [artifact, *kept])
    assert not any(os.path.lexists(p) for p in left)


def test_an_emptied_staging_directory_goes_too(tmp_path: Path) -> None:
    archive = tmp_path / "dist" / "a+b.tar.zst"  # glob characters in a name are taken literally
    staged = scratch.staged_path(archive)
    staged.write_bytes(b"x")
    scratch.unique_part(staged)
    assert len(scratch.remove_leftovers([archive])) == 2
    assert list(archive.parent.iterdir()) == []
