#!/usr/bin/env python3
"""Wall times of a cold build, a no-op rebuild, and a rebuild restored from the cache, in one invocation.

    python benchmarks/build_times.py [named targets, default: libs] [name=value ...]

Uses a fresh build directory and a fresh SCons cache (both temporary) so the first build runs every
action; downloads and toolchains come from the user cache (fetched first, not timed). Prints seconds
and each figure as a ratio of the cold build.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from scons_run import artifact_digests, scons


def timed_scons(*args: str) -> tuple[float, int]:
    """Run scons; return its wall time and how many sandboxed actions it ran."""
    started = time.monotonic()
    output = scons(*args)
    return time.monotonic() - started, sum(line.startswith("[start] build ") for line in output.splitlines())


def main() -> None:
    targets = [a for a in sys.argv[1:] if "=" not in a] or ["libs"]
    variables = [a for a in sys.argv[1:] if "=" in a]
    with tempfile.TemporaryDirectory(prefix="build-times-") as tmp:
        build, cache = Path(tmp) / "build", Path(tmp) / "cache"
        common = [*variables, f"build_dir={build}", f"scons_cache={cache}", f"dist_dir={Path(tmp) / 'dist'}"]
        scons("fetch", "toolchain", *common)
        cold, cold_actions = timed_scons(*targets, *common)
        built = artifact_digests(build, build)
        noop, noop_actions = timed_scons(*targets, *common)
        shutil.rmtree(build)
        restored, restore_actions = timed_scons(*targets, *common)
        same = artifact_digests(build, build) == built
    print(f"targets: {' '.join(targets)} {' '.join(variables)}")
    print(f"cold build          {cold:8.1f} s   1.000   {cold_actions} actions run")
    print(f"no-op rebuild       {noop:8.1f} s   {noop / cold:.3f}   {noop_actions} actions run")
    print(f"restore from cache  {restored:8.1f} s   {restored / cold:.3f}   {restore_actions} actions run")
    verdict = "byte-identical to" if same else "DIFFERENT from"
    print(f"{len(built)} artifacts restored from the cache, {verdict} the cold build's")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
