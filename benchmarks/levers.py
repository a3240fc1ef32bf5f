#!/usr/bin/env python3
"""Issue 13's per-lever measurement in one command: one pgo+lto CPython build per speed lever, then one
interleaved pyperformance run of all of them against a baseline interpreter.

    python benchmarks/levers.py [--py 3.11.2] [--on default|none] [--levers o3,bolt,o3+tail-dup,...]
                                [--build-only] [--jobs N] [--baseline debian=/usr/bin/python3.11]
                                [-- pyperf_compare options]
    e.g. python benchmarks/levers.py --levers full-lto,pgo-extended,full-lto+pgo-extended -- --rounds 3

The reference is the build the levers are added to, trained as usual: ``--on default`` (the default), the
chosen combination (``tuning=default``, the build that ships), or ``--on none``, the build without any lever.
Its merged PGO profile then feeds every other build (``pgo_profile=``), because two trainings never give the
same profile (README, reproducibility) and that difference would land in every ratio; the reference itself is
not built again, because a build from its own profile reproduces the trained build's interpreter byte for byte
(BENCHMARKS.md). A training lever (``pgo-extended``, ``ir-pgo``) trains its own, and ``--own-training`` lets every lever
train.
Each lever is built on top of the reference (``scons cpython py=... options=pgo+lto tuning=<reference's
levers>,<lever>``; an artifact already in the SCons cache is restored, not rebuilt), copied to
``build/levers/<label>.tar.zst``, and its CPython action's own build time is printed (``cached`` when it was
restored). Then ``benchmarks/pyperf_compare.py`` runs the baseline, the reference and every lever in one
invocation, so every ratio in its report comes from the same minutes of the same machine; options after ``--``
go to it (``--rounds 3``, ``--full``, ``--rigorous``). Benchmark on a quiet machine: the report's significance
column says which differences are noise.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from scons_run import REPO, scons

sys.path.insert(0, str(REPO / "site_scons"))

from hermetic.archive_read import open_tar
from pydist import tuning

TARGET = "x86_64-unknown-linux-gnu"
REFERENCE = "none"
_ACTION_TIME = re.compile(r"^\[ ok  \] build cpython-\S+ \(\S+\) in (\S+)$", re.MULTILINE)


def build(py: str, lever: str, jobs: int, profile: Path | None = None) -> tuple[Path, str]:
    """Build (or restore, or find up to date) the pgo+lto CPython artifact with `lever` (from the merged PGO
    `profile` when one is given); return its path and the action's time (``cached`` when it did not run)."""
    output = scons(
        "cpython",
        f"py={py}",
        "options=pgo+lto",
        f"tuning={lever}",
        f"jobs={jobs}",
        *([f"pgo_profile={profile}"] if profile else []),
    )
    path = REPO / "build" / TARGET / f"{artifact_name(py, lever)}.tar.zst"
    if not path.is_file():
        sys.exit(f"levers: the {lever} build made no {path.relative_to(REPO)}")
    ran = _ACTION_TIME.search(output)
    return path, ran.group(1) if ran else "cached"


def kept_profile(artifact: Path, dest: Path) -> Path:
    """The merged PGO profile a pgo build kept in its CPython artifact (``build/pgo.profdata``), copied to
    `dest`."""
    with open_tar(artifact) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith("build/pgo.profdata"):
                dest.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
                return dest
    sys.exit(f"levers: {artifact.name} holds no build/pgo.profdata (built before profiles were kept?)")


def artifact_name(py: str, lever: str) -> str:
    """The CPython artifact's name for `lever` (a lever list equal to the chosen default is the default build)."""
    levers = frozenset(word for word in lever.split(",") if word and word != REFERENCE)
    if levers == frozenset(tuning.DEFAULT):
        return f"cpython-{py}-pgo+lto"
    return f"cpython-{py}-pgo+lto-tuning-{tuning.Tuning(levers).label}"


def reference_levers(on: str) -> list[str]:
    """The levers of the reference build that ``--on`` names."""
    return list(tuning.DEFAULT) if on == tuning.DEFAULT_WORD else []


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; argparse's one-line error and exit 2 for a mistake."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--py", default="3.11.2", help="the CPython version (default 3.11.2, issue 13's)")
    parser.add_argument(
        "--on",
        choices=(tuning.DEFAULT_WORD, REFERENCE),
        default=tuning.DEFAULT_WORD,
        help="the reference the levers are added to: the chosen default levers (default) or none",
    )
    parser.add_argument(
        "--levers",
        help="comma-separated levers, each one added to the reference; a+b adds a and b together "
        "(default: every lever the reference does not have)",
    )
    parser.add_argument("--baseline", default="debian=/usr/bin/python3.11", help="LABEL=interpreter to compare against")
    parser.add_argument("--jobs", type=int, default=2, help="scons jobs=")
    parser.add_argument("--build-only", action="store_true", help="build the artifacts and stop")
    parser.add_argument(
        "--own-training", action="store_true", help="let every lever train its own profile (default: share one)"
    )
    parser.add_argument("compare_options", nargs=argparse.REMAINDER, help="after --: passed to pyperf_compare.py")
    args = parser.parse_args(argv)
    if args.py.count(".") != 2:
        parser.error(f"--py {args.py}: give a full version (e.g. 3.11.2), which names the artifacts")
    base = reference_levers(args.on)
    default_levers = ",".join(name for name in tuning.LEVERS if name not in base)
    args.levers = [word.strip() for word in (args.levers or default_levers).split(",") if word.strip()]
    unknown = [name for lever in args.levers for name in lever.split("+") if name not in tuning.LEVERS]
    if unknown:
        parser.error(f"{unknown[0]} is not a lever; choose from {', '.join(tuning.LEVERS)}")
    return args


def build_all(args: argparse.Namespace, keep: Path) -> dict[str, Path]:
    """Build the reference and every lever on top of it; their artifacts copied into `keep`, by label."""
    keep.mkdir(parents=True, exist_ok=True)
    base = reference_levers(args.on)
    trained, took = build(args.py, ",".join(base) or REFERENCE, args.jobs)
    print(f"{args.on + ', trained':28} build {took:>8}  {trained.relative_to(REPO)}", flush=True)
    profile = None if args.own_training else kept_profile(trained, keep / "pgo.profdata")
    built = {args.on: keep / f"{args.on}.tar.zst"}
    shutil.copyfile(trained, built[args.on])
    for lever in args.levers:
        # A training lever must train; every other one compiles from the reference's profile, so the
        # comparison measures the lever, not two trainings' differences.
        names = lever.split("+")
        trains = any(name in tuning.TRAINING_LEVERS for name in names)
        # tuning.parse keeps the first of repeated names, as the build itself reads tuning=.
        combined = tuning.parse(",".join([*base, *names])) or ()
        path, took = build(args.py, ",".join(combined), args.jobs, None if trains else profile)
        built[lever] = keep / f"{lever}.tar.zst"
        shutil.copyfile(path, built[lever])  # the next build may reuse the path
        print(f"{lever:28} build {took:>8}  {built[lever].relative_to(REPO)}", flush=True)
    return built


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    built = build_all(args, REPO / "build" / "levers")
    if args.build_only:
        return
    extra = [option for option in args.compare_options if option != "--"]
    candidates = [f"{label}={path}" for label, path in built.items()]
    command = [sys.executable, str(REPO / "benchmarks" / "pyperf_compare.py"), "--baseline", args.baseline]
    sys.exit(subprocess.run([*command, *candidates, *extra], cwd=REPO).returncode)


if __name__ == "__main__":
    main()
