#!/usr/bin/env python3
"""The two-build check: build one commit twice from scratch in two different environments and compare.

    sudo python benchmarks/reproducibility.py [--commit REV] [--keep] [--work DIR] [target ...] [name=value ...]
    e.g. python benchmarks/reproducibility.py py=3.13.15 options=noopt
         python benchmarks/reproducibility.py py=3.13.15 options=pgo+lto pgo_profile=/srv/pgo.profdata

A pgo build's training is not repeatable (its counts depend on timing and heap addresses), so two pgo
builds differ unless both are given the same merged profile (``pgo_profile=``, e.g. the
``python/build/pgo.profdata`` of an earlier build's full archive); it must be readable by build B's user.

Build A and build B each get their own clone of the commit (in differently named directories), their own
virtualenv (made by scripts/bootstrap from the same interpreter, /usr/bin/python3 unless PYTHON is set), their
own build and dist directories and no SCons cache (scons_cache=off), so every action runs. What differs:

    ============  ==========================  =====================================
    variation     build A                     build B
    ============  ==========================  =====================================
    user          the caller (root)           a separate user (useradd), via setpriv
    checkout      <work>/a/checkout-alpha     <work>/b/elsewhere/checkout-beta
    umask         022                         077
    TZ            UTC                         Asia/Tokyo
    locale        LC_ALL=C.UTF-8              LANG=POSIX, LC_ALL unset
    hostname      repro-alpha (unshare -u)    another-host-beta (unshare -u)
    caches        the caller's downloads      its own (filled from the caller's files)
    ============  ==========================  =====================================

Then every output is compared with ``python -m pydist compare`` (dist directory, library artifacts and the
CPython artifact), diffoscope reports go to <work>/reports, and the sha256 of every output of both builds is
printed. Exit status 0 when everything is byte-identical. The builds run one after the other (the machine
is shared); each takes as long as a cold build (about 8 minutes for noopt on 2 cores, 20+ for pgo+lto).
Needs root (useradd, unshare, setpriv) and the network for the two virtualenvs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "site_scons"))

from pydist.settings import default_cache_root  # noqa: E402  (the caller's downloads and toolchains)

USER_B = "pydist-repro"
TARGET = "x86_64-unknown-linux-gnu"


@dataclass(frozen=True)
class Environment:
    """One side of the check."""

    name: str
    checkout: Path
    umask: int
    env: dict[str, str]
    hostname: str
    user: str | None  # None: the caller
    cache_root: Path | None  # None: the caller's default
    distdir: Path | None


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; exit with its output if it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-3000:]}")
    return result


def ensure_user(name: str) -> pwd.struct_passwd:
    """The build-B user, created (with a home directory) the first time."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/sh", "--comment", "two-build check", name])
        return pwd.getpwnam(name)


def clone(commit: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)])
    run(["git", "-C", str(dest), "checkout", "--quiet", "--detach", commit])


def flat_distdir(store: Path, dest: Path) -> None:
    """Hard links to every verified download of the caller's content store, named by sha256 (a distdir)."""
    dest.mkdir(parents=True)
    for path in store.glob("sha256/*/*"):
        if len(path.name) == 64:
            os.link(path, dest / path.name)


def as_side(side: Environment, argv: list[str]) -> list[str]:
    """`argv` under side's hostname (new UTS namespace), user, umask and environment."""
    inner = ["env", "-i", *(f"{k}={v}" for k, v in side.env.items()), *argv]
    if side.user:
        inner = ["setpriv", f"--reuid={side.user}", f"--regid={side.user}", "--init-groups", "--", *inner]
    script = f'hostname "$1" && umask {side.umask:03o} && shift && exec "$@"'
    return ["unshare", "--uts", "--", "/bin/sh", "-c", script, "sh", side.hostname, *inner]


def base_env(user: str, home: str) -> dict[str, str]:
    return {"HOME": home, "USER": user, "LOGNAME": user, "PATH": "/usr/local/bin:/usr/bin:/bin"}


def bootstrap(side: Environment, python: str) -> None:
    env = {**side.env, "PYTHON": python}
    run(as_side(Environment(**{**side.__dict__, "env": env}), ["./scripts/bootstrap"]), cwd=side.checkout)


def build(side: Environment, variables: list[str], log: Path) -> float:
    """Run the cold build; return its wall time."""
    args = [".venv/bin/python", "-m", "SCons", "-Q", *variables, "scons_cache=off"]
    if not any(v.startswith("tag=") for v in variables):
        args.append("tag=repro")
    if side.cache_root:
        args.append(f"cache_root={side.cache_root}")
    if side.distdir:
        args.append(f"distdir={side.distdir}")
    started = time.monotonic()
    with open(log, "w") as out:
        rc = subprocess.run(as_side(side, args), cwd=side.checkout, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        sys.exit(f"build {side.name} failed ({rc}); log: {log}")
    return time.monotonic() - started


def outputs(checkout: Path) -> dict[str, Path]:
    """Every output of a build: dist files, library artifacts, the CPython artifact."""
    found = {}
    for path in sorted((checkout / "dist").glob("*/*")):
        found[str(path.relative_to(checkout))] = path
    for path in sorted((checkout / "build" / TARGET).glob("**/*.tar.zst")):
        relative = path.relative_to(checkout)
        if not {"work", "tests"} & set(relative.parts):
            found[str(relative)] = path
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def compare_dirs(a: Path, b: Path, reports: Path) -> int:
    """``pydist compare`` on every output directory of the two builds; the worst exit status."""
    worst = 0
    directories = [p.relative_to(a) for p in sorted((a / "dist").glob("*"))]
    directories += [d for d in (Path("build") / TARGET / "deps", Path("build") / TARGET) if (a / d).is_dir()]
    for relative in directories:
        print(f"\n$ pydist compare A/{relative} B/{relative}", flush=True)
        argv = [str(REPO / ".venv" / "bin" / "python"), "-m", "pydist", "compare", str(a / relative), str(b / relative)]
        argv += ["--report-dir", str(reports / str(relative).replace("/", "_"))]
        env = {**os.environ, "PYTHONPATH": str(REPO / "site_scons")}
        worst = max(worst, subprocess.run(argv, env=env).returncode)
    return worst


def sides(work: Path, user: pwd.struct_passwd) -> tuple[Environment, Environment]:
    caller = pwd.getpwuid(os.getuid())
    a = Environment(
        name="A",
        checkout=work / "a" / "checkout-alpha",
        umask=0o022,
        env={**base_env(caller.pw_name, caller.pw_dir), "TZ": "UTC", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
        hostname="repro-alpha",
        user=None,
        cache_root=None,
        distdir=None,
    )
    b = Environment(
        name="B",
        checkout=work / "b" / "elsewhere" / "checkout-beta",
        umask=0o077,
        env={**base_env(user.pw_name, user.pw_dir), "TZ": "Asia/Tokyo", "LANG": "POSIX"},
        hostname="another-host-beta",
        user=user.pw_name,
        cache_root=work / "b" / "cache",
        distdir=work / "distdir",
    )
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", default="HEAD", help="the commit to build (default HEAD; commit your changes)")
    parser.add_argument("--work", type=Path, help="working directory (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the checkouts and builds afterwards")
    parser.add_argument(
        "variables", nargs="*", help="scons variables and targets, e.g. py=3.13.15 options=noopt jobs=2 (default: dist)"
    )
    args = parser.parse_args()
    if os.getuid() != 0:
        sys.exit("run as root: it creates a user and switches to it (setpriv) in a new UTS namespace (unshare)")
    commit = run(["git", "-C", str(REPO), "rev-parse", args.commit]).stdout.strip()
    work = args.work or Path(tempfile.mkdtemp(prefix="repro-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    user = ensure_user(USER_B)
    a, b = sides(work, user)
    python = os.environ.get("PYTHON", "/usr/bin/python3")
    print(f"commit {commit}; work directory {work}; build B runs as {user.pw_name}", flush=True)
    identical = False
    try:
        for side in (a, b):
            clone(commit, side.checkout)
        flat_distdir(default_cache_root() / "downloads", work / "distdir")
        (work / "b").chmod(0o755)
        run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(work / "b")])
        for side in (a, b):
            print(f"bootstrap {side.name} ({side.checkout})", flush=True)
            bootstrap(side, python)
        times = {}
        for side in (a, b):
            print(f"build {side.name} (cold, scons_cache=off) ...", flush=True)
            times[side.name] = build(side, args.variables, work / f"build-{side.name}.log")
            print(f"build {side.name}: {times[side.name]:.0f} s", flush=True)
        found_a, found_b = outputs(a.checkout), outputs(b.checkout)
        print("\nsha256 of every output (A, then B when it differs):")
        same = 0
        for name in sorted(found_a.keys() | found_b.keys()):
            da = sha256(found_a[name]) if name in found_a else "missing"
            db = sha256(found_b[name]) if name in found_b else "missing"
            same += da == db
            print(f"  {'same ' if da == db else 'DIFF '} {da}  {name}" + ("" if da == db else f"\n        B: {db}"))
        print(f"{same} of {len(found_a.keys() | found_b.keys())} outputs identical")
        status = compare_dirs(a.checkout, b.checkout, work / "reports")
        identical = status == 0 and same == len(found_a.keys() | found_b.keys())
        print(f"\nbuild times: A {times['A']:.0f} s, B {times['B']:.0f} s")
        sys.exit(0 if identical else 1)
    finally:
        if identical and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work} (checkouts, build logs build-A.log/build-B.log, diffoscope reports in reports/)")


if __name__ == "__main__":
    main()
