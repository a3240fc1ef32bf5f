#!/usr/bin/env python3
"""Start-up cost of FIPS mode: the median wall time of a fresh interpreter running
``import hashlib, ssl; ssl.create_default_context()`` with FIPS mode off and on, and their ratio.

    python benchmarks/fips_startup.py <install_only.tar.gz | unpacked python/ directory> [--runs 15]

FIPS mode is turned on with this Python's own switch (PYSTANDALONE_FIPS=1) and, for comparison, through
OpenSSL's OPENSSL_CONF; the modes run alternately so machine noise hits all of them. A line with just
``python -c pass`` shows the interpreter's own start-up. The difference is the FIPS provider's start-up:
the integrity check of fips.so and the known-answer self-tests it runs on every load.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

WORKLOAD = "import hashlib, ssl; ssl.create_default_context()"


def install_root(source: Path, scratch: Path) -> Path:
    """The python/ directory of an unpacked install (`source` itself, or unpacked from an archive)."""
    if source.is_dir():
        return source
    with tarfile.open(source) as tar:
        tar.extractall(scratch, filter="tar")
    return scratch / "python"


def modes(root: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Label -> (code, extra environment) of every measured mode."""
    config = root / "share" / "ssl" / "openssl-fips.cnf"
    return {
        "interpreter only (-c pass)": ("pass", {}),
        "FIPS off": (WORKLOAD, {}),
        "FIPS on (PYSTANDALONE_FIPS=1)": (WORKLOAD, {"PYSTANDALONE_FIPS": "1"}),
        "FIPS on (OPENSSL_CONF)": (WORKLOAD, {"OPENSSL_CONF": str(config)}),
    }


def timed_run(python: Path, code: str, env: dict[str, str]) -> float:
    """Seconds one fresh interpreter takes to run `code` (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(
        [str(python), "-I", "-c", code],
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", **env},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("install", type=Path, help="an install_only archive or an unpacked python/ directory")
    parser.add_argument("--runs", type=int, default=15, help="runs per mode (default: 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = install_root(args.install, Path(scratch))
        python = root / "bin" / "python3"
        measured = modes(root)
        samples: dict[str, list[float]] = {label: [] for label in measured}
        for code, env in measured.values():
            timed_run(python, code, env)  # warm the page cache; not counted
        for _ in range(args.runs):
            for label, (code, env) in measured.items():
                samples[label].append(timed_run(python, code, env))
    medians = {label: statistics.median(times) for label, times in samples.items()}
    print(f"{'mode':32s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s}")
    for label, times in samples.items():
        print(f"{label:32s} {medians[label] * 1e3:10.1f} {min(times) * 1e3:8.1f} {max(times) * 1e3:8.1f}")
    off = medians["FIPS off"]
    for label in ("FIPS on (PYSTANDALONE_FIPS=1)", "FIPS on (OPENSSL_CONF)"):
        on = medians[label]
        print(f"{label}: {on / off:.2f}x FIPS off (+{(on - off) * 1e3:.0f} ms), median of {args.runs} runs")
    print(f"workload: python -I -c {WORKLOAD!r}; install: {args.install}")


if __name__ == "__main__":
    main()
