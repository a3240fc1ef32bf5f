#!/usr/bin/env python3
"""Wall times of a cold build, a no-op rebuild, and a rebuild restored from the cache, in one invocation.

    python benchmarks/build_times.py [named targets, default: libs] [name=value ...]

Uses a fresh build directory and a fresh SCons cache (both temporary) so the first build runs every
action; downloads and toolchains come from the user cache (fetched first, not timed). Prints seconds
and each figure as a ratio of the cold build.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def scons(*args: str) -> tuple[float, int]:
    """Run scons; return its wall time and how many sandboxed actions it ran."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "SCons", "-Q", *args], cwd=REPO, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"scons {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return elapsed, sum(line.startswith("[start] build ") for line in result.stdout.splitlines())


def artifacts(build: Path) -> dict[str, str]:
    """sha256 of every artifact under the build directory (action scratch trees excluded)."""
    return {
        str(p.relative_to(build)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(build.rglob("*.tar.*"))
        if not {"work", "tests"} & set(p.relative_to(build).parts)
    }


def main() -> None:
    targets = [a for a in sys.argv[1:] if "=" not in a] or ["libs"]
    variables = [a for a in sys.argv[1:] if "=" in a]
    with tempfile.TemporaryDirectory(prefix="build-times-") as tmp:
        build, cache = Path(tmp) / "build", Path(tmp) / "cache"
        common = [*variables, f"build_dir={build}", f"scons_cache={cache}", f"dist_dir={Path(tmp) / 'dist'}"]
        scons("fetch", "toolchain", *common)
        cold, cold_actions = scons(*targets, *common)
        built = artifacts(build)
        noop, noop_actions = scons(*targets, *common)
        shutil.rmtree(build)
        restored, restore_actions = scons(*targets, *common)
        same = artifacts(build) == built
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
