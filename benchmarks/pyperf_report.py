"""Comparing pyperf results: per-benchmark time ratios against a baseline, pyperf's significance test, the
geometric mean of the ratios, and the report that `pyperf_compare.py` prints and saves."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pyperf
from pyperf._compare import is_significant_benchs  # pyperf's own t-test; pyperf is pinned exactly in pyproject.toml


@dataclass
class Results:
    """What a run (or a re-comparison) has per interpreter: pyperformance suites, start-up suites, failures."""

    suites: dict[str, pyperf.BenchmarkSuite] = field(default_factory=dict)
    startup: dict[str, pyperf.BenchmarkSuite] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- comparing

# What a ratio above and below 1 is called, by the unit pyperf gives the values (bytes: --track-memory's peak RSS).
VERDICTS = {"second": ("slower", "faster"), "byte": ("larger", "smaller")}


def verdict_words(bench: pyperf.Benchmark) -> tuple[str, str]:
    """(above 1, below 1) for the values of `bench`: slower/faster for times, larger/smaller for memory."""
    return VERDICTS.get(bench.get_unit(), VERDICTS["second"])


@dataclass(frozen=True)
class Row:
    """One benchmark compared: the two mean times, their ratio, and whether pyperf finds the difference real."""

    name: str
    baseline: pyperf.Benchmark
    candidate: pyperf.Benchmark
    ratio: float
    significant: bool

    @property
    def verdict(self) -> str:
        """`slower`, `faster` (`larger`, `smaller` for memory), or `~` when pyperf's t-test does not find the
        difference significant."""
        if not self.significant or self.ratio == 1.0:
            return "~"
        above, below = verdict_words(self.baseline)
        return above if self.ratio > 1.0 else below


def compare_benchmarks(baseline: pyperf.Benchmark, candidate: pyperf.Benchmark, *, use_median: bool = False) -> Row:
    """Compare one benchmark: time ratio candidate/baseline of the means (or medians), and pyperf's t-test."""
    ratio = candidate.median() / baseline.median() if use_median else candidate.mean() / baseline.mean()
    significant, _ = is_significant_benchs(baseline, candidate)
    return Row(baseline.get_name(), baseline, candidate, ratio, significant)


@dataclass(frozen=True)
class Comparison:
    """A candidate suite against the baseline suite: rows for the benchmarks both have, and the leftovers."""

    rows: list[Row]
    only_baseline: list[str]
    only_candidate: list[str]
    use_median: bool = False

    @property
    def geometric_mean(self) -> float:
        """The geometric mean of the time ratios (above 1: the candidate is slower overall)."""
        return geometric_mean(row.ratio for row in self.rows)

    def geomean_interval(self, *, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
        """A bootstrap interval of the geometric mean: each benchmark's samples are drawn again with replacement,
        the baseline's and the candidate's apart, `resamples` times, and the middle `level` of the geometric
        means so obtained is kept. Samples are drawn in two stages, as they were taken: the rounds (one
        pyperformance invocation each, whose processes share the machine's state of that minute), then the
        processes within each drawn round. Seeded: the same results give the same interval."""
        rng = random.Random(seed)
        statistic = statistics.median if self.use_median else statistics.fmean
        samples = [(sample_blocks(row.baseline), sample_blocks(row.candidate)) for row in self.rows]
        means = sorted(
            geometric_mean(resampled(c, rng, statistic) / resampled(b, rng, statistic) for b, c in samples)
            for _ in range(resamples)
        )
        tail = (1 - level) / 2
        return means[int(tail * (resamples - 1))], means[math.ceil((1 - tail) * (resamples - 1))]

    def count(self, verdict: str) -> int:
        """How many rows have this verdict."""
        return sum(row.verdict == verdict for row in self.rows)


# The run metadata pyperf_compare.py gives every run: which round (pyperformance invocation) made it.
ROUND_KEY = "pyperf_compare_round"

# Fewer runs than this and a benchmark's single values are drawn instead (start-up samples come as one run).
MIN_RUNS_TO_RESAMPLE = 5

# A block of samples: the units drawn within one round, each unit a list of values that travel together.
Block = list[list[float]]


def sample_blocks(bench: pyperf.Benchmark) -> list[Block]:
    """What the bootstrap draws from: one block per round, each holding that round's runs (pyperf's worker
    processes, whose values share their process's luck: memory layout, hash seed). Results saved before rounds
    were marked are split where pyperf calibrated, which it does once at the start of every invocation. With
    too few runs to draw from, every value is a unit of its own, in one block."""
    runs = [run for run in bench.get_runs() if run.values]
    if len(runs) < MIN_RUNS_TO_RESAMPLE:
        return [[[value] for run in runs for value in run.values]]
    if all(ROUND_KEY in run.get_metadata() for run in runs):
        rounds: dict[object, Block] = {}
        for run in runs:
            rounds.setdefault(run.get_metadata()[ROUND_KEY], []).append(list(run.values))
        return list(rounds.values())
    blocks: list[Block] = [[]]
    for run in bench.get_runs():
        if not run.values and blocks[-1]:
            blocks.append([])
        elif run.values:
            blocks[-1].append(list(run.values))
    return [block for block in blocks if block]


def resampled(blocks: list[Block], rng: random.Random, statistic: Callable[[list[float]], float]) -> float:
    """`statistic` of the values of as many blocks as there are, drawn with replacement, each holding as many
    of its units as it has, drawn with replacement."""
    return statistic(
        [
            value
            for block in rng.choices(blocks, k=len(blocks))
            for unit in rng.choices(block, k=len(block))
            for value in unit
        ]
    )


def geometric_mean(ratios: Iterable[float]) -> float:
    """exp(mean(log r)): the average of ratios that treats 2x slower and 2x faster symmetrically."""
    logs = [math.log(r) for r in ratios]
    if not logs:
        raise ValueError("no ratios to average")
    return math.exp(math.fsum(logs) / len(logs))


def compare_suites(
    baseline: pyperf.BenchmarkSuite, candidate: pyperf.BenchmarkSuite, *, use_median: bool = False
) -> Comparison:
    """Compare every benchmark the two suites share, in the baseline's order."""
    base = {b.get_name(): b for b in baseline.get_benchmarks()}
    cand = {b.get_name(): b for b in candidate.get_benchmarks()}
    rows = [compare_benchmarks(base[name], cand[name], use_median=use_median) for name in base if name in cand]
    return Comparison(rows, [n for n in base if n not in cand], [n for n in cand if n not in base], use_median)


# ---------------------------------------------------------------------------------------------- reporting


@dataclass(frozen=True)
class Column:
    """An interpreter as the report shows it: its label, its short column name, and where it came from."""

    label: str
    short: str
    description: str


def columns_for(labels: Sequence[str], descriptions: dict[str, str]) -> list[Column]:
    """Columns in command-line order: the baseline is `base`, the candidates `B`, `C`, ..."""
    shorts = ["base", *(chr(ord("B") + i) if i < 25 else f"#{i + 2}" for i in range(len(labels) - 1))]
    return [Column(label, name, descriptions.get(label, "")) for label, name in zip(labels, shorts, strict=True)]


def format_value(bench: pyperf.Benchmark, *, median: bool) -> str:
    """A benchmark's mean (or median) in pyperf's units, e.g. `72.1 ms`."""
    return bench.format_value(bench.median() if median else bench.mean())


def format_table(
    title: str, columns: Sequence[Column], suites: dict[str, pyperf.BenchmarkSuite], *, median: bool
) -> str:
    """Per-benchmark times of every interpreter and each candidate's ratio to the baseline, then the summaries."""
    baseline, candidates = columns[0], columns[1:]
    comparisons = {
        c.label: compare_suites(suites[baseline.label], suites[c.label], use_median=median) for c in candidates
    }
    stat = "median" if median else "mean"
    header = [title, f"{baseline.short} {stat}"]
    for c in candidates:
        header += [f"{c.short} {stat}", f"{c.short}/base"]
    lines = [header]
    for base_bench in suites[baseline.label].get_benchmarks():
        line = [base_bench.get_name(), format_value(base_bench, median=median)]
        for c in candidates:
            row = next((r for r in comparisons[c.label].rows if r.name == base_bench.get_name()), None)
            line += ["missing", ""] if row is None else [format_value(row.candidate, median=median), format_cell(row)]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = [("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))).rstrip() for line in lines]
    return "\n".join(table + [format_summary(c.short, comparisons[c.label]) for c in candidates])


def format_cell(row: Row) -> str:
    """The ratio and its verdict, e.g. `1.064 slower`."""
    return f"{row.ratio:.3f} {row.verdict}"


def format_summary(name: str, comparison: Comparison) -> str:
    """One line: the geometric mean of the time ratios and the faster/slower/not-significant counts."""
    if comparison.rows:
        gm = comparison.geometric_mean
        above, below = verdict_words(comparison.rows[0].baseline)
        word = above if gm > 1 else below
        text = (
            f"{name}/base geometric mean {gm:.3f} ({name} is {max(gm, 1 / gm):.3f}x {word})"
            f" over {len(comparison.rows)} benchmark(s): {comparison.count(below)} {below},"
            f" {comparison.count(above)} {above}, {comparison.count('~')} not significant"
        )
        low, high = comparison.geomean_interval()
        text += f"; 95 % interval of the geometric mean {low:.3f}-{high:.3f}"
    else:
        text = f"{name}: no benchmark in common with the baseline"
    if comparison.only_baseline or comparison.only_candidate:
        text += f"; left out: {', '.join(comparison.only_baseline + comparison.only_candidate)}"
    return text


def format_report(columns: Sequence[Column], results: Results, header: str) -> str:
    """The whole report: header, legend, the pyperformance table, the start-up table and any failures."""
    parts = [
        header,
        "",
        "ratio = candidate / baseline (times: above 1 is slower; peak memory: above 1 is larger); '~' = not"
        " significant by pyperf's two-sample t-test (95 %)",
        "interval = the middle 95 % of the geometric mean over resamples of this run's samples (its rounds, then"
        " the processes of each); with few rounds it is rough: name one archive twice to see this host's noise",
        *(f"  {c.short:5s} {c.label}  {c.description}".rstrip() for c in columns),
    ]
    for title, suites, median in (
        ("benchmark", results.suites, False),
        ("start-up", results.startup, True),
    ):
        present = [c for c in columns if c.label in suites]
        if len(present) > 1 and present[0] is columns[0]:
            parts += ["", format_table(title, present, suites, median=median)]
        elif suites:
            absent = ", ".join(c.short for c in columns if c.label not in suites)
            parts += ["", f"{title}: no comparison, no results from {absent}"]
    if results.failures:
        parts += ["", "FAILED: " + ", ".join(f"{bench} on {label}" for label, bench in results.failures)]
    return "\n".join(parts) + "\n"
