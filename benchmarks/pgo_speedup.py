#!/usr/bin/env python3
"""Compare two builds' interpreters on the same pure-Python workload, in one invocation.

    python benchmarks/pgo_speedup.py --candidate <install_only.tar.gz> --baseline <install_only.tar.gz>

Both archives are unpacked into a temporary directory; the workload runs alternately (baseline,
candidate, ...) so machine noise hits both; the best time of each kernel is kept. Prints the times and
the speed-up of the candidate as baseline_time / candidate_time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def interpreter(archive: Path, dest: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="tar")
    return dest / "python" / "bin" / "python3"


def run(python: Path, repeat: int) -> dict[str, float]:
    out = subprocess.run(
        [str(python), "-E", "-s", str(HERE / "workload.py"), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", type=Path, required=True, help="install_only archive of the pgo+lto build")
    parser.add_argument("--baseline", type=Path, required=True, help="install_only archive of the noopt build")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pythons = {
            "baseline": interpreter(args.baseline, Path(tmp) / "b"),
            "candidate": interpreter(args.candidate, Path(tmp) / "c"),
        }
        best: dict[str, dict[str, float]] = {"baseline": {}, "candidate": {}}
        for _ in range(args.rounds):
            for label, python in pythons.items():
                for kernel, seconds in run(python, args.repeat).items():
                    if kernel != "total":
                        best[label][kernel] = min(seconds, best[label].get(kernel, seconds))
        for times in best.values():
            # The sum of each kernel's best, so one noisy round cannot skew the total.
            times["total"] = sum(times.values())
    print(f"{'kernel':10s} {'baseline s':>11s} {'candidate s':>12s} {'speed-up':>9s}")
    for kernel in best["baseline"]:
        b, c = best["baseline"][kernel], best["candidate"][kernel]
        print(f"{kernel:10s} {b:11.3f} {c:12.3f} {b / c:8.2f}x")
    print(f"baseline: {args.baseline.name}\ncandidate: {args.candidate.name}")


if __name__ == "__main__":
    main()
