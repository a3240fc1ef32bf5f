#!/usr/bin/env python3
"""Compare interpreters by counting, not timing: each pyperformance benchmark's workload under valgrind's
cachegrind, for hosts too noisy to time a few-percent difference (BENCHMARKS.md, the ninth run).

    python benchmarks/cachegrind_compare.py --baseline debian=/usr/bin/python3.11 \\
        default=build/levers/default.tar.zst other=build/levers/other.tar.zst
    python benchmarks/cachegrind_compare.py --baseline debian=A/results.json new=B/results.json   # report saved

Interpreters are given as for pyperf_compare.py (a path, a name on PATH or an archive; `LABEL=PATH`; `--env
LABEL:NAME=VALUE` for PYTHON* variables), with one pyperformance venv per executable. Every benchmark script runs
as a single pyperf worker (its first benchmark, no warm-up, one value) under cachegrind twice, with N and 2N
loops: the difference is the cost of N loops after N have warmed up the interpreter (the specializing
interpreter's caches), without start-up, imports or pyperf's own set-up. N is chosen once per benchmark so N
loops take about --target-ms on the baseline, run natively, and is the same for every interpreter; every count
is reported per loop. `--loops N` fixes it instead, and `--loops-from results.json` takes an earlier run's N,
so that a later run's counts combine exactly with it: `LABEL=results.json` inputs print one table of saved
counts, from any number of runs, without counting anything again.

The counts do not depend on the host's load: the same interpreter reads the same numbers to about one part in ten
million (PYTHONHASHSEED=0, a minimal environment, valgrind's own memory layout). The caches simulated are
fixed, not the host's, so results from two hosts can be compared: 32 KiB I1 (8-way), 48 KiB D1 (12-way) and a
2 MiB last level (16-way), 64-byte lines. The headline is an estimate of cycles, Itamar Turner-Trauring's
(used by iai and CodSpeed): an L1 hit costs 1, a last-level hit 5 and a memory access 35. What it leaves out:
out-of-order execution, the real branch predictor (cachegrind's own one, counted separately, is far simpler
than a modern core's, so indirect jumps mispredict much more than on hardware), micro-op caches and
frequency. It is a proxy: use it to rank builds on a noisy host, and time the winner on a quiet one.

Writes results.json (every count of every run) and report.txt into the output directory, and prints per
benchmark the estimated cycles per loop, their ratios against the baseline, and geometric means of the
estimated cycles, the instructions, the I1 misses and the branch mispredictions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "site_scons"))

from pyperf_compare import (
    SUBSET,
    BenchmarkError,
    Interpreter,
    choose_output_dir,
    is_result_file,
    non_negative_int,
    package_version,
    positive_int,
    prepare_interpreters,
    prepare_venv,
    split_label,
    with_environment,
    write_text_atomic,
)
from pyperf_report import geometric_mean

from hermetic.errors import ConfigError, HermeticError
from pydist.elfinfo import is_elf

# Fixed, so counts do not depend on the host cachegrind runs on (size in bytes, associativity, line size).
SIMULATED_CACHES = {"I1": "32768,8,64", "D1": "49152,12,64", "LL": "2097152,16,64"}
EVENTS = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw", "Bc", "Bcm", "Bi", "Bim")
DEFAULT_TARGET_MS = 20.0
MAX_LOOPS = 1 << 24


Results = dict[str, dict[str, dict[str, float]]]  # label -> benchmark -> event -> count per loop


@dataclass(frozen=True)
class Task:
    """One benchmark script as pyperformance runs it."""

    name: str
    script: Path
    extra_opts: tuple[str, ...]


# ---------------------------------------------------------------------------------------------- counts


def parse_cachegrind(path: Path) -> dict[str, int]:
    """The whole-program totals of a cachegrind output file, by event name."""
    events: list[str] = []
    summary: list[str] = []
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:"):
                summary = line.split()[1:]
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read cachegrind's output ({exc.strerror})") from None
    if not events or len(events) != len(summary) or not all(v.isdigit() for v in summary):
        raise BenchmarkError(f"{path} is not a complete cachegrind output file (no events or summary line)")
    counts = dict(zip(events, map(int, summary), strict=True))
    missing = [e for e in EVENTS if e not in counts]
    if missing:
        raise BenchmarkError(
            f"{path} lacks the events {', '.join(missing)}; run cachegrind with --cache-sim=yes --branch-sim=yes"
        )
    return counts


def per_loop(long_run: Mapping[str, int], short_run: Mapping[str, int], loops: int) -> dict[str, float]:
    """Counts of the extra `loops` loops of the longer run, per loop."""
    return {event: (long_run[event] - short_run[event]) / loops for event in EVENTS}


def estimated_cycles(counts: Mapping[str, float]) -> float:
    """Cycles estimated from the simulated caches: an L1 hit costs 1, a last-level hit 5, a memory access 35."""
    accesses = counts["Ir"] + counts["Dr"] + counts["Dw"]
    l1_misses = counts["I1mr"] + counts["D1mr"] + counts["D1mw"]
    memory = counts["ILmr"] + counts["DLmr"] + counts["DLmw"]
    return (accesses - l1_misses) + 5 * (l1_misses - memory) + 35 * memory


METRICS: dict[str, Callable[[Mapping[str, float]], float]] = {
    "estimated cycles": estimated_cycles,
    "instructions": lambda c: c["Ir"],
    "I1 misses": lambda c: c["I1mr"],
    "branch mispredictions": lambda c: c["Bcm"] + c["Bim"],
}


# ---------------------------------------------------------------------------------------------- running


def valgrind_version() -> str:
    """valgrind's version line; a ConfigError says how to get it."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise ConfigError("valgrind is not installed", hint="run ./scripts/bootstrap (or apt-get install valgrind)")
    return subprocess.run([valgrind, "--version"], capture_output=True, text=True, check=False).stdout.strip()


def benchmark_tasks(names: Sequence[str]) -> list[Task]:
    """The run scripts of the named benchmarks, from pyperformance's own manifest."""
    from pyperformance._manifest import load_manifest

    known = {b.name: b for b in load_manifest(None).benchmarks}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"pyperformance has no benchmark {unknown[0]}", hint="see python -m pyperformance list")
    return [Task(n, Path(known[n].runscript), tuple(known[n].extra_opts)) for n in names]


def venv_python(workdir: Path) -> Path:
    """The one venv pyperformance created in `workdir`."""
    found = sorted(workdir.glob("venv/*/bin/python"))
    if len(found) != 1:
        raise BenchmarkError(f"expected one pyperformance venv in {workdir}/venv, found {len(found)}")
    return found[0]


def worker_argv(python: Path, task: Task, loops: int, output: Path | None = None) -> list[str]:
    """One pyperf worker process: the script's first benchmark, `loops` loops, one value, no warm-up."""
    argv = [str(python), str(task.script), *task.extra_opts, "--worker", "--worker-task", "0"]
    argv += ["--loops", str(loops), "--values", "1", "--warmups", "0"]
    return argv + (["--output", str(output)] if output else [])


def clean_env(interpreter: Interpreter) -> dict[str, str]:
    """A minimal, fixed environment (the environment's size moves the stack), with the interpreter's PYTHON*."""
    return {"PATH": os.defpath, "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", **interpreter.benchmark_env}


def loops_for(seconds_per_loop: float, target_seconds: float) -> int:
    """The smallest power of two of loops that takes at least `target_seconds`."""
    loops = 1
    while loops * seconds_per_loop < target_seconds and loops < MAX_LOOPS:
        loops *= 2
    return loops


def calibrate(interpreter: Interpreter, python: Path, task: Task, target_seconds: float, tmp: Path) -> int:
    """N for `task`: one native loop's time on the baseline, scaled up to the target."""
    output = tmp / f"calibrate-{task.name}.json"
    output.unlink(missing_ok=True)
    result = subprocess.run(
        worker_argv(python, task, 1, output), env=clean_env(interpreter), capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not output.is_file():
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(f"{task.name} failed on {interpreter.label}: {detail}")
    data = json.loads(output.read_text())
    value = data["benchmarks"][0]["runs"][-1]["values"][0]
    inner_loops = data.get("metadata", {}).get("inner_loops", 1)
    return loops_for(value * inner_loops, target_seconds)


def strip_debug_info(root: Path) -> int:
    """Remove the debug sections of every ELF file under `root` (an unpacked copy), keeping code and symbols:
    Debian 12's valgrind 3.19 stops at clang 19's DWARF 5 forms. The code does not change, so neither do the
    counts. Returns how many files were stripped."""
    stripped = 0
    for path in sorted(p for p in root.rglob("*") if is_elf(p)):
        try:
            result = subprocess.run(["strip", "--strip-debug", str(path)], capture_output=True, text=True, check=False)
        except OSError as exc:
            raise ConfigError(f"strip: {exc.strerror}", hint="run ./scripts/bootstrap (it installs binutils)") from None
        if result.returncode != 0:
            raise BenchmarkError(f"strip --strip-debug {path} failed: {result.stderr.strip()[-300:]}")
        stripped += 1
    return stripped


def cachegrind(python: Path, env: dict[str, str], task: Task, loops: int, out: Path, log: Path) -> dict[str, int]:
    """The totals of one worker process with `loops` loops under cachegrind."""
    caches = [f"--{name}={spec}" for name, spec in SIMULATED_CACHES.items()]
    # Found on our PATH: the child's minimal PATH might not hold it.
    argv = [shutil.which("valgrind") or "valgrind", "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes", *caches]
    argv += [f"--cachegrind-out-file={out}", *worker_argv(python, task, loops)]
    with open(log, "w") as sink:
        sink.write(f"$ {shlex.join(argv)}\n")
        sink.flush()
        returncode = subprocess.run(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, check=False).returncode
    if returncode != 0:
        hint = f"see {log}"
        if "unhandled dwarf2" in log.read_text(errors="replace"):
            hint = "this valgrind cannot read the interpreter's DWARF 5: give an archive, whose copy is stripped"
        raise BenchmarkError(f"{task.name} under cachegrind exited {returncode}", hint=hint)
    return parse_cachegrind(out)


def measure(interpreter: Interpreter, python: Path, task: Task, loops: int, tmp: Path, logs: Path) -> dict[str, float]:
    """Per-loop counts of `task` on `interpreter`: the N-loop run taken from the 2N-loop run."""
    env = clean_env(interpreter)
    stem = f"{interpreter.label}.{task.name}"
    short = cachegrind(python, env, task, loops, tmp / f"{stem}.{loops}.out", logs / f"{stem}.{loops}.log")
    long = cachegrind(python, env, task, 2 * loops, tmp / f"{stem}.{2 * loops}.out", logs / f"{stem}.{2 * loops}.log")
    return per_loop(long, short, loops)


# ---------------------------------------------------------------------------------------------- report


def ratio(candidate: float, baseline: float) -> float:
    """candidate / baseline; NaN when the baseline counted nothing."""
    return candidate / baseline if baseline > 0 else math.nan


def format_report(
    labels: Sequence[str],
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    loops: Mapping[str, int],
    header: str,
) -> str:
    """The per-benchmark table (estimated cycles per loop, ratios against the first label) and the geomeans."""
    baseline, candidates = labels[0], labels[1:]
    names = [n for n in loops if all(n in results[label] for label in labels)]
    lines = [header, "", "estimated cycles per loop; the others as ratios against the baseline (below 1: fewer)", ""]
    lines.append("| benchmark | loops | " + " | ".join(labels) + " |")
    lines.append("|---|---|" + "---|" * len(labels))
    for name in names:
        base = estimated_cycles(results[baseline][name])
        cells = [f"{base:,.0f}"] + [f"{ratio(estimated_cycles(results[c][name]), base):.3f}" for c in candidates]
        lines.append(f"| {name} | {loops[name]} | " + " | ".join(cells) + " |")
    for metric, value in METRICS.items():
        cells = ["1"]
        for candidate in candidates:
            ratios = [ratio(value(results[candidate][n]), value(results[baseline][n])) for n in names]
            usable = [r for r in ratios if r > 0 and math.isfinite(r)]
            cells.append(f"{geometric_mean(usable):.3f}" if usable else "-")
        lines.append(f"| **geomean, {metric}** | | " + " | ".join(cells) + " |")
    missing = [(label, n) for label in labels for n in loops if n not in results[label]]
    if missing:
        lines += [
            "",
            "NOT COUNTED (left out of every row above): " + ", ".join(f"{n} on {label}" for label, n in missing),
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; exits 2 with argparse's message on a malformed one."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--baseline", required=True, help="interpreter or archive to compare against, or LABEL=results.json"
    )
    parser.add_argument(
        "candidates",
        nargs="*",
        help="interpreters or archives, or LABEL=results.json files (none: count the baseline alone, e.g. with "
        "--loops-from, to add it to an earlier run's table)",
    )
    parser.add_argument(
        "--benchmarks", "-b", help="comma-separated pyperformance benchmark names (default: issue 13's subset of 12)"
    )
    fixed = parser.add_mutually_exclusive_group()
    fixed.add_argument("--loops", type=positive_int, help="N for every benchmark (default: calibrated)")
    fixed.add_argument(
        "--loops-from",
        type=Path,
        metavar="RESULTS_JSON",
        help="each benchmark's N from an earlier run's results.json, so this run's counts add to its table",
    )
    parser.add_argument(
        "--target-ms",
        type=float,
        default=DEFAULT_TARGET_MS,
        help=f"calibration: N loops take about this long natively (default {DEFAULT_TARGET_MS:g})",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=non_negative_int,
        default=0,
        help="cachegrind processes at a time (default: one per CPU); counts do not depend on it",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="LABEL:NAME=VALUE",
        help="run the interpreter labelled LABEL with this PYTHON* variable (repeatable)",
    )
    parser.add_argument(
        "--output-dir", type=Path, help="where results go (default: build/cachegrind-results/<UTC time>)"
    )
    args = parser.parse_args(argv)
    if args.target_ms <= 0:
        parser.error("--target-ms must be positive")
    args.names = [n.strip() for n in (args.benchmarks or ",".join(SUBSET)).split(",") if n.strip()]
    if not args.names:
        parser.error("--benchmarks names no benchmark")
    saved = [is_result_file(spec) for spec in (args.baseline, *args.candidates)]
    if any(saved) and not all(saved):
        parser.error("give either interpreters/archives to count, or LABEL=results.json inputs to report, not both")
    args.report_only = all(saved)
    return args


def read_record(path: Path, *keys: str) -> list:
    """The values of `keys` in a results.json this script wrote; a ConfigError for anything else."""
    try:
        record = json.loads(path.read_text())
        return [record[key] for key in keys]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a results.json of this script ({exc})") from None


def load_saved(specs: Sequence[str]) -> tuple[list[str], Results, dict[str, int], list[str]]:
    """Counts of LABEL from each `LABEL=results.json` (runs counted with the same N, as --loops-from makes
    them, combine exactly): the labels, their counts, N per benchmark, and the benchmarks whose N differ."""
    labels: list[str] = []
    results: Results = {}
    loops: dict[str, int] = {}
    differing: list[str] = []
    for spec in specs:
        label, path = split_label(spec)
        counts, recorded = read_record(Path(path), "counts_per_loop", "loops")
        if label is None or label not in counts:
            known = ", ".join(counts) or "none"
            raise ConfigError(
                f"{spec}: name one of the file's labels ({known})", hint=f"e.g. {known.split(',')[0]}={path}"
            )
        if label in results:
            raise ConfigError(f"{label} is given twice", hint="each label once")
        labels.append(label)
        results[label] = counts[label]
        for name in counts[label]:
            if loops.setdefault(name, recorded[name]) != recorded[name] and name not in differing:
                differing.append(name)
    return labels, results, loops, differing


def report_saved(args: argparse.Namespace) -> int:
    """Print the table of saved counts (several runs' results.json combined); nothing is counted again."""
    labels, results, loops, differing = load_saved([args.baseline, *args.candidates])
    header = f"reporting saved counts\ncommand: {shlex.join(sys.argv)}"
    if differing:
        header += f"\nN differs between the files for {', '.join(differing)}: counts per loop, not exactly comparable"
    print(format_report(labels, results, loops, header), end="")
    return 0


def prepare(interpreters: Sequence[Interpreter], tasks: Sequence[Task], tmp: Path, logs: Path) -> dict[str, Path]:
    """Each interpreter's pyperformance venv, by label; labels of one executable (say, with and without an --env
    setting) share one."""
    venvs: dict[Path, Path] = {}
    for interpreter in interpreters:
        if interpreter.python in venvs:
            continue
        print(f"preparing the pyperformance venv of {interpreter.label} ({interpreter.python})", flush=True)
        workdir = tmp / "work" / interpreter.label
        workdir.mkdir(parents=True)
        prepare_venv(interpreter, [t.name for t in tasks], workdir, logs)
        venvs[interpreter.python] = venv_python(workdir)
    return {i.label: venvs[i.python] for i in interpreters}


def loops_recorded(path: Path, names: Sequence[str]) -> dict[str, int]:
    """Each benchmark's N as an earlier run recorded it in its results.json."""
    (recorded,) = read_record(path, "loops")
    missing = [n for n in names if not isinstance(recorded.get(n), int)]
    if missing:
        raise ConfigError(f"--loops-from {path} has no N for {missing[0]}", hint="run the same benchmarks")
    return {n: recorded[n] for n in names}


def run_all(
    args: argparse.Namespace,
    interpreters: Sequence[Interpreter],
    pythons: Mapping[str, Path],
    tasks: Sequence[Task],
    earlier: Mapping[str, int],
    tmp: Path,
    save: Callable[[dict[str, int], Results], None],
) -> tuple[dict[str, int], Results]:
    """N for each benchmark (given, recorded by an earlier run, or calibrated on the baseline), then every
    (interpreter, benchmark) pair under cachegrind, `--jobs` at once, saving after each pair."""
    baseline = interpreters[0]
    loops = {
        t.name: args.loops
        or earlier.get(t.name)
        or calibrate(baseline, pythons[baseline.label], t, args.target_ms / 1000, tmp)
        for t in tasks
    }
    print("loops per benchmark: " + ", ".join(f"{n}={v}" for n, v in loops.items()), flush=True)
    results: Results = {i.label: {} for i in interpreters}
    saving = threading.Lock()
    logs = args.output_dir / "logs"

    def one(pair: tuple[Interpreter, Task]) -> None:
        interpreter, task = pair
        started = time.monotonic()
        try:
            counts = measure(interpreter, pythons[interpreter.label], task, loops[task.name], tmp, logs)
            outcome = f"{estimated_cycles(counts):,.0f} estimated cycles per loop"
            with saving:
                results[interpreter.label][task.name] = counts
                save(loops, results)
        except BenchmarkError as exc:
            outcome = f"FAILED: {exc.one_line()}"
        print(f"{task.name} on {interpreter.label}: {outcome} ({time.monotonic() - started:.0f} s)", flush=True)

    pairs = [(i, t) for t in tasks for i in interpreters]
    with ThreadPoolExecutor(max_workers=args.jobs or os.cpu_count() or 1) as pool:
        list(pool.map(one, pairs))
    return loops, results


def run_header(version: str, interpreters: Sequence[Interpreter]) -> str:
    """The report's first lines: the tools, the command and the interpreters."""
    caches = ", ".join(f"{name} {spec}" for name, spec in SIMULATED_CACHES.items())
    return (
        f"{version} (cachegrind; caches simulated as size,ways,line: {caches}), pyperformance"
        f" {package_version('pyperformance')}\ncommand: {shlex.join(sys.argv)}\n"
        + "\n".join(f"{i.label}: {i.describe()}" for i in interpreters)
    )


def save_record(outdir: Path, header: str, labels: Sequence[str], loops: dict[str, int], results: Results) -> None:
    """results.json: N and every count so far (rewritten atomically after each pair, so a stopped run keeps them)."""
    record = {"header": header, "labels": list(labels), "loops": loops, "counts_per_loop": results}
    write_text_atomic(outdir / "results.json", json.dumps(record, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: one line and a non-zero status on a mistake, no traceback."""
    args = parse_args(argv)
    try:
        if args.report_only:
            return report_saved(args)
        version = valgrind_version()
        tasks = benchmark_tasks(args.names)
        earlier = loops_recorded(args.loops_from, args.names) if args.loops_from else {}
        with tempfile.TemporaryDirectory(prefix="cachegrind-compare-") as tmp_name:
            tmp = Path(tmp_name)
            interpreters = prepare_interpreters([args.baseline, *args.candidates], tmp / "unpacked")
            interpreters = with_environment(interpreters, args.env)
            if (tmp / "unpacked").is_dir():
                strip_debug_info(tmp / "unpacked")
            args.output_dir = choose_output_dir(args.output_dir, "cachegrind-results")
            header = run_header(version, interpreters)
            labels = [i.label for i in interpreters]
            pythons = prepare(interpreters, tasks, tmp, args.output_dir / "logs")

            def save(loops: dict[str, int], results: Results) -> None:
                save_record(args.output_dir, header, labels, loops, results)

            loops, results = run_all(args, interpreters, pythons, tasks, earlier, tmp, save)
    except HermeticError as exc:
        print(f"cachegrind_compare: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    save(loops, results)
    report = format_report(labels, results, loops, header)
    write_text_atomic(args.output_dir / "report.txt", report)
    print("\n" + report + f"results in {args.output_dir}/")
    failed = any(n not in results[label] for label in labels for n in loops)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
