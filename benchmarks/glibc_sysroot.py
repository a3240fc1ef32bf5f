#!/usr/bin/env python3
"""Generation time and size of the glibc sysroots (site_scons/pydist/glibc_sysroot.py), per architecture.

    python benchmarks/glibc_sysroot.py [--glibc 2.17] [--runs 3] [--arch x86_64 --arch aarch64]

Each run generates the sysroot with the real action runner, in bubblewrap, into a fresh work tree. The toolchain
(compiler and the unpacked ziglang wheel) is materialized once before the first run and its time printed apart;
a run's time is the action's: starting the sandbox, zig's two links, stripping, copying the headers, packing.
Prints the median and the range of the runs, the artifact's size, the unpacked tree's size and its file count,
and whether every run gave the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "site_scons"))

from hermetic.action import ActionRunner
from hermetic.archive_read import open_tar
from hermetic.lock import load_lock
from hermetic.toolchain import Toolchain, load_toolchain, materialize_toolchain
from pydist.glibc_sysroot import artifact_name, generator_toolchain, sysroot_action
from pydist.macos_evidence import make_fetcher
from pydist.paths import LOCK_FILE, PINS_SCHEMA, TOOLCHAINS_DIR
from pydist.settings import default_cache_root

TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu"}


@dataclass(frozen=True)
class Run:
    """One generation: its time, and the artifact's digest and size."""

    seconds: float
    sha256: str
    size: int


def generate(target: Toolchain, glibc: str, scratch: Path) -> tuple[Run, Path]:
    """Generate the sysroot once in a fresh work tree under `scratch`; the run and the artifact."""
    cache = default_cache_root()
    work = Path(tempfile.mkdtemp(dir=scratch))
    runner = ActionRunner(
        fetcher=make_fetcher(cache),
        toolchain_root=cache / "toolchains",
        work_root=work / "work",
        log_root=work / "logs",
        jobs=2,
    )
    action = sysroot_action(target, glibc, source_date_epoch=load_lock(LOCK_FILE, PINS_SCHEMA).source_date_epoch)
    artifact = work / artifact_name(target.arch, glibc)
    started = time.monotonic()
    runner.run(action, artifact, [])
    seconds = time.monotonic() - started
    data = artifact.read_bytes()
    return Run(seconds, hashlib.sha256(data).hexdigest(), len(data)), artifact


def tree_facts(artifact: Path) -> tuple[int, int, int]:
    """(regular files, symlinks, bytes of the regular files) of the artifact's tree."""
    files = links = size = 0
    with open_tar(artifact) as tar:
        for member in tar:
            files += member.isfile()
            links += member.issym()
            size += member.size if member.isfile() else 0
    return files, links, size


def measure(arch: str, glibc: str, runs: int, scratch: Path) -> None:
    """Materialize the toolchain, generate `runs` times, print the numbers."""
    target = load_toolchain(TOOLCHAINS_DIR, TRIPLES[arch], PINS_SCHEMA)
    cache = default_cache_root()
    started = time.monotonic()
    materialize_toolchain(generator_toolchain(target, glibc), make_fetcher(cache), cache / "toolchains")
    materialized = time.monotonic() - started
    results = [generate(target, glibc, scratch) for _ in range(runs)]
    seconds = [run.seconds for run, _ in results]
    files, links, size = tree_facts(results[0][1])
    identical = len({run.sha256 for run, _ in results}) == 1
    rows = {
        "toolchain ready (fetch/unpack or verify)": f"{materialized:.1f} s",
        f"generation, median of {runs}": f"{statistics.median(seconds):.1f} s (min {min(seconds):.1f}, "
        f"max {max(seconds):.1f})",
        "artifact": f"{results[0][0].size / 1e6:.2f} MB",
        "unpacked": f"{size / 1e6:.2f} MB in {files} files and {links} links",
        "identical bytes in every run": "yes" if identical else "NO",
    }
    print(artifact_name(arch, glibc))
    for label, value in rows.items():
        print(f"  {label:<42} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glibc", default="2.17", help="the floor (default 2.17)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--arch", action="append", choices=sorted(TRIPLES), help="default: both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="glibc-sysroot-bench-") as scratch:
        for arch in args.arch or sorted(TRIPLES, reverse=True):
            measure(arch, args.glibc, args.runs, Path(scratch))


if __name__ == "__main__":
    main()
