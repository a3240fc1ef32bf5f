"""What killed builds leave in the shared SCons cache, and which of it the next build may remove while other
builds are using the same cache."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from hermetic.verified_cache import STALE_SECONDS, remove_stale_temporaries


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _age(path: Path, seconds: float) -> Path:
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def test_only_temporaries_no_running_build_can_own_are_removed(tmp_path: Path) -> None:
    shard = tmp_path / "cache" / "3F"
    shard.mkdir(parents=True)
    (tmp_path / "cache" / "config").write_text("{}")
    entry = shard / ("3f" * 32)
    entry.write_bytes(b"artifact")
    sidecar = shard / f"{entry.name}.sha256"
    sidecar.write_text("digest\n")
    old_push = shard / "tmpk3j9x0aa"
    old_push.mkdir()
    (old_push / entry.name).write_bytes(b"half")
    _age(old_push, STALE_SECONDS + 60)
    young_push = shard / "tmpq8w7e6rt"  # another build may be pushing right now
    young_push.mkdir()
    old_sidecar = shard / ".sidecar-abc123"
    old_sidecar.touch()
    _age(old_sidecar, STALE_SECONDS + 60)
    young_sidecar = shard / ".sidecar-def456"
    young_sidecar.touch()
    orphan = shard / f".remote-{_dead_pid()}-140001-{entry.name}"  # its fetching process is gone
    orphan.write_bytes(b"half")
    live = shard / f".remote-{os.getpid()}-140001-{entry.name}"  # this process is fetching it
    live.write_bytes(b"half")
    removed = remove_stale_temporaries(tmp_path / "cache")
    assert sorted(removed) == sorted([old_push, old_sidecar, orphan])
    assert all(p.exists() for p in (entry, sidecar, young_push, young_sidecar, live, tmp_path / "cache" / "config"))


def test_a_missing_cache_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert remove_stale_temporaries(tmp_path / "none") == []
