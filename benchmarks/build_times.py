#!/usr/bin/env python3
"""Wall times of a cold build, a no-op rebuild, and a rebuild restored from the cache, in one invocation.

    python benchmarks/build_times.py [named targets, default: libs] [name=value ...]

Uses a fresh build directory and a fresh SCons cache (both temporary) so the first build runs every
action; downloads and toolchains come from the user cache (fetched first, not timed). Prints seconds
and each figure as a ratio of the cold build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def scons(*args: str) -> float:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "SCons", "-Q", *args], cwd=REPO, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"scons {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    targets = [a for a in sys.argv[1:] if "=" not in a] or ["libs"]
    variables = [a for a in sys.argv[1:] if "=" in a]
    with tempfile.TemporaryDirectory(prefix="build-times-") as tmp:
        build, cache = Path(tmp) / "build", Path(tmp) / "cache"
        common = [*variables, f"build_dir={build}", f"scons_cache={cache}", f"dist_dir={Path(tmp) / 'dist'}"]
        scons("fetch", "toolchain", *common)
        cold = scons(*targets, *common)
        noop = scons(*targets, *common)
        shutil.rmtree(build)
        restored = scons(*targets, *common)
    print(f"targets: {' '.join(targets)} {' '.join(variables)}")
    print(f"cold build          {cold:8.1f} s   1.000")
    print(f"no-op rebuild       {noop:8.1f} s   {noop / cold:.3f}")
    print(f"restore from cache  {restored:8.1f} s   {restored / cold:.3f}")


if __name__ == "__main__":
    main()
