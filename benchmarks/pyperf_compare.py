#!/usr/bin/env python3
"""Run pyperformance on several interpreters in one invocation and compare them against a baseline.

    python benchmarks/pyperf_compare.py --baseline /usr/bin/python3.11 dist/cpython-...-install_only-....tar.gz
    python benchmarks/pyperf_compare.py --baseline base.json candidate.json     # re-compare saved results

An interpreter is a path or a name on PATH, or an archive (install_only, full, or the build's own
build/<target>/cpython-*.tar.zst), which is unpacked into a temporary directory; `LABEL=PATH` names it in the
table and in the result files; `--env LABEL:NAME=VALUE` runs it with an extra environment variable. By default
the 12-benchmark subset of issue 13 runs; `--full` runs pyperformance's default group; `-b` picks any list.

The interpreters are interleaved: every benchmark runs on each interpreter before the next benchmark starts,
and the order of the interpreters rotates from one benchmark (and round) to the next. A change in machine load
(other builds share this machine) then lands on every interpreter within the same minute, instead of on
whichever happened to run its whole suite at that time; the rotation removes any advantage of going first.

Writes `<label>.json` (pyperformance's pyperf suite, re-comparable later with this script or `pyperf
compare_to`), `<label>.startup.json` (start-up samples, pyperf format), `logs/` and `report.txt` into the
output directory, and prints per-benchmark mean times, time ratios against the baseline with pyperf's
significance test, their geometric mean with a resampling interval, and the start-up medians.

The interval draws the rounds again, then the processes within each (every run is marked with its round), so
noise that moves from one minute to the next widens it; with two rounds it is rough. To see the host's noise
directly, name the same archive twice (`default=A.tar.zst again=A.tar.zst`): their ratio is this run's noise
floor, and a lever that does not clearly beat it has not been measured.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "site_scons"))

try:
    import pyperf
except ImportError:
    hint = "run ./scripts/bootstrap, then use .venv/bin/python"
    print(f"pyperf_compare: error: pyperformance is not installed here; {hint}", file=sys.stderr)
    sys.exit(2)
from pyperf_report import ROUND_KEY, Column, Results, columns_for, format_report

from hermetic.archive_extract import extract_tar
from hermetic.errors import ConfigError, HermeticError

REPO = Path(__file__).resolve().parents[1]
# Issue 13's subset: CPU-bound pure-Python benchmarks with no third-party dependencies.
SUBSET = (
    "nbody",
    "float",
    "richards",
    "chaos",
    "deltablue",
    "go",
    "raytrace",
    "json_loads",
    "regex_v8",
    "unpack_sequence",
    "spectral_norm",
    "fannkuch",
)
STARTUP_COMMANDS = {"startup_c_pass": "pass", "startup_import_ssl_hashlib": "import ssl, hashlib"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar")
STARTUP_WARMUPS = 3


class BenchmarkError(HermeticError):
    """pyperformance could not prepare or run an interpreter."""

    exit_code = 1


@dataclass(frozen=True)
class Interpreter:
    """One interpreter under comparison: its label, the executable pyperformance runs, its version, and the
    environment variables it runs with (e.g. PYTHONMALLOC=mimalloc to compare allocators on one build)."""

    label: str
    python: Path
    version: str
    env: dict[str, str] = field(default_factory=dict)
    prefix: Path | None = None  # sys.prefix: where `{prefix}` in an --env value points

    @property
    def benchmark_env(self) -> dict[str, str]:
        """The variables pyperformance passes down to the benchmarks: only PYTHON* ones. pyperformance's own
        process must hold a variable to pass it on; it runs with -E, which keeps PYTHON* variables from acting on
        it, but nothing keeps e.g. OPENSSL_CONF from switching its own hashlib to FIPS mode (where it fails)."""
        return {name: value for name, value in self.env.items() if name.startswith("PYTHON")}

    def describe(self) -> str:
        """Version, executable and environment, for the report's legend."""
        settings = "".join(
            f", {name}={value}" + ("" if name in self.benchmark_env else " (start-up only)")
            for name, value in sorted(self.env.items())
        )
        return f"Python {self.version}, {self.python}{settings}"


# ---------------------------------------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; exits 2 with argparse's message on a malformed one."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="interpreter, archive or result .json to compare against")
    parser.add_argument("candidates", nargs="+", help="interpreters, archives or result .json files")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--full", action="store_true", help="pyperformance's default group (the whole suite)")
    selection.add_argument("--benchmarks", "-b", help="comma-separated pyperformance benchmark names")
    mode = parser.add_mutually_exclusive_group()
    for flag in ("--fast", "--rigorous", "--debug-single-value"):
        mode.add_argument(flag, action="store_true", help=f"passed to pyperformance run ({flag})")
    parser.add_argument(
        "--track-memory",
        action="store_true",
        help="measure each benchmark's peak memory (RSS) instead of its time (pyperformance --track-memory, Linux)",
    )
    parser.add_argument("--rounds", type=positive_int, default=1, help="times each benchmark runs per interpreter")
    parser.add_argument("--startup-runs", type=non_negative_int, default=40, help="start-up samples (0: skip)")
    parser.add_argument(
        "--startup-flags",
        default="-s",
        help="interpreter flags for the start-up samples (default -s: no user site; the site module and the .pth"
        " files of the interpreter's own site-packages still run, add -S to leave them out)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="LABEL:NAME=VALUE",
        help="run the interpreter labelled LABEL with this environment variable (repeatable; PYTHON* variables"
        " for the benchmarks and start-up, others for start-up only); {prefix} in VALUE is its sys.prefix",
    )
    parser.add_argument("--output-dir", type=Path, help="where results go (default: build/pyperf-results/<UTC time>)")
    args = parser.parse_args(argv)
    try:
        args.startup_argv = shlex.split(args.startup_flags)
    except ValueError as exc:
        parser.error(f"--startup-flags: {exc}")
    inputs = [args.baseline, *args.candidates]
    saved = [is_result_file(spec) for spec in inputs]
    if any(saved) and not all(saved):
        parser.error("give either interpreters/archives to run, or saved result .json files to re-compare, not both")
    args.compare_only = all(saved)
    return args


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def is_result_file(spec: str) -> bool:
    """Whether a command-line input names a saved pyperf result rather than something to run."""
    return split_label(spec)[1].endswith(".json")


def split_label(spec: str) -> tuple[str | None, str]:
    """`LABEL=PATH` into its parts; a plain path has no label."""
    label, sep, path = spec.partition("=")
    if sep and label and "/" not in label:
        return label, path
    return None, spec


def pyperformance_mode(args: argparse.Namespace) -> list[str]:
    """The pyperformance run flags chosen on the command line (none: pyperformance's normal mode, timed)."""
    chosen = [flag for flag in ("fast", "rigorous", "debug_single_value") if getattr(args, flag)]
    if args.track_memory:
        chosen.append("track_memory")
    return ["--" + flag.replace("_", "-") for flag in chosen]


def benchmark_names(args: argparse.Namespace) -> list[str]:
    """The benchmarks to run, in the order they will run."""
    if args.benchmarks:
        names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
        if not names:
            raise ConfigError("--benchmarks names no benchmark", hint="give comma-separated names, e.g. -b nbody,go")
        return names
    if args.full:
        return pyperformance_group("default")
    return list(SUBSET)


def pyperformance_group(group: str) -> list[str]:
    """Expand a pyperformance group into benchmark names (so the harness can interleave them one by one)."""
    result = subprocess.run(
        [sys.executable, "-m", "pyperformance", "list", "-b", group], capture_output=True, text=True, check=False
    )
    names = re.findall(r"^- (\S+)$", result.stdout, flags=re.MULTILINE)
    if result.returncode != 0 or not names:
        raise BenchmarkError(f"pyperformance list -b {group} failed: {result.stderr.strip()[-300:]}")
    return names


# ---------------------------------------------------------------------------------------------- interpreters


def is_archive(path: Path) -> bool:
    """Whether `path` names a tarball (by its suffix)."""
    return path.name.endswith(ARCHIVE_SUFFIXES)


def archive_stem(path: Path) -> str:
    """The archive's name without its tarball suffix."""
    for suffix in ARCHIVE_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


# Where the interpreter is in an install_only archive, a full archive, and the build's own CPython artifact
# (build/<target>/cpython-<version>-<options>.tar.zst, handy for comparing builds before a distribution exists).
ARCHIVE_INTERPRETERS = ("python/bin/python3", "python/install/bin/python3", "install/bin/python3")


def unpack_archive(archive: Path, dest: Path) -> Path:
    """Unpack a distribution (or CPython artifact) archive into `dest`; return the interpreter inside it."""
    extract_tar(archive, dest)
    for candidate in ARCHIVE_INTERPRETERS:
        if (dest / candidate).is_file():
            return dest / candidate
    raise ConfigError(
        f"{archive.name} holds no {' nor '.join(ARCHIVE_INTERPRETERS)}",
        hint="give an install_only or full distribution archive, or a CPython build artifact",
    )


def locate(spec_path: str) -> Path:
    """An existing file for a path or a command name on PATH."""
    path = Path(spec_path).expanduser()
    if "/" not in spec_path and not path.exists():
        found = shutil.which(spec_path)
        if found:
            return Path(found)
    if not path.is_file():
        raise ConfigError(f"{spec_path}: no such file", hint="give an interpreter path or an install_only archive")
    return path.absolute()


def describe(python: Path) -> tuple[Path, str, Path]:
    """The real executable behind `python` (pyenv shims and the like resolve here), its version and sys.prefix."""
    code = "import sys, platform; print(sys.executable); print(platform.python_version()); print(sys.prefix)"
    try:
        result = subprocess.run(
            [str(python), "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError as exc:
        raise ConfigError(f"{python}: cannot run it ({exc.strerror})", hint="give a Python interpreter") from None
    lines = result.stdout.splitlines()
    if result.returncode != 0 or len(lines) != 3:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"{python} is not a working Python interpreter: {detail}", hint="give a Python interpreter")
    return Path(lines[0]), lines[1], Path(lines[2])


def default_label(spec_path: str, python: Path) -> str:
    """A file-name-safe label: the archive's stem, or the interpreter's path."""
    source = Path(spec_path)
    if is_archive(source):
        return archive_stem(source)
    return str(python).strip("/").replace("/", "_")


def prepare_interpreters(specs: Sequence[str], unpack_root: Path) -> list[Interpreter]:
    """Resolve every command-line input to a runnable interpreter, unpacking archives under `unpack_root`."""
    interpreters = []
    for index, spec in enumerate(specs):
        label, spec_path = split_label(spec)
        path = locate(spec_path)
        if is_archive(path):
            path = unpack_archive(path, unpack_root / str(index))
        python, version, prefix = describe(path)
        interpreters.append(Interpreter(label or default_label(spec_path, python), python, version, prefix=prefix))
    labels = [i.label for i in interpreters]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(f"two inputs share the label {duplicates[0]}", hint="name them with LABEL=PATH")
    return interpreters


def with_environment(interpreters: Sequence[Interpreter], settings: Sequence[str]) -> list[Interpreter]:
    """Apply `--env LABEL:NAME=VALUE` settings to the interpreters they name; `{prefix}` in a value is the
    interpreter's sys.prefix (e.g. OPENSSL_CONF={prefix}/share/ssl/openssl-fips.cnf for an unpacked archive:
    start-up in FIPS mode)."""
    env: dict[str, dict[str, str]] = {i.label: {} for i in interpreters}
    for setting in settings:
        label, _, assignment = setting.partition(":")
        name, equals, value = assignment.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"--env {setting}: not LABEL:NAME=VALUE", hint="e.g. --env ours:PYTHONMALLOC=mimalloc")
        if label not in env:
            raise ConfigError(f"--env {setting}: no interpreter is labelled {label}", hint=f"labels: {', '.join(env)}")
        env[label][name] = value
    return [
        replace(i, env={name: value.replace("{prefix}", str(i.prefix)) for name, value in env[i.label].items()})
        for i in interpreters
    ]


# ---------------------------------------------------------------------------------------------- running


def rotated(items: Sequence[Any], shift: int) -> list[Any]:
    """`items` starting at position `shift` (modulo its length): the interleaving order of one step."""
    if not items:
        return []
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def run_pyperformance(interpreter: Interpreter, argv: Sequence[str], workdir: Path, logs: Path) -> int:
    """Run `python -m pyperformance ARGV --python <interpreter>` in `workdir` (where it keeps its venvs), with the
    interpreter's environment variables passed down to the benchmark processes; output goes to its log."""
    argv = [*argv, "--python", str(interpreter.python)]
    if interpreter.benchmark_env:
        argv += ["--inherit-environ", ",".join(sorted(interpreter.benchmark_env))]
    with open(logs / f"{interpreter.label}.log", "a") as out:
        out.write(f"\n$ pyperformance {shlex.join(argv)}\n")
        out.flush()
        # -E: the variables are for the benchmarked interpreter; the harness's Python must not act on them.
        return subprocess.run(
            [sys.executable, "-E", "-m", "pyperformance", *argv],
            cwd=workdir,
            env={**os.environ, **interpreter.benchmark_env},
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode


def prepare_venv(interpreter: Interpreter, benchmarks: Sequence[str], workdir: Path, logs: Path) -> None:
    """Create the interpreter's pyperformance venv with every benchmark's requirements, before timing anything."""
    if run_pyperformance(interpreter, ["venv", "create", "--benchmarks", ",".join(benchmarks)], workdir, logs) != 0:
        raise BenchmarkError(
            f"pyperformance could not create a venv for {interpreter.label} ({interpreter.python})",
            hint=f"see the end of {logs / interpreter.label}.log",
        )


def run_benchmark(
    interpreter: Interpreter, benchmark: str, mode: Sequence[str], workdir: Path, logs: Path
) -> pyperf.BenchmarkSuite | None:
    """One benchmark on one interpreter; None when pyperformance failed (its log says why)."""
    output = workdir / f"{interpreter.label}.{benchmark}.json"
    output.unlink(missing_ok=True)
    argv = ["run", "--benchmarks", benchmark, *mode, "--output", str(output)]
    if run_pyperformance(interpreter, argv, workdir, logs) != 0 or not output.exists():
        return None
    suite = pyperf.BenchmarkSuite.load(str(output))
    output.unlink()
    return suite


def dump_atomic(suite: pyperf.BenchmarkSuite, path: Path) -> None:
    """Write a pyperf suite to `path` through a temporary file in the same directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    Path(tmp).chmod(0o644)  # results are for sharing; mkstemp makes them private
    try:
        suite.dump(tmp, replace=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_interleaved(
    interpreters: Sequence[Interpreter],
    benchmarks: Sequence[str],
    rounds: int,
    mode: Sequence[str],
    workdir: Path,
    outdir: Path,
) -> Results:
    """Every benchmark on every interpreter (rotating their order), merging runs and saving after each one."""
    results = Results()
    logs = outdir / "logs"
    steps = [(r, b) for r in range(rounds) for b in benchmarks]
    total = len(steps) * len(interpreters)
    done = 0
    for index, (round_index, benchmark) in enumerate(steps):
        for interpreter in rotated(interpreters, index):
            done += 1
            started = time.monotonic()
            suite = run_benchmark(interpreter, benchmark, mode, workdir, logs)
            took = time.monotonic() - started
            where = f"[{done}/{total}] round {round_index + 1} {benchmark} on {interpreter.label}"
            if suite is None:
                results.failures.append((interpreter.label, benchmark))
                print(f"{where}: FAILED after {took:.0f} s (see {logs / interpreter.label}.log)", flush=True)
                continue
            suite = mark_round(suite, round_index + 1)
            merged = results.suites.setdefault(interpreter.label, suite)
            if merged is not suite:
                merged.add_runs(suite)
            dump_atomic(merged, outdir / f"{interpreter.label}.json")
            print(f"{where}: {summarize(suite)} ({took:.0f} s)", flush=True)
    return results


def mark_round(suite: pyperf.BenchmarkSuite, number: int) -> pyperf.BenchmarkSuite:
    """The same results, every run marked with the round that made it (the report's interval draws a round's
    runs together)."""
    return pyperf.BenchmarkSuite(
        [
            pyperf.Benchmark(
                [
                    pyperf.Run(
                        run.values,
                        warmups=run.warmups or None,
                        metadata={**run.get_metadata(), ROUND_KEY: number},
                        collect_metadata=False,
                    )
                    for run in bench.get_runs()
                ]
            )
            for bench in suite.get_benchmarks()
        ]
    )


def summarize(suite: pyperf.BenchmarkSuite) -> str:
    """`name: mean +- stdev` of each benchmark in a suite, for the progress line."""
    parts = []
    for bench in suite.get_benchmarks():
        values = bench.get_values()
        spread = f" +- {bench.format_value(statistics.stdev(values))}" if len(values) > 1 else ""
        parts.append(f"{bench.get_name()} {bench.format_value(bench.mean())}{spread}")
    return ", ".join(parts)


def time_startup(interpreter: Interpreter, flags: Sequence[str], code: str) -> float:
    """Wall time of one `python FLAGS -c CODE` as seen by its parent, in seconds."""
    argv = [str(interpreter.python), *flags, "-c", code]
    # PYTHON* variables of the harness's own environment would change what is measured; --env ones are wanted.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")} | interpreter.env
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - started
    if result.returncode != 0:
        detail = (result.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(f"{interpreter.python} -c {code!r} failed: {detail}")
    return took


def measure_startup(
    interpreters: Sequence[Interpreter], runs: int, flags: Sequence[str]
) -> dict[str, dict[str, list[float]]]:
    """Start-up samples per interpreter and command, interleaved sample by sample with a rotating order; the
    first few samples of each are warm-ups (page cache) and are dropped."""
    samples: dict[str, dict[str, list[float]]] = {
        i.label: {name: [] for name in STARTUP_COMMANDS} for i in interpreters
    }
    for sample in range(STARTUP_WARMUPS + runs):
        for name, code in STARTUP_COMMANDS.items():
            for interpreter in rotated(interpreters, sample):
                took = time_startup(interpreter, flags, code)
                if sample >= STARTUP_WARMUPS:
                    samples[interpreter.label][name].append(took)
    return samples


def startup_suite(
    interpreter: Interpreter, samples: dict[str, list[float]], flags: Sequence[str]
) -> pyperf.BenchmarkSuite:
    """Start-up samples as a pyperf suite (one benchmark per command), so pyperf's tools can read them."""
    benchmarks = []
    for name, values in samples.items():
        metadata = {
            "name": name,
            "unit": "second",
            "loops": 1,
            "description": f"wall time of `python {shlex.join(flags)} -c {STARTUP_COMMANDS[name]!r}` (parent's view)"
            + "".join(f", {var}={value}" for var, value in sorted(interpreter.env.items())),
            "python_executable": str(interpreter.python),
            "python_version": interpreter.version,
        }
        benchmarks.append(
            pyperf.Benchmark([pyperf.Run(values, warmups=None, metadata=metadata, collect_metadata=False)])
        )
    return pyperf.BenchmarkSuite(benchmarks)


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, to print beside the numbers."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def startup_and_save(
    interpreters: Sequence[Interpreter], runs: int, flags: Sequence[str], results: Results, outdir: Path
) -> None:
    """Measure start-up, add it to `results` and save `<label>.startup.json` for each interpreter."""
    print(f"start-up: {runs} samples of each command per interpreter, interleaved", flush=True)
    samples = measure_startup(interpreters, runs, flags)
    for interpreter in interpreters:
        results.startup[interpreter.label] = startup_suite(interpreter, samples[interpreter.label], flags)
        dump_atomic(results.startup[interpreter.label], outdir / f"{interpreter.label}.startup.json")


# ---------------------------------------------------------------------------------------------- main


def choose_output_dir(requested: Path | None, results_dir: str = "pyperf-results") -> Path:
    """The output directory (default build/<results_dir>/<UTC time>): new or empty, so results of different runs
    never mix."""
    outdir = requested or REPO / "build" / results_dir / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise ConfigError(f"{outdir} already exists and is not empty", hint="choose a new or empty --output-dir")
    (outdir / "logs").mkdir(parents=True, exist_ok=True)
    return outdir


def run_and_report(args: argparse.Namespace) -> int:
    """Prepare the interpreters, run pyperformance interleaved, measure start-up, save and print the report."""
    benchmarks = benchmark_names(args)
    mode = pyperformance_mode(args)
    with tempfile.TemporaryDirectory(prefix="pyperf-compare-") as tmp:
        interpreters = prepare_interpreters([args.baseline, *args.candidates], Path(tmp) / "unpacked")
        interpreters = with_environment(interpreters, args.env)
        outdir = choose_output_dir(args.output_dir)
        for interpreter in interpreters:
            print(f"preparing the pyperformance venv of {interpreter.label} ({interpreter.python})", flush=True)
            prepare_venv(interpreter, benchmarks, Path(tmp), outdir / "logs")
        load_before = load_average()
        results = run_interleaved(interpreters, benchmarks, args.rounds, mode, Path(tmp), outdir)
        if args.startup_runs:
            startup_and_save(interpreters, args.startup_runs, args.startup_argv, results, outdir)
    header = (
        f"pyperformance {package_version('pyperformance')}, pyperf {pyperf.__version__}:"
        f" {len(benchmarks)} benchmark(s), mode {' '.join(mode) or 'normal'}, {args.rounds} round(s),"
        f" interleaved per benchmark; start-up: python {args.startup_flags} -c ..., {args.startup_runs} samples"
        f"\ncommand: {shlex.join(sys.argv)}"
        f"\nload average (1/5/15 min) before: {load_before}; after: {load_average()} ({os.cpu_count()} CPUs)"
    )
    if args.track_memory:
        header += "\nvalues are each benchmark's peak memory (RSS), not its time"
    descriptions = {i.label: i.describe() for i in interpreters}
    columns = columns_for([i.label for i in interpreters], descriptions)
    return finish(outdir, columns, results, header)


def finish(outdir: Path | None, columns: Sequence[Column], results: Results, header: str) -> int:
    """Print the report, save it as report.txt, and return the exit status (1 if any benchmark failed)."""
    report = format_report(columns, results, header)
    print("\n" + report, end="")
    if outdir is not None:
        write_text_atomic(outdir / "report.txt", report)
        print(f"results in {outdir}/")
    return 1 if results.failures else 0


def package_version(name: str) -> str:
    """The installed version of a distribution package (the one the results come from)."""
    from importlib.metadata import version

    return version(name)


def load_saved(spec: str) -> tuple[str, pyperf.BenchmarkSuite, pyperf.BenchmarkSuite | None, str]:
    """A saved `<label>.json` and its `<label>.startup.json` sibling if there is one, with a description."""
    label, spec_path = split_label(spec)
    path = Path(spec_path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file", hint="give pyperf result files written by this script")
    stem = path.name.removesuffix(".json")
    try:
        suite = pyperf.BenchmarkSuite.load(str(path))
        startup_path = path.with_name(f"{stem}.startup.json")
        startup = pyperf.BenchmarkSuite.load(str(startup_path)) if startup_path.is_file() else None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a pyperf result file ({exc})", hint="give files this script wrote") from None
    meta = (startup or suite).get_benchmarks()[0].get_metadata()
    description = f"Python {meta.get('python_version', '?')}, {meta.get('python_executable', '?')}"
    return label or stem, suite, startup, description


def compare_saved(args: argparse.Namespace) -> int:
    """Re-compare saved result files (start-up too when every one has its `.startup.json` sibling)."""
    results = Results()
    descriptions = {}
    labels = []
    for spec in [args.baseline, *args.candidates]:
        label, suite, startup, descriptions[label] = load_saved(spec)
        if label in labels:
            raise ConfigError(f"two inputs share the label {label}", hint="name them with LABEL=PATH")
        labels.append(label)
        results.suites[label] = suite
        if startup is not None:
            results.startup[label] = startup
    header = f"re-comparing saved results\ncommand: {shlex.join(sys.argv)}"
    return finish(None, columns_for(labels, descriptions), results, header)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: one line and a non-zero status on a mistake, no traceback."""
    args = parse_args(argv)
    try:
        return compare_saved(args) if args.compare_only else run_and_report(args)
    except HermeticError as exc:
        print(f"pyperf_compare: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
