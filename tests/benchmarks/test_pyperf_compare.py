"""benchmarks/pyperf_compare.py and pyperf_report.py: arguments, archives, the ratio and geometric-mean maths on
real pyperf objects, re-comparison of saved files, start-up sampling, and one tiny real pyperformance run."""

from __future__ import annotations

import io
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

import pyperf
import pytest
import zstandard

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import pyperf_compare as pc
import pyperf_report as pr

from hermetic.errors import ConfigError


def suite_of(
    values_by_name: dict[str, list[float]], python: str = "/usr/bin/python3", unit: str = "second"
) -> pyperf.BenchmarkSuite:
    """A real pyperf suite: one run per benchmark holding `values` (in `unit`)."""
    return suite_of_runs({name: [values] for name, values in values_by_name.items()}, python, unit)


def suite_of_runs(
    runs_by_name: dict[str, list[list[float]]], python: str = "/usr/bin/python3", unit: str = "second"
) -> pyperf.BenchmarkSuite:
    """A real pyperf suite: per benchmark, one run (one process, for pyperf) per list of values."""
    benchmarks = []
    for name, runs in runs_by_name.items():
        meta = {"name": name, "unit": unit, "loops": 1, "python_executable": python, "python_version": "3.x"}
        benchmarks.append(
            pyperf.Benchmark([pyperf.Run(v, warmups=None, metadata=meta, collect_metadata=False) for v in runs])
        )
    return pyperf.BenchmarkSuite(benchmarks)


def noisy(center: float, spread: float = 0.01, n: int = 20) -> list[float]:
    """`n` deterministic values around `center`, within +-spread (relative)."""
    return [center * (1 + spread * ((i * 7 % n) / n - 0.5)) for i in range(n)]


# ---------------------------------------------------------------------------------------------- arguments


def test_defaults_select_the_issue_subset_in_normal_mode() -> None:
    args = pc.parse_args(["--baseline", "/usr/bin/python3", "python3"])
    assert pc.benchmark_names(args) == [
        "nbody", "float", "richards", "chaos", "deltablue", "go", "raytrace",
        "json_loads", "regex_v8", "unpack_sequence", "spectral_norm", "fannkuch",
    ]  # fmt: skip
    assert pc.pyperformance_mode(args) == []
    assert (args.rounds, args.startup_runs, args.startup_argv, args.compare_only) == (1, 40, ["-s"], False)


@pytest.mark.parametrize("flag", ["--fast", "--rigorous", "--debug-single-value"])
def test_mode_flags_pass_through(flag: str) -> None:
    assert pc.pyperformance_mode(pc.parse_args(["--baseline", "a", "b", flag])) == [flag]
    assert pc.pyperformance_mode(pc.parse_args(["--baseline", "a", "b", flag, "--track-memory"])) == [
        flag,
        "--track-memory",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["--baseline", "a", "b", "--fast", "--rigorous"],
        ["--baseline", "a", "b", "--full", "-b", "nbody"],
        ["--baseline", "a", "b", "--rounds", "0"],
        ["--baseline", "a", "b", "--startup-runs", "-1"],
        ["--baseline", "a.json", "b"],  # saved results and interpreters mixed
        ["--baseline", "a"],  # no candidate
        ["--baseline", "a", "b", "--startup-flags", "-s '"],
    ],
)
def test_malformed_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        pc.parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_explicit_benchmark_list_and_full_suite() -> None:
    assert pc.benchmark_names(pc.parse_args(["--baseline", "a", "b", "-b", " nbody, go ,"])) == ["nbody", "go"]
    with pytest.raises(ConfigError):
        pc.benchmark_names(pc.parse_args(["--baseline", "a", "b", "-b", ","]))
    full = pc.benchmark_names(pc.parse_args(["--baseline", "a", "b", "--full"]))  # asks the real pyperformance
    assert set(pc.SUBSET) < set(full)
    assert len(full) > 50 and len(set(full)) == len(full)


def test_without_pyperformance_the_script_says_how_to_get_it() -> None:
    script = REPO_ROOT / "benchmarks" / "pyperf_compare.py"
    # -S: without site-packages, so pyperf cannot be imported.
    result = subprocess.run([sys.executable, "-S", str(script), "--baseline", "a", "b"], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "pyperf_compare: error: pyperformance is not installed here; run ./scripts/bootstrap, then use .venv/bin/python"
    ]


def test_labels_and_saved_results() -> None:
    assert pc.split_label("debian=/usr/bin/python3.11") == ("debian", "/usr/bin/python3.11")
    assert pc.split_label("/opt/a=b/python3") == (None, "/opt/a=b/python3")
    assert pc.parse_args(["--baseline", "base=x/a.json", "b.json"]).compare_only


def test_rotation_puts_every_interpreter_first_equally_often() -> None:
    items = ["a", "b", "c"]
    orders = [pc.rotated(items, shift) for shift in range(6)]
    assert orders[:3] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert orders[3:] == orders[:3]
    assert [order[0] for order in orders].count("b") == 2


# ---------------------------------------------------------------------------------------------- maths


def test_geometric_mean_is_symmetric_in_speedups() -> None:
    assert pr.geometric_mean([2.0, 0.5]) == pytest.approx(1.0)
    assert pr.geometric_mean([1.1, 1.2, 0.9]) == pytest.approx((1.1 * 1.2 * 0.9) ** (1 / 3))
    with pytest.raises(ValueError):
        pr.geometric_mean([])


def test_comparison_ratios_significance_and_leftovers() -> None:
    baseline = suite_of({"fast": noisy(1.0), "same": noisy(2.0), "slow": noisy(3.0), "gone": noisy(1.0)})
    candidate = suite_of({"fast": noisy(0.8), "same": noisy(2.0), "slow": noisy(3.6), "new": noisy(1.0)})
    comparison = pr.compare_suites(baseline, candidate)
    ratios = {row.name: row.ratio for row in comparison.rows}
    assert ratios == pytest.approx({"fast": 0.8, "same": 1.0, "slow": 1.2})
    assert {row.name: row.verdict for row in comparison.rows} == {"fast": "faster", "same": "~", "slow": "slower"}
    assert (comparison.only_baseline, comparison.only_candidate) == (["gone"], ["new"])
    assert comparison.geometric_mean == pytest.approx((0.8 * 1.0 * 1.2) ** (1 / 3))
    assert (comparison.count("faster"), comparison.count("slower"), comparison.count("~")) == (1, 1, 1)


def test_geomean_interval_is_narrow_for_a_clear_difference_and_wide_for_noise() -> None:
    names = ("a", "b", "c")
    # Each process within 1 % of the next.
    steady = pr.compare_suites(
        suite_of_runs({n: [noisy(1.0 + 0.002 * (i % 5), 0.01, 4) for i in range(10)] for n in names}),
        suite_of_runs({n: [noisy(1.2 + 0.002 * (i % 3), 0.01, 4) for i in range(10)] for n in names}),
    )
    low, high = steady.geomean_interval()
    assert low <= steady.geometric_mean <= high and 1.19 < low < high < 1.21
    assert steady.geomean_interval() == (low, high)  # seeded: the same results give the same interval

    # Same distribution on both sides, but each process lands 10 % faster or slower than the next.
    lucky = [[v * (0.9 if i % 2 else 1.1) for v in noisy(1.0, 0.01, 4)] for i in range(10)]
    same = pr.compare_suites(suite_of_runs({n: lucky for n in names}), suite_of_runs({n: lucky[::-1] for n in names}))
    low, high = same.geomean_interval()
    assert low < 1.0 < high and high - low > 0.03


def test_the_interval_draws_whole_runs_and_single_values_only_when_runs_are_few() -> None:
    runs = [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0], [5.0, 5.0]]
    (bench,) = suite_of_runs({"b": runs}).get_benchmarks()
    assert pr.sample_blocks(bench) == [runs]
    (bench,) = suite_of_runs({"b": runs[:2]}).get_benchmarks()
    assert pr.sample_blocks(bench) == [[[1.0], [1.0], [2.0], [2.0]]]
    # Values that always travel with their run: a resampled mean is a mean of whole runs.
    rng = random.Random(1)
    (bench,) = suite_of_runs({"b": runs}).get_benchmarks()
    sums = [pr.resampled(pr.sample_blocks(bench), rng, statistics.fmean) * 5 for _ in range(50)]
    assert all(s == pytest.approx(round(s)) for s in sums) and len(set(map(round, sums))) > 3


def rounds_of(bench: pyperf.Benchmark) -> list[list[list[float]]]:
    return [[list(run) for run in block] for block in pr.sample_blocks(bench)]


def test_runs_are_drawn_by_the_round_that_made_them() -> None:
    first = suite_of_runs({"b": [[1.0], [1.1], [1.2]]})
    second = suite_of_runs({"b": [[2.0], [2.1], [2.2]]})
    merged = pc.mark_round(first, 1)
    merged.add_runs(pc.mark_round(second, 2))
    (bench,) = merged.get_benchmarks()
    assert rounds_of(bench) == [[[1.0], [1.1], [1.2]], [[2.0], [2.1], [2.2]]]


def test_results_saved_without_round_marks_split_where_pyperf_calibrated() -> None:
    meta = {"name": "b", "unit": "second", "loops": 1}
    calibration = pyperf.Run([], warmups=[(1, 0.5)], metadata={**meta, "calibrate_loops": 1}, collect_metadata=False)

    def run(value: float) -> pyperf.Run:
        return pyperf.Run([value], metadata=meta, collect_metadata=False)

    bench = pyperf.Benchmark([calibration, run(1.0), run(1.1), run(1.2), calibration, run(2.0), run(2.1), calibration])
    assert rounds_of(bench) == [[[1.0], [1.1], [1.2]], [[2.0], [2.1]]]


def test_a_difference_between_rounds_widens_the_interval() -> None:
    """Two rounds of 20 steady processes each: the candidate's first round ran 8 % slow, its second as fast
    as the baseline. Drawn process by process, the 4 % looks certain; drawn by round, it does not."""

    def steady(center: float) -> list[list[float]]:
        return [[center * (1 + 0.001 * (i % 3))] for i in range(20)]

    def two_rounds(first: float, second: float, *, marked: bool) -> pyperf.BenchmarkSuite:
        rounds = [suite_of_runs({"b": steady(first)}), suite_of_runs({"b": steady(second)})]
        if marked:
            rounds = [pc.mark_round(suite, n) for n, suite in enumerate(rounds, 1)]
        rounds[0].add_runs(rounds[1])
        return rounds[0]

    by_round = pr.compare_suites(two_rounds(1.0, 1.0, marked=True), two_rounds(1.08, 1.0, marked=True))
    by_process = pr.compare_suites(two_rounds(1.0, 1.0, marked=False), two_rounds(1.08, 1.0, marked=False))
    assert by_round.geometric_mean == pytest.approx(by_process.geometric_mean)
    low, high = by_process.geomean_interval()
    assert 1.0 < low < high < 1.08
    low, high = by_round.geomean_interval()
    assert low <= 1.0 and high >= 1.07


def test_round_marks_survive_saving_and_leave_the_results_alone(tmp_path: Path) -> None:
    suite = suite_of_runs({"a": [[1.0, 1.1], [1.2, 1.3]], "b": [[2.0], [2.5]]})
    path = tmp_path / "marked.json"
    pc.mark_round(suite, 3).dump(str(path))
    loaded = pyperf.BenchmarkSuite.load(str(path))
    for before, after in zip(suite.get_benchmarks(), loaded.get_benchmarks(), strict=True):
        assert [r.values for r in after.get_runs()] == [r.values for r in before.get_runs()]
        assert {k: v for k, v in after.get_metadata().items() if k != pr.ROUND_KEY} == before.get_metadata()
        assert {r.get_metadata()[pr.ROUND_KEY] for r in after.get_runs()} == {3}


def test_memory_results_are_larger_or_smaller_not_slower_or_faster() -> None:
    # --track-memory's suites hold peak RSS in bytes.
    baseline = suite_of({"big": noisy(10e6), "small": noisy(10e6)}, unit="byte")
    candidate = suite_of({"big": noisy(12e6), "small": noisy(9e6)}, unit="byte")
    comparison = pr.compare_suites(baseline, candidate)
    assert {row.name: row.verdict for row in comparison.rows} == {"big": "larger", "small": "smaller"}
    summary = pr.format_summary("B", comparison)
    assert "(B is 1.039x larger) over 2 benchmark(s): 1 smaller, 1 larger, 0 not significant" in summary


def test_overlapping_samples_are_not_significant() -> None:
    baseline = suite_of({"b": [1.00, 1.10, 0.90, 1.05, 0.95]})
    candidate = suite_of({"b": [1.03, 0.93, 1.09, 0.98, 1.02]})
    (row,) = pr.compare_suites(baseline, candidate).rows
    assert row.ratio != 1.0 and row.verdict == "~"


def test_report_shows_every_interpreter_and_missing_results() -> None:
    results = pr.Results(
        suites={"x": suite_of({"b1": noisy(1.0)}), "y": suite_of({"b1": noisy(1.5)}), "z": suite_of({"b2": [1.0]})},
    )
    results.failures.append(("z", "b1"))
    report = pr.format_report(pr.columns_for(["x", "y", "z"], {"x": "Python 3.x"}), results, "header line")
    lines = report.splitlines()
    assert lines[0] == "header line"
    assert "  base  x  Python 3.x" in lines and "  C     z" in lines
    table_row = next(line for line in lines if line.startswith("b1 "))
    assert table_row.split() == ["b1", "1000", "ms", "1.50", "sec", "1.500", "slower", "missing"]
    assert "B/base geometric mean 1.500 (B is 1.500x slower) over 1 benchmark(s): 0 faster, 1 slower" in report
    assert "C: no benchmark in common with the baseline; left out: b1, b2" in report
    assert "FAILED: b1 on z" in report


# ---------------------------------------------------------------------------------------------- archives


def wrapper_script() -> bytes:
    """An executable `python3` for a crafted archive: runs the Python running the tests."""
    return f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'.encode()


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def make_archive(path: Path, members: dict[str, bytes]) -> Path:
    """A real .tar.gz or .tar.zst with these regular files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            add_file(tar, name, data)
    if path.name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    else:
        with tarfile.open(fileobj=io.BytesIO(raw.getvalue())) as src, tarfile.open(path, "w:gz") as dst:
            for member in src:
                dst.addfile(member, src.extractfile(member))
    return path


def test_install_only_and_full_archives_unpack_to_a_working_interpreter(tmp_path: Path) -> None:
    install_only = make_archive(
        tmp_path / "cpython-3.x-x86_64-unknown-linux-gnu-install_only-1.tar.gz",
        {"python/bin/python3": wrapper_script(), "python/lib/marker": b"x"},
    )
    full = make_archive(tmp_path / "cpython-3.x-full.tar.zst", {"python/install/bin/python3": wrapper_script()})
    artifact = make_archive(tmp_path / "cpython-3.x-noopt.tar.zst", {"install/bin/python3": wrapper_script()})
    interpreters = pc.prepare_interpreters([str(install_only), f"mine={full}", str(artifact)], tmp_path / "unpacked")
    version = ".".join(map(str, sys.version_info[:3]))
    assert [(i.label, i.version) for i in interpreters] == [
        ("cpython-3.x-x86_64-unknown-linux-gnu-install_only-1", version),
        ("mine", version),
        ("cpython-3.x-noopt", version),
    ]
    assert (tmp_path / "unpacked" / "0" / "python" / "lib" / "marker").read_bytes() == b"x"
    assert all(i.prefix == Path(sys.prefix) for i in interpreters)  # the wrapper runs the tests' Python


def test_archive_without_python_and_unsafe_archive_exit_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = make_archive(tmp_path / "nothing.tar.gz", {"python/lib/x": b""})
    assert pc.main(["--baseline", sys.executable, str(empty), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing.tar.gz holds no python/bin/python3 nor" in err
    evil = make_archive(tmp_path / "evil.tar.gz", {"python/../../escaped": b"x", "python/bin/python3": b""})
    assert pc.main(["--baseline", sys.executable, str(evil)]) == 8
    assert "escapes its directory" in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists()


def test_unusable_inputs_and_used_output_dir_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pc.main(["--baseline", sys.executable, str(tmp_path / "absent")]) == 2
    assert "absent: no such file" in capsys.readouterr().err
    not_python = tmp_path / "not-python"
    not_python.write_text("#!/bin/sh\necho hello\n")
    not_python.chmod(0o755)
    assert pc.main(["--baseline", sys.executable, str(not_python)]) == 2
    assert "is not a working Python interpreter" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.json").write_text("{}")
    same_twice = ["--baseline", sys.executable, sys.executable, "--output-dir", str(tmp_path / "new")]
    assert pc.main(same_twice) == 2
    assert "two inputs share the label" in capsys.readouterr().err
    assert (
        pc.main(["--baseline", f"a={sys.executable}", f"b={sys.executable}", "--output-dir", str(tmp_path / "out")])
        == 2
    )
    assert "already exists and is not empty" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_shims_resolve_to_the_real_executable(tmp_path: Path) -> None:
    shim = tmp_path / "python-shim"
    shim.write_bytes(wrapper_script())
    shim.chmod(0o755)
    assert pc.describe(shim) == (Path(sys.executable), ".".join(map(str, sys.version_info[:3])), Path(sys.prefix))


# ---------------------------------------------------------------------------------------------- saved results


def test_saved_results_are_recompared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for label, scale in (("old", 1.0), ("new", 0.9)):
        suite_of({"b1": noisy(1.0 * scale), "b2": noisy(4.0 * scale)}).dump(str(tmp_path / f"{label}.json"))
        suite_of({"startup_c_pass": noisy(0.02 / scale)}).dump(str(tmp_path / f"{label}.startup.json"))
    assert pc.main(["--baseline", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0
    out = capsys.readouterr().out
    assert "B/base geometric mean 0.900 (B is 1.111x faster) over 2 benchmark(s): 2 faster, 0 slower" in out
    assert "B/base geometric mean 1.111 (B is 1.111x slower) over 1 benchmark(s)" in out  # start-up, medians


def test_a_file_that_is_not_a_pyperf_result_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"not": "pyperf"}))
    (tmp_path / "b.json").write_text(json.dumps({"not": "pyperf"}))
    assert pc.main(["--baseline", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    assert "is not a pyperf result file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- start-up


def test_startup_samples_are_interleaved_and_round_trip(tmp_path: Path) -> None:
    python = Path(sys.executable)
    interpreters = [pc.Interpreter("one", python, "3.x"), pc.Interpreter("two", python, "3.x")]
    samples = pc.measure_startup(interpreters, 3, ["-s"])
    assert set(samples) == {"one", "two"}
    assert all(
        len(values) == 3 and min(values) > 0 for by_command in samples.values() for values in by_command.values()
    )
    path = tmp_path / "one.startup.json"
    pc.dump_atomic(pc.startup_suite(interpreters[0], samples["one"], ["-s"]), path)
    loaded = pyperf.BenchmarkSuite.load(str(path)).get_benchmark("startup_import_ssl_hashlib")
    assert loaded.get_values() == tuple(samples["one"]["startup_import_ssl_hashlib"])
    assert "python -s -c 'import ssl, hashlib'" in loaded.get_metadata()["description"]
    assert [p.name for p in tmp_path.iterdir()] == ["one.startup.json"]  # no temporary file left


def test_a_failing_startup_command_is_one_line() -> None:
    with pytest.raises(pc.BenchmarkError, match=r"failed: .*No module named"):
        pc.time_startup(pc.Interpreter("x", Path(sys.executable), "3.x"), ["-s"], "import no_such_module_here")


def test_startup_gets_the_interpreters_variables_and_not_the_harness_python_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/leaked")
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    interpreter = pc.Interpreter("x", Path(sys.executable), "3.x", {"PYTHONHASHSEED": "0", "BENCH_MARK": "1"})
    check = "import os, sys; sys.exit(os.environ.get('PYTHONPATH') or os.environ['PYTHONHASHSEED'] != '0')"
    assert pc.time_startup(interpreter, [], check + " or os.environ['BENCH_MARK'] != '1'") > 0
    with pytest.raises(pc.BenchmarkError):  # the same check fails when the interpreter's variable is missing
        pc.time_startup(pc.Interpreter("y", Path(sys.executable), "3.x"), [], check)


def test_env_settings_name_a_labelled_interpreter() -> None:
    python = Path(sys.executable)
    interpreters = [pc.Interpreter("a", python, "3.x"), pc.Interpreter("b", python, "3.x", prefix=Path("/opt/py"))]
    applied = pc.with_environment(interpreters, ["b:PYTHONMALLOC=mimalloc", "b:X=1=2", "b:CONF={prefix}/ssl.cnf"])
    assert [i.env for i in applied] == [{}, {"PYTHONMALLOC": "mimalloc", "X": "1=2", "CONF": "/opt/py/ssl.cnf"}]
    assert applied[1].benchmark_env == {"PYTHONMALLOC": "mimalloc"}
    assert applied[1].describe() == (
        f"Python 3.x, {python}, CONF=/opt/py/ssl.cnf (start-up only), PYTHONMALLOC=mimalloc, X=1=2 (start-up only)"
    )
    with pytest.raises(ConfigError, match="no interpreter is labelled c"):
        pc.with_environment(interpreters, ["c:X=1"])
    with pytest.raises(ConfigError, match="not LABEL:NAME=VALUE"):
        pc.with_environment(interpreters, ["a:1X=1"])


# ---------------------------------------------------------------------------------------------- a real run


def raw_runs(path: Path) -> dict[str, list[list[float]]]:
    """Each benchmark's runs (their values) straight from pyperf's JSON, without pyperf's code."""
    data = json.loads(path.read_text())
    return {
        bench.get("metadata", {}).get("name") or data["metadata"]["name"]: [
            run["values"] for run in bench["runs"] if "values" in run
        ]
        for bench in data["benchmarks"]
    }


def raw_means(path: Path) -> dict[str, float]:
    """Each benchmark's mean over every value of every run."""
    return {name: statistics.fmean(v for run in runs for v in run) for name, runs in raw_runs(path).items()}


@pytest.mark.integration
@pytest.mark.network
def test_tiny_real_run_on_two_interpreters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    debian = shutil.which("python3", path="/usr/bin") or pytest.fail("Debian's /usr/bin/python3 is missing")
    other = Path(sys.base_prefix) / "bin" / "python3"
    out = tmp_path / "results"
    argv = ["--baseline", f"debian={debian}", f"other={other}", "-b", "unpack_sequence,nbody"]
    argv += ["--debug-single-value", "--rounds", "2", "--startup-runs", "2", "--output-dir", str(out)]
    assert pc.main(argv) == 0, capsys.readouterr().out
    printed = capsys.readouterr().out
    base, cand = raw_means(out / "debian.json"), raw_means(out / "other.json")
    assert set(base) == set(cand) == {"unpack_sequence", "nbody"}
    # --debug-single-value gives one run of one value per round; both rounds were merged.
    assert all(len(runs) == 2 for f in ("debian", "other") for runs in raw_runs(out / f"{f}.json").values())
    for bench in pyperf.BenchmarkSuite.load(str(out / "other.json")).get_benchmarks():
        assert sorted(run.get_metadata()[pr.ROUND_KEY] for run in bench.get_runs() if run.values) == [1, 2]
    ratios = {name: cand[name] / base[name] for name in base}
    geomean = math.prod(ratios.values()) ** 0.5
    assert f"B/base geometric mean {geomean:.3f} " in printed
    assert "95 % interval of the geometric mean" in printed
    for name, ratio in ratios.items():
        assert f"{ratio:.3f}" in next(line for line in printed.splitlines() if line.startswith(name + " "))
    assert (out / "report.txt").read_text() in printed
    assert {p.name for p in out.iterdir()} == {
        "debian.json", "other.json", "debian.startup.json", "other.startup.json", "report.txt", "logs",
    }  # fmt: skip
    # The saved files re-compare to the same numbers.
    assert pc.main(["--baseline", str(out / "debian.json"), str(out / "other.json")]) == 0
    assert f"B/base geometric mean {geomean:.3f} " in capsys.readouterr().out
    version = subprocess.run([debian, "-c", "import platform; print(platform.python_version())"], capture_output=True)
    assert (
        json.loads((out / "debian.json").read_text())["metadata"]["python_version"].split()[0]
        == version.stdout.decode().strip()
    )
