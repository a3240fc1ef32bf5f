"""What a run of CPython's test suite found, and whether the reviewed expected-failure list explains it.

Reads regrtest's own records of one run (its JUnit XML for every test case, its output for every test file:
the per-file progress lines, the final summary and the tracebacks faulthandler dumps when a file times out),
reads the expected-failure lists (``site_scons/pydist/suite_expected/<minor>[t].txt``), and compares them:

- every failure is named by a test id: a test case (``test.test_socket.BasicTCPTest.testRecv``), or the test
  file (``test.test_socket``) when it failed without a failing test case (it timed out, crashed, or could not
  be loaded), with what regrtest said;
- a failure is explained by the list entry equal to its id or naming a class or file that holds it;
- an entry that explains no failure while a test it names passed is stale ("now passes"): fixed upstream or by
  us, it must leave the list; an entry whose tests did not run (a subset, a resource left out) is only noted.

Standard library only, no I/O but reading the files given: the suite script (``scripts/cpython_suite.py``) runs
the suite and decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from hermetic.errors import ConfigError

EXPECTED_DIR = Path(__file__).resolve().parent / "suite_expected"

# An entry's test id: ``test.`` and dotted Python names (a file, a class in it, or one test case).
_TEST_ID = re.compile(r"test(\.\w+)+")
# A section's conditions: a target triple, a CPython release, or how the interpreter runs (emulated or native).
_SECTION = re.compile(r"\[(?P<conditions>[^\]]+)\]")
_TRIPLE = re.compile(r"[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+")
_RELEASE = re.compile(r"\d+\.\d+\.\d+")
_HOW = ("emulated", "native")


@dataclass(frozen=True)
class ListContext:
    """What a run's list entries are chosen by: the archive's target and CPython release, and whether its
    interpreter runs under the emulator."""

    target: str
    version: str
    emulated: bool = False

    def satisfies(self, condition: str) -> bool:
        """Whether this run meets one section condition."""
        if condition in _HOW:
            return self.emulated == (condition == "emulated")
        return condition in (self.target, self.version)


# ----------------------------------------------------------------------------------- the expected lists


def expected_list_path(minor: str, freethreaded: bool) -> Path:
    """The reviewed list of a minor (``3.13``) and build kind: ``3.13t.txt`` for the free-threaded build."""
    return EXPECTED_DIR / f"{minor}{'t' if freethreaded else ''}.txt"


def parse_expected(text: str, source: str, context: ListContext) -> dict[str, str]:
    """The entries of an expected-failure list that apply to the run `context` describes: test id -> reason.

    Lines are ``<test id>  # <reason>``; blank lines and lines starting with ``#`` are comments. A line
    ``[<condition> ...]`` starts a section whose entries apply only where every condition holds: a target triple
    (``aarch64-unknown-linux-gnu``), a CPython release (``3.11.2``), ``emulated`` or ``native``. Entries before
    the first section apply everywhere. A malformed line raises a ConfigError naming `source` and the line.
    """
    entries: dict[str, str] = {}
    applies = True
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        header = _SECTION.fullmatch(line)
        if header:
            applies = all(context.satisfies(c) for c in _conditions(header["conditions"], where))
            continue
        test_id, reason = _entry(line, where)
        if not applies:
            continue
        if test_id in entries:
            raise ConfigError(f"{where}: {test_id} is listed twice", hint="keep one entry with its reason")
        entries[test_id] = reason
    return entries


def _conditions(text: str, where: str) -> list[str]:
    """A section header's conditions, each checked for its form."""
    conditions = text.split()
    for condition in conditions:
        if not (_TRIPLE.fullmatch(condition) or _RELEASE.fullmatch(condition) or condition in _HOW):
            raise ConfigError(
                f"{where}: {condition!r} is not a section condition",
                hint="use target triples, CPython releases (3.11.2), emulated or native, e.g. [3.11.2 native]",
            )
    return conditions


def _entry(line: str, where: str) -> tuple[str, str]:
    """(test id, reason) of one entry line."""
    test_id, _, reason = (part.strip() for part in line.partition("#"))
    if line.startswith("["):
        raise ConfigError(f"{where}: {line!r} is not a section", hint="write [<condition> ...], e.g. [3.11.2 native]")
    if not _TEST_ID.fullmatch(test_id):
        raise ConfigError(f"{where}: {test_id!r} is not a test id", hint="write test.<file>[.<class>[.<test>]]")
    if not reason:
        raise ConfigError(f"{where}: {test_id} has no reason", hint="write '<test id>  # <why it fails>'")
    return test_id, reason


def read_expected(path: Path, context: ListContext) -> dict[str, str]:
    """The entries of the list at `path` that apply to the run (a missing file is a ConfigError)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the expected-failure list {path}: {e.strerror or e}") from None
    return parse_expected(text, path.name, context)


# ------------------------------------------------------------------------------------------- test cases


def normalize_case_id(name: str) -> str:
    """A JUnit test case name as a dotted test id: a subtest counts as its test method, a class or module
    fixture (``setUpClass (test.test_x.C)``) as ``test.test_x.C.setUpClass``, a module unittest could not load
    (``unittest.loader._FailedTest.test_x``) as ``test.test_x``."""
    fixture = re.fullmatch(r"(setUpClass|tearDownClass|setUpModule|tearDownModule) \(([\w.]+)\).*", name)
    if fixture:
        return f"{fixture[2]}.{fixture[1]}"
    unittest_name = re.fullmatch(r"\w+ \(([\w.]+)\).*", name)  # as unittest prints a test: "test_a (test.x.C.test_a)"
    if unittest_name:
        name = unittest_name[1]
    name = name.split(" ", 1)[0]
    if name.startswith("unittest.loader._FailedTest."):
        return module_id(name.removeprefix("unittest.loader._FailedTest."))
    return name


def module_id(test_file: str) -> str:
    """A test file's name as regrtest prints it (``test_os``, ``test.test_asyncio.test_tasks``) as a test id."""
    return test_file if test_file.startswith("test.") else f"test.{test_file}"


@dataclass(frozen=True)
class Case:
    """The outcome of one test case: ``passed``, ``skipped`` or ``failed``, and the failure's first line."""

    outcome: str
    detail: str = ""


_RANK = {"skipped": 0, "passed": 1, "failed": 2}


def parse_junit(data: bytes) -> dict[str, Case]:
    """Test id -> outcome of every test case in regrtest's JUnit XML (its subtests folded into it: any
    failure wins over a pass, a pass over a skip)."""
    cases: dict[str, Case] = {}
    for element in ElementTree.fromstring(data).iter("testcase"):
        if element.get("name") is None:
            continue  # a test whose subtests failed: regrtest never completes its element (see FileResult)
        case = _case(element)
        test_id = normalize_case_id(element.get("name", ""))
        held = cases.get(test_id)
        if held is None or _RANK[case.outcome] > _RANK[held.outcome]:
            cases[test_id] = case
    return cases


def _case(element: ElementTree.Element) -> Case:
    """One ``<testcase>`` element's outcome."""
    for tag in ("error", "failure"):
        problem = element.find(tag)
        if problem is not None:
            message = (problem.get("message") or problem.get("type") or tag).strip()
            return Case("failed", message.splitlines()[0][:200] if message else tag)
    return Case("skipped" if element.find("skipped") is not None else "passed")


# ------------------------------------------------------------------------------------------- test files

# A finished test file in regrtest's output: "0:01:02 load avg: 1.00 [ 12/481/1] test_os failed (2 errors)",
# optionally followed by " -- running (2): ..." (3.12+) while other files still run.
_PROGRESS = re.compile(
    r"^(?:\d+:\d\d:\d\d )?(?:load avg: [\d.]+ )?\[\s*(?P<index>\d+)/(?P<total>\d+)(?:/\d+)?\] "
    r"(?P<test>test[\w.]*) (?P<state>.*?)(?: -- .*)?$"
)
# faulthandler's dump when regrtest's --timeout fires, and the frames it lists.
_TIMEOUT_DUMP = re.compile(r"^Timeout \((?P<after>[\d:]+)\)!$")
_FRAME = re.compile(r'^\s+File "(?P<path>[^"]+)", line (?P<line>\d+) in (?P<function>\w+)$')


@dataclass(frozen=True)
class FileResult:
    """One test file's result: regrtest's state word (``passed``, ``failed``, ``timed out``, ...), its own
    words, the test cases its output reports failed (test id, exception line), and for a hang the test functions
    faulthandler found running."""

    state: str
    said: str
    hung_in: tuple[str, ...] = ()
    failed_cases: tuple[tuple[str, str], ...] = ()

    @property
    def failed(self) -> bool:
        """Whether regrtest counts the file as failed (a changed environment is reported, not failed)."""
        return self.state in ("failed", "timed out", "crashed")


@dataclass
class RegrtestRun:
    """What regrtest's output says: every file it finished, in order, and its final summary lines."""

    files: dict[str, FileResult] = field(default_factory=dict)
    result: str | None = None
    totals: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Whether regrtest got to its final summary."""
        return self.result is not None


def file_state(said: str) -> str:
    """regrtest's words about a finished file (``failed (env changed)``) as one state."""
    for prefix, state in (
        ("passed", "passed"),
        ("skipped", "skipped"),
        ("failed (env changed)", "env changed"),
        ("failed", "failed"),
        ("timed out", "timed out"),
        ("crashed", "crashed"),
        ("interrupted", "interrupted"),
    ):
        if said.startswith(prefix):
            return state
    return "no tests" if "no tests" in said else said


def parse_regrtest_output(text: str) -> RegrtestRun:
    """The files regrtest finished and its summary, from its output. Only the run's own progress lines count
    (their index counts up by one to the total of the first one): test_regrtest prints nested runs' lines."""
    run = RegrtestRun()
    expected_index, total = 1, None
    block: list[str] = []
    current: str | None = None
    for line in text.splitlines():
        progress = _PROGRESS.match(line)
        if progress and int(progress["index"]) == expected_index and total in (None, progress["total"]):
            _close_block(run, current, block)
            total, expected_index = progress["total"], expected_index + 1
            current, block = progress["test"], []
            run.files[current] = FileResult(file_state(progress["state"]), progress["state"])
            continue
        block.append(line)
        _summary_line(run, line)
    _close_block(run, current, block)
    return run


def _summary_line(run: RegrtestRun, line: str) -> None:
    """Record regrtest's result and totals lines (the last ones win: nested runs print them too)."""
    result = re.match(r"^== Tests result: (.+) ==$", line)
    if result:
        run.result, run.totals = result[1], []
    elif run.result is not None and re.match(r"^(Total tests|Total test files|Result): ", line):
        run.totals.append(line.strip())


def _close_block(run: RegrtestRun, test: str | None, block: list[str]) -> None:
    """Attach what the output of a failed file says: the test cases unittest reports failed, and a hang
    (faulthandler's dump of a --timeout)."""
    if test is None or not run.files[test].failed:
        return
    held = run.files[test]
    hung_in = hang_location(block)
    state = held.state if hung_in is None else "timed out"
    cases = tuple(failed_cases_in_output(block).items())
    run.files[test] = FileResult(state, held.said, hung_in or (), cases)


# unittest's header of a failure or error in a failed file's output: "FAIL: test_a (test.test_x.C.test_a) (i=1)".
_FAILURE_HEADER = re.compile(r"^(?:FAIL|ERROR): (?P<name>\w+) \((?P<id>[\w.]+)\)")


def failed_cases_in_output(lines: list[str]) -> dict[str, str]:
    """Test id -> exception line of each failure unittest reports in a file's output (regrtest's JUnit XML leaves
    out a test whose subtests failed). A header counts after unittest's separator line only: test_regrtest's
    output quotes nested runs. The ids need not be the file's own (test_xml_etree_c runs test_xml_etree's tests)."""
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        header = _FAILURE_HEADER.match(line)
        if not header or index == 0 or lines[index - 1] != "=" * 70:
            continue
        test_id = normalize_case_id(f"{header['name']} ({header['id']})")
        if test_id not in found:
            found[test_id] = _exception_line(lines[index + 1 :])
    return found


def _exception_line(lines: list[str]) -> str:
    """The exception a traceback ends with (the first unindented line after it starts), or ''."""
    in_traceback = False
    for line in lines:
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
        elif in_traceback and line and not line.startswith(" "):
            return line[:200]
        elif line.startswith("=" * 20):
            break
    return ""


def hang_location(lines: Iterable[str]) -> tuple[str, ...] | None:
    """The test functions running when faulthandler's --timeout dump was written (``file.py:line in name``,
    innermost first), or None without a dump."""
    found: list[str] = []
    dumped = False
    for line in lines:
        if _TIMEOUT_DUMP.match(line):
            dumped = True
            continue
        frame = _FRAME.match(line) if dumped else None
        # Test methods, and the client halves of threaded tests (test_socket's _testRecv).
        if frame and frame["function"].lstrip("_").startswith("test") and "/test/" in frame["path"]:
            where = f"{Path(frame['path']).name}:{frame['line']} in {frame['function']}"
            if where not in found:
                found.append(where)
    return tuple(found[:3]) if dumped else None


# ------------------------------------------------------------------------------------------- failures


def failures(run: RegrtestRun, cases: Mapping[str, Case]) -> dict[str, str]:
    """Every failure of the run: test id -> what failed. A failed file is named by its failing test cases, or
    by itself when it has none (a hang, a crash, a module that could not be loaded)."""
    found = {test_id: case.detail for test_id, case in cases.items() if case.outcome == "failed"}
    for name, result in run.files.items():
        for test_id, detail in result.failed_cases:
            found.setdefault(test_id, detail)
        module = module_id(name)
        if result.failed and not result.failed_cases and not any(_within(test_id, module) for test_id in found):
            found[module] = _file_failure(result)
    return dict(sorted(found.items()))


def _file_failure(result: FileResult) -> str:
    """What a file that failed without a failing test case did."""
    if result.state == "timed out":
        where = f" (running {', '.join(result.hung_in)})" if result.hung_in else ""
        return f"hung: {result.said}{where}"
    return f"{result.said}, without a failing test case in the JUnit XML"


def _within(test_id: str, entry: str) -> bool:
    """Whether `test_id` is `entry` or lies inside it (a test of a class, a class of a file)."""
    return test_id == entry or test_id.startswith(entry + ".")


@dataclass
class Verdict:
    """The comparison of one run's failures with the expected-failure list.

    Attributes:
        explained: failure id -> the reason of the entry that explains it.
        unexplained: failure id -> what failed.
        stale: entry -> its reason, for entries that explain no failure while a test they name passed.
        not_run: entries that explain no failure and whose tests did not run.
        flaky: failure id -> what failed, for failures that did not happen again when their file was rerun.
    """

    explained: dict[str, str] = field(default_factory=dict)
    unexplained: dict[str, str] = field(default_factory=dict)
    stale: dict[str, str] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    flaky: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The gate passes: every failure is explained and no listed test passes."""
        return not self.unexplained and not self.stale


def compare(
    found: Mapping[str, str], expected: Mapping[str, str], cases: Mapping[str, Case], run: RegrtestRun
) -> Verdict:
    """Judge the failures `found` against the `expected` entries, with every case and file outcome."""
    verdict = Verdict()
    used: set[str] = set()
    for test_id, detail in found.items():
        entry = next((e for e in sorted(expected, key=len, reverse=True) if _within(test_id, e)), None)
        if entry is None:
            verdict.unexplained[test_id] = detail
        else:
            verdict.explained[test_id] = expected[entry]
            used.add(entry)
    for entry in sorted(set(expected) - used):
        if _passed(entry, cases, run):
            verdict.stale[entry] = expected[entry]
        else:
            verdict.not_run.append(entry)
    return verdict


def _passed(entry: str, cases: Mapping[str, Case], run: RegrtestRun) -> bool:
    """Whether a test the entry names passed: one of its test cases, or the file it names."""
    if any(case.outcome == "passed" and _within(test_id, entry) for test_id, case in cases.items()):
        return True
    return any(module_id(name) == entry and result.state == "passed" for name, result in run.files.items())


def file_of(test_id: str, run: RegrtestRun) -> str | None:
    """The regrtest name of the test file holding `test_id` (for a rerun), or None when no file holds it."""
    names = [name for name in run.files if _within(test_id, module_id(name))]
    return max(names, key=len) if names else None


def confirm(verdict: Verdict, rerun_found: Mapping[str, str], rerun: RegrtestRun) -> Verdict:
    """Move the unexplained failures that did not happen again when their files ran once more to ``flaky``.
    A failure is confirmed when the rerun failed it, something inside it, or the whole file holding it; a
    failure whose file did not run again stays."""
    confirmed: dict[str, str] = {}
    for test_id, detail in verdict.unexplained.items():
        again = any(_within(test_id, other) or _within(other, test_id) for other in rerun_found)
        if again or file_of(test_id, rerun) is None:
            confirmed[test_id] = detail
        else:
            verdict.flaky[test_id] = detail
    verdict.unexplained = confirmed
    return verdict
