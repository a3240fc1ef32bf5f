"""benchmarks/cachegrind_compare.py: cachegrind's totals, the per-loop difference and the cycle estimate, loop
calibration, the report, debug-info stripping of a real ELF file, and one real run under valgrind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import cachegrind_compare as cc
from pyperf_compare import BenchmarkError

EVENTS_LINE = "events: " + " ".join(cc.EVENTS)


def counts(**changed: float) -> dict[str, float]:
    """Per-loop counts: every event 0 except the ones given."""
    return {event: changed.get(event, 0) for event in cc.EVENTS}


def write_output(path: Path, values: list[int], events_line: str = EVENTS_LINE) -> Path:
    """A cachegrind output file in the format valgrind 3.19 writes (header, per-function lines, totals)."""
    path.write_text(
        "desc: I1 cache:         32768 B, 64 B, 8-way associative\ncmd: python x.py\n"
        f"{events_line}\nfl=x.c\nfn=main\n3 1 0 0 0 0 0 0 0 0 0 0 0 0\n"
        f"summary: {' '.join(map(str, values))}\n"
    )
    return path


def test_totals_are_read_by_event_name(tmp_path: Path) -> None:
    values = list(range(100, 100 + len(cc.EVENTS)))
    totals = cc.parse_cachegrind(write_output(tmp_path / "cg.out", values))
    assert totals == dict(zip(cc.EVENTS, values, strict=True))


@pytest.mark.parametrize(
    ("events_line", "values", "message"),
    [
        (EVENTS_LINE, [1, 2], "not a complete cachegrind output"),
        ("events: Ir", [5], "lacks the events I1mr"),
        (EVENTS_LINE, ["x"] * len(cc.EVENTS), "not a complete cachegrind output"),
    ],
)
def test_incomplete_outputs_are_one_line_errors(tmp_path: Path, events_line: str, values: list, message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        cc.parse_cachegrind(write_output(tmp_path / "cg.out", values, events_line))
    with pytest.raises(BenchmarkError, match="cannot read"):
        cc.parse_cachegrind(tmp_path / "absent.out")


def test_per_loop_counts_are_the_difference_of_the_two_runs() -> None:
    short = {event: 1000 for event in cc.EVENTS}
    long = {event: 1000 + 8 * (index + 1) for index, event in enumerate(cc.EVENTS)}
    per = cc.per_loop(long, short, 4)
    assert per == {event: 2.0 * (index + 1) for index, event in enumerate(cc.EVENTS)}


def test_estimated_cycles_weigh_l1_hits_last_level_hits_and_memory() -> None:
    # 100 accesses: 10 L1 misses, of which 2 went to memory: 90 + 5 * 8 + 35 * 2.
    c = counts(Ir=60, Dr=30, Dw=10, I1mr=4, D1mr=5, D1mw=1, ILmr=1, DLmr=1)
    assert cc.estimated_cycles(c) == 90 + 40 + 70
    assert cc.estimated_cycles(counts(Ir=100)) == 100
    # A miss costs more than a hit, and a memory access more than a last-level hit.
    assert cc.estimated_cycles(counts(Ir=100, I1mr=1)) > 100
    assert cc.estimated_cycles(counts(Ir=100, I1mr=1, ILmr=1)) > cc.estimated_cycles(counts(Ir=100, I1mr=1))


@pytest.mark.parametrize(
    ("seconds_per_loop", "loops"), [(0.5, 1), (0.02, 1), (0.015, 2), (0.001, 32), (50e-9, 1 << 19), (0.0, 1 << 24)]
)
def test_loops_are_the_smallest_power_of_two_reaching_the_target(seconds_per_loop: float, loops: int) -> None:
    assert cc.loops_for(seconds_per_loop, 0.02) == loops


def test_report_ratios_geomeans_and_failures() -> None:
    results = {
        "base": {"a": counts(Ir=100, Bcm=10), "b": counts(Ir=400, I1mr=4, Bim=10)},
        "fast": {"a": counts(Ir=50, Bcm=10), "b": counts(Ir=200, I1mr=1, Bim=10)},
        "broken": {"a": counts(Ir=100)},
    }
    report = cc.format_report(["base", "fast", "broken"], results, {"a": 8, "b": 1}, "header line")
    lines = report.splitlines()
    assert lines[0] == "header line"
    # "b" failed on one interpreter: it is left out of every row, and named.
    assert "| a | 8 | 100 | 0.500 | 1.000 |" in lines
    assert not any(line.startswith("| b |") for line in lines)
    assert "| **geomean, estimated cycles** | | 1 | 0.500 | 1.000 |" in lines
    assert "| **geomean, branch mispredictions** | | 1 | 1.000 | - |" in lines
    assert lines[-1] == "NOT COUNTED (left out of every row above): b on broken"


def test_saved_runs_combine_into_one_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    cc.save_record(
        first,
        "h",
        ["base", "x"],
        {"a": 8, "b": 1},
        {"base": {"a": counts(Ir=100), "b": counts(Ir=400)}, "x": {"a": counts(Ir=90)}},
    )
    cc.save_record(second, "h", ["y"], {"a": 8, "b": 2}, {"y": {"a": counts(Ir=50), "b": counts(Ir=200)}})
    argv = ["--baseline", f"base={first}/results.json", f"y={second}/results.json", f"x={first}/results.json"]
    assert cc.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| a | 8 | 100 | 0.500 | 0.900 |" in lines
    assert "| **geomean, instructions** | | 1 | 0.500 | 0.900 |" in lines
    assert "N differs between the files for b: counts per loop, not exactly comparable" in lines
    assert lines[-1] == "NOT COUNTED (left out of every row above): b on x"
    labels, results, loops, differing = cc.load_saved([f"y={second}/results.json"])
    assert labels == ["y"] and loops == {"a": 8, "b": 2} and differing == [] and results["y"]["b"]["Ir"] == 200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("z={}/results.json", r"name one of the file's labels \(base\)"),
        ("{}/results.json", r"name one of the file's labels \(base\)"),
        ("base={}/absent.json", r"not a results\.json of this script"),
    ],
)
def test_saved_inputs_that_cannot_be_reported_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    cc.save_record(tmp_path, "h", ["base"], {"a": 1}, {"base": {"a": counts(Ir=1)}})
    with pytest.raises(cc.ConfigError, match=message):
        cc.load_saved([spec.format(tmp_path)])
    assert cc.main(["--baseline", spec.format(tmp_path), f"base={tmp_path}/results.json"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit):
        cc.parse_args(["--baseline", f"base={tmp_path}/results.json", "/usr/bin/python3"])


def test_command_line_defaults_and_mistakes(capsys: pytest.CaptureFixture[str]) -> None:
    args = cc.parse_args(["--baseline", "python3", "python3.11"])
    assert args.names == list(cc.SUBSET) and args.loops is None and args.target_ms == cc.DEFAULT_TARGET_MS
    for argv in (["--baseline", "a", "b", "-b", ","], ["--baseline", "a", "b", "--target-ms", "0"], ["b"]):
        with pytest.raises(SystemExit) as exit_info:
            cc.parse_args(argv)
        assert exit_info.value.code == 2
    capsys.readouterr()


def test_loops_come_from_an_earlier_run_or_a_one_line_error(tmp_path: Path) -> None:
    earlier = tmp_path / "results.json"
    earlier.write_text(json.dumps({"labels": ["a"], "loops": {"nbody": 1, "json_loads": 32}}))
    assert cc.loops_recorded(earlier, ["json_loads"]) == {"json_loads": 32}
    with pytest.raises(cc.ConfigError, match="has no N for go"):
        cc.loops_recorded(earlier, ["nbody", "go"])
    (tmp_path / "other.json").write_text("[1, 2]")
    for path in (tmp_path / "other.json", tmp_path / "absent.json"):
        with pytest.raises(cc.ConfigError, match=r"not a results\.json of this script"):
            cc.loops_recorded(path, ["nbody"])
    args = cc.parse_args(["--baseline", "a", "b", "--loops-from", str(earlier)])
    assert args.loops_from == earlier and args.loops is None
    # One build counted alone, to be added to the earlier run's table in a saved report.
    args = cc.parse_args(["--baseline", "new", "--loops-from", str(earlier)])
    assert args.candidates == [] and not args.report_only


def test_a_baseline_counted_alone_reports_its_own_column() -> None:
    results = {"only": {"a": counts(Ir=100), "b": counts(Ir=400)}}
    lines = cc.format_report(["only"], results, {"a": 8, "b": 1}, "h").splitlines()
    assert "| a | 8 | 100 |" in lines and "| b | 1 | 400 |" in lines
    assert "| **geomean, estimated cycles** | | 1 |" in lines


def test_unknown_benchmark_and_missing_valgrind_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(cc.ConfigError, match="no benchmark no_such_bench"):
        cc.benchmark_tasks(["nbody", "no_such_bench"])
    assert [t.name for t in cc.benchmark_tasks(["nbody"])] == ["nbody"]
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cc.main(["--baseline", "/usr/bin/python3", "/usr/bin/python3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "valgrind is not installed" in err and "bootstrap" in err


def test_a_used_output_directory_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is missing: ./scripts/bootstrap installs it")
    (tmp_path / "earlier.txt").write_text("results of another run")
    python = str(Path(sys.base_prefix) / "bin" / "python3")
    assert cc.main(["--baseline", python, f"b={python}", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists and is not empty" in err
    assert [p.name for p in tmp_path.iterdir()] == ["earlier.txt"]


def test_debug_sections_are_stripped_and_code_is_kept(tmp_path: Path) -> None:
    elf = tmp_path / "prefix" / "bin" / "tool"
    elf.parent.mkdir(parents=True)
    payload = tmp_path / "debug"
    payload.write_bytes(b"\x05" * 4096)
    subprocess.run(
        ["objcopy", f"--add-section=.debug_info={payload}", shutil.which("true") or "/bin/true", str(elf)], check=True
    )
    (tmp_path / "prefix" / "README").write_text("not an ELF file")
    (tmp_path / "prefix" / "link").symlink_to(elf)

    def sections(path: Path) -> str:
        return subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True, check=True).stdout

    def code(path: Path) -> bytes:
        dump = tmp_path / "text.bin"
        subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", str(path), str(dump)], check=True)
        return dump.read_bytes()

    text_before = code(elf)
    assert ".debug_info" in sections(elf)
    assert cc.strip_debug_info(tmp_path / "prefix") == 1
    assert ".debug_info" not in sections(elf) and ".text" in sections(elf)
    assert code(elf) == text_before and len(text_before) > 0
    assert (tmp_path / "prefix" / "README").read_text() == "not an ELF file"


def test_without_strip_the_error_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(shutil.which("true") or "/bin/true", tmp_path / "tool")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(cc.ConfigError, match=r"strip: .*bootstrap"):
        cc.strip_debug_info(tmp_path)


@pytest.mark.integration
@pytest.mark.network
def test_real_run_counts_the_same_interpreter_alike_and_a_slower_one_higher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is missing: ./scripts/bootstrap installs it")
    python = Path(sys.base_prefix) / "bin" / "python3"
    out = tmp_path / "results"
    argv = ["--baseline", f"base={python}", f"again={python}", f"debug={python}", "-b", "json_loads"]
    argv += ["--loops", "16", "--env", "debug:PYTHONMALLOC=malloc_debug", "--output-dir", str(out)]
    assert cc.main(argv) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    record = json.loads((out / "results.json").read_text())
    assert record["labels"] == ["base", "again", "debug"] and record["loops"] == {"json_loads": 16}
    per_loop = {label: record["counts_per_loop"][label]["json_loads"] for label in record["labels"]}
    cycles = {label: cc.estimated_cycles(c) for label, c in per_loop.items()}
    # Counted, not timed: the same interpreter twice reads within a thousandth, whatever the machine's load.
    assert abs(cycles["again"] / cycles["base"] - 1) < 1e-3
    assert abs(per_loop["again"]["Ir"] / per_loop["base"]["Ir"] - 1) < 1e-3
    # The debug allocator checks every block: many more instructions per loop.
    assert cycles["debug"] / cycles["base"] > 1.2
    assert per_loop["base"]["Ir"] > 10_000 and per_loop["base"]["Dr"] > 0 and per_loop["base"]["Bc"] > 0
    assert (out / "report.txt").read_text() in printed
    row = next(line for line in printed.splitlines() if line.startswith("| json_loads | 16 |"))
    assert f"{cycles['debug'] / cycles['base']:.3f}" in row
    logs = {p.name for p in (out / "logs").glob("*.json_loads.*.log")}
    assert logs == {f"{label}.json_loads.{n}.log" for label in per_loop for n in (16, 32)}
