#!/usr/bin/env python3
"""Build the same targets twice from scratch (fresh build directories, fresh SCons caches) and compare.

    python benchmarks/reproducibility.py [named targets, default: libs] [name=value ...]

Prints, for each artifact the builds produced, whether both builds gave the same bytes, and the count.
Downloads and toolchains come from the user cache; nothing else is shared between the two builds.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from scons_run import artifact_digests, scons


def build(root: Path, targets: list[str], variables: list[str]) -> tuple[dict[str, str], float]:
    started = time.monotonic()
    scons(
        *targets,
        *variables,
        f"build_dir={root / 'build'}",
        f"scons_cache={root / 'cache'}",
        f"dist_dir={root / 'dist'}",
    )
    return artifact_digests(root, root / "build", root / "dist"), time.monotonic() - started


def main() -> None:
    targets = [a for a in sys.argv[1:] if "=" not in a] or ["libs"]
    variables = [a for a in sys.argv[1:] if "=" in a]
    with tempfile.TemporaryDirectory(prefix="repro-") as tmp:
        first, t1 = build(Path(tmp) / "one", targets, variables)
        second, t2 = build(Path(tmp) / "two", targets, variables)
    same = [name for name in first if second.get(name) == first[name]]
    for name in sorted(first):
        print(f"{'same     ' if name in same else 'DIFFERENT'} {name}")
    print(f"{len(same)} of {len(first)} artifacts identical (builds took {t1:.0f} s and {t2:.0f} s)")


if __name__ == "__main__":
    main()
