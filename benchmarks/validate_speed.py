#!/usr/bin/env python3
"""Time the validator on real archives against a baseline that only reads them, in one invocation.

    python benchmarks/validate_speed.py ARCHIVE [ARCHIVE ...] [--repeat N]

The baseline decompresses and walks every member (what any check must at least do); the ratio says
what the checks themselves cost. Prints the best of N runs of each.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "site_scons"))

import zstandard

from pydist.validate import validate


def read_all(path: Path) -> int:
    """Decompress and read every regular member; return the number of bytes."""
    with contextlib.ExitStack() as stack:
        if path.name.endswith(".zst"):
            raw = stack.enter_context(open(path, "rb"))
            stream = stack.enter_context(zstandard.ZstdDecompressor().stream_reader(raw))
            tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
        else:
            tar = stack.enter_context(tarfile.open(path, mode="r|gz"))
        return sum(len(data.read()) for m in tar if m.isfile() and (data := tar.extractfile(m)) is not None)


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.monotonic()
        fn()
        times.append(time.monotonic() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archives", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    baseline = best(lambda: [read_all(a) for a in args.archives], args.repeat)
    report = validate(args.archives)
    checks = best(lambda: validate(args.archives), args.repeat)
    print(f"archives: {', '.join(a.name for a in args.archives)}")
    print(f"  {report.summary()}")
    print(f"read every member   {baseline:7.2f} s   1.00")
    print(f"validate            {checks:7.2f} s   {checks / baseline:.2f}")


if __name__ == "__main__":
    main()
