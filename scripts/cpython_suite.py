#!/usr/bin/env python3
"""The release gate: CPython's whole test suite on an archive's interpreter, judged against the reviewed list.

    .venv/bin/python scripts/cpython_suite.py dist/<build>/cpython-<version>-<target>-<options>-<tag>.tar.zst \\
        [--resources all,-network,-largefile,-cpu,-gui] [--jobs N] [--timeout SECONDS] [--test NAME ...] \\
        [--expected FILE] [--no-rerun] [--work DIR] [--report FILE]

Unpacks the full archive (the install_only ones have no test package) in the sandbox and runs ``python -m test``
there: bubblewrap without network, a private HOME and TMPDIR, an empty environment, ``-j`` from the cores, every
resource but the network, huge files, CPU stress and a display, and a time limit per test file (20 minutes; four
times that under the emulator), so a hang is a failure that names the test file and what was running. An aarch64
archive runs under the pinned qemu on an x86_64 host. Then every failed test (by test id, from regrtest's JUnit
XML, or the test file when it failed without a failing test case) is compared with the reviewed expected-failure
list of the minor and build kind (``site_scons/pydist/suite_expected/3.13.txt``, ``3.13t.txt`` for the
free-threaded build; sections per target), each entry with its reason. Files with a failure the list does not
explain run once more: a failure that does not happen again is reported as flaky, not counted.

Exits 0 when every failure is explained and no listed test passes; 1 on an unexplained failure, on a listed test
that now passes (remove it from the list), or when the suite could not run; 2 on a bad argument. It lives in
scripts/ rather than benchmarks/ because it is a gate with a verdict (the release workflow runs it), not a
measurement. A run of the whole suite takes about an hour on two cores (README).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "site_scons"))

from hermetic import cancel, log
from hermetic.errors import ConfigError, HermeticError
from pydist.suite_gate import (
    DEFAULT_RESOURCES,
    DEFAULT_TIMEOUT,
    EMULATED_SLOWDOWN,
    ArchiveFacts,
    SuiteRun,
    SuiteSettings,
    check_resources,
    default_work_dir,
    read_archive_facts,
    run_suite,
    suite_toolchain,
    usable_cores,
)
from pydist.suite_results import (
    ListContext,
    Verdict,
    compare,
    confirm,
    expected_list_path,
    failures,
    file_of,
    read_expected,
)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def positive_int(text: str) -> int:
    """An integer above zero (for --jobs and --timeout)."""
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = OneLineParser(
        prog="cpython_suite.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("archive", type=Path, help="the full .tar.zst archive of a build")
    parser.add_argument("--resources", default=DEFAULT_RESOURCES, help=f"regrtest's -u (default {DEFAULT_RESOURCES})")
    parser.add_argument("--jobs", type=positive_int, help="regrtest's worker processes (default: the cores + 2)")
    parser.add_argument("--timeout", type=positive_int, help=f"seconds per test file (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--test", action="append", default=[], help="run only this test file (repeatable)")
    parser.add_argument("--expected", type=Path, help="the expected-failure list (default: the reviewed one)")
    parser.add_argument("--no-rerun", action="store_true", help="do not run failed files again")
    parser.add_argument("--work", type=Path, help="where logs and results are kept (default: a new build/suite/...)")
    parser.add_argument("--report", type=Path, help="write the verdict as JSON here")
    return parser.parse_args(argv)


def settings_for(args: argparse.Namespace, emulated: bool) -> SuiteSettings:
    """regrtest's settings from the command line; the time limit grows under the emulator."""
    timeout = args.timeout or DEFAULT_TIMEOUT * (EMULATED_SLOWDOWN if emulated else 1)
    for name in args.test:
        if not name.replace(".", "").replace("_", "").isalnum() or not name.startswith("test"):
            raise ConfigError(f"--test {name!r} is not a test file name", hint="e.g. --test test_os")
    return SuiteSettings(
        resources=check_resources(args.resources),
        jobs=args.jobs or usable_cores() + 2,
        timeout=timeout,
        tests=tuple(args.test),
    )


def counts_line(first: SuiteRun, seconds: float) -> str:
    """One line: the files and test cases by outcome, and how regrtest ended."""
    files: dict[str, int] = {}
    for result in first.run.files.values():
        files[result.state] = files.get(result.state, 0) + 1
    cases: dict[str, int] = {}
    for case in first.cases.values():
        cases[case.outcome] = cases.get(case.outcome, 0) + 1
    shown_files = ", ".join(f"{n} {state}" for state, n in sorted(files.items()))
    shown_cases = ", ".join(f"{n} {outcome}" for outcome, n in sorted(cases.items()))
    return (
        f"{len(first.run.files)} test files ({shown_files}); {len(first.cases)} test cases ({shown_cases}); "
        f"regrtest: {first.run.result} (exit status {first.exit_status}) after {log.format_duration(seconds)}"
    )


def print_verdict(verdict: Verdict) -> None:
    """Every failure, explained or not, every stale entry and what did not run."""
    sections = (
        ("expected failures (reproduced)", verdict.explained),
        ("UNEXPLAINED failures", verdict.unexplained),
        ("listed tests that now PASS (remove them from the list)", verdict.stale),
        ("flaky (failed, then passed when their file ran again; not counted)", verdict.flaky),
    )
    for title, entries in sections:
        if entries:
            print(f"{title}: {len(entries)}")
            for test_id, text in entries.items():
                print(f"  {test_id}: {text}")
    if verdict.not_run:
        print(f"listed tests that did not run here (skipped or not selected): {len(verdict.not_run)}")
        for entry in verdict.not_run:
            print(f"  {entry}")


def gate(args: argparse.Namespace) -> int:
    """Run the suite, compare, print; 0 when the gate passes."""
    facts = read_archive_facts(args.archive)
    _, emulated = suite_toolchain(facts.target)
    list_path = args.expected or expected_list_path(facts.minor, facts.freethreaded)
    expected = read_expected(list_path, ListContext(facts.target, facts.version, emulated))
    settings = settings_for(args, emulated)
    work = args.work or default_work_dir(args.archive)
    print(
        f"suite: {args.archive.name} ({facts.version}, {facts.target}, {facts.options}"
        f"{', under the emulator' if emulated else ''}); {len(expected)} entries of "
        f"{list_path.name} apply; regrtest {' '.join(settings.regrtest_args('junit.xml'))}; work: {work}",
        flush=True,
    )
    started = time.monotonic()
    first = run_suite(args.archive, facts, settings, work, "suite")
    print(f"suite: {counts_line(first, time.monotonic() - started)}")
    for line in first.run.totals:
        print(f"suite: regrtest: {line}")
    verdict = compare(failures(first.run, first.cases), expected, first.cases, first.run)
    verdict = rerun_unexplained(args, facts, settings, work, first, verdict)
    print_verdict(verdict)
    write_report(args.report, facts, first, verdict)
    print(f"suite: {'PASSED' if verdict.ok else 'FAILED'}: {verdict_line(verdict)}; output: {first.log}")
    return 0 if verdict.ok else 1


def rerun_unexplained(
    args: argparse.Namespace,
    facts: ArchiveFacts,
    settings: SuiteSettings,
    work: Path,
    first: SuiteRun,
    verdict: Verdict,
) -> Verdict:
    """Run the files holding an unexplained failure once more; keep the failures that happen again."""
    files = sorted({name for test_id in verdict.unexplained if (name := file_of(test_id, first.run)) is not None})
    if args.no_rerun or not files:
        return verdict
    print(f"suite: running {len(files)} files with unexplained failures again: {' '.join(files)}", flush=True)
    again = run_suite(args.archive, facts, dataclasses.replace(settings, tests=tuple(files)), work, "rerun")
    return confirm(verdict, failures(again.run, again.cases), again.run)


def verdict_line(verdict: Verdict) -> str:
    """The counts of the verdict, in one line."""
    return (
        f"{len(verdict.explained)} expected failures, {len(verdict.unexplained)} unexplained, "
        f"{len(verdict.stale)} listed tests passing, {len(verdict.flaky)} flaky, {len(verdict.not_run)} listed not run"
    )


def write_report(path: Path | None, facts: ArchiveFacts, first: SuiteRun, verdict: Verdict) -> None:
    """The verdict as JSON, for the release workflow's logs."""
    if path is None:
        return
    report = {
        "archive": facts.__dict__,
        "regrtest": {"result": first.run.result, "exit_status": first.exit_status, "totals": first.run.totals},
        "ok": verdict.ok,
        **{key: value for key, value in verdict.__dict__.items()},
    }
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """The command; errors are one line."""
    args = parse_args(argv)
    cancel.take_over_signals()
    try:
        return gate(args)
    except HermeticError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
