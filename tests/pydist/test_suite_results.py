"""The suite gate's reading of regrtest's records and of the expected-failure lists, and its comparison."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hermetic.errors import ConfigError
from hermetic.lock import load_lock
from pydist import matrix
from pydist.paths import LOCK_FILE, PINS_SCHEMA
from pydist.suite_results import (
    EXPECTED_DIR,
    Case,
    FileResult,
    ListContext,
    RegrtestRun,
    compare,
    confirm,
    expected_list_path,
    failures,
    file_of,
    hang_location,
    normalize_case_id,
    parse_expected,
    parse_junit,
    parse_regrtest_output,
    read_expected,
)

X86 = ListContext("x86_64-unknown-linux-gnu", "3.13.15")
ARM = ListContext("aarch64-unknown-linux-gnu", "3.13.15")

# ----------------------------------------------------------------------------------------- the lists


def test_entries_with_reasons_and_sections_by_target_release_and_emulation() -> None:
    text = textwrap.dedent(
        """\
        # a comment
        test.test_readline.TestReadline.test_a   # libedit writes it differently

        [aarch64-unknown-linux-gnu]
        test.test_socket.ThreadedVSOCKSocketStreamTest  # no VSOCK under qemu
        [x86_64-unknown-linux-gnu]
        test.test_perf_profiler  # perf not in the sandbox # (a hash in the reason is kept)
        [3.11.2]
        test.test_xml_etree  # an old release
        [aarch64-unknown-linux-gnu emulated]
        test.test_cppext  # no target compiler under qemu
        """
    )
    everywhere = {"test.test_readline.TestReadline.test_a": "libedit writes it differently"}
    assert parse_expected(text, "3.13.txt", ARM) == {
        **everywhere,
        "test.test_socket.ThreadedVSOCKSocketStreamTest": "no VSOCK under qemu",
    }
    assert parse_expected(text, "3.13.txt", X86) == {
        **everywhere,
        "test.test_perf_profiler": "perf not in the sandbox # (a hash in the reason is kept)",
    }
    assert parse_expected(text, "3.11.txt", ListContext("x86_64-unknown-linux-gnu", "3.11.2")) == {
        **everywhere,
        "test.test_perf_profiler": "perf not in the sandbox # (a hash in the reason is kept)",
        "test.test_xml_etree": "an old release",
    }
    assert parse_expected(text, "3.13.txt", ListContext("aarch64-unknown-linux-gnu", "3.13.15", emulated=True)) == {
        **everywhere,
        "test.test_socket.ThreadedVSOCKSocketStreamTest": "no VSOCK under qemu",
        "test.test_cppext": "no target compiler under qemu",
    }


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("test.test_os.T.test_a", "3.13.txt:2: test.test_os.T.test_a has no reason"),
        ("test.test_os.T.test_a  #   ", "has no reason"),
        ("test_os  # reason", "'test_os' is not a test id"),
        ("test.test_os.T test_a  # reason", "'test.test_os.T test_a' is not a test id"),
        ("[x86_64]", "3.13.txt:2: 'x86_64' is not a section condition"),
        ("[3.11 native]", "'3.11' is not a section condition"),
        ("[native", "'[native' is not a section"),
        ("test.test_x  # one\ntest.test_x  # two", "3.13.txt:3: test.test_x is listed twice"),
    ],
)
def test_a_malformed_line_is_one_error_naming_it(line: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_expected("# header\n" + line + "\n", "3.13.txt", X86)
    assert says in error.value.one_line()
    assert "\n" not in error.value.one_line()


def test_a_missing_list_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the expected-failure list .*nothing\.txt"):
        read_expected(tmp_path / "nothing.txt", X86)


def test_the_list_of_each_minor_and_build_kind() -> None:
    assert expected_list_path("3.13", freethreaded=True) == EXPECTED_DIR / "3.13t.txt"
    assert expected_list_path("3.11", freethreaded=False) == EXPECTED_DIR / "3.11.txt"


@pytest.mark.parametrize("name", ["3.11.txt", "3.13.txt", "3.13t.txt"])
@pytest.mark.parametrize("target", [t for t in matrix.TARGETS if "linux" in t])
@pytest.mark.parametrize("emulated", [False, True])
def test_the_reviewed_lists_parse_for_every_linux_target(name: str, target: str, emulated: bool) -> None:
    """Every shipped list is well formed (each entry has its reason) and names only real targets and releases."""
    text = (EXPECTED_DIR / name).read_text()
    entries = parse_expected(text, name, ListContext(target, name.removesuffix(".txt").rstrip("t") + ".0", emulated))
    assert all(reason for reason in entries.values())
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    known = {*matrix.TARGETS, *lock.versions("cpython"), "emulated", "native"}
    conditions = {c for line in text.splitlines() if line.startswith("[") for c in line.strip()[1:-1].split()}
    assert conditions <= known, conditions - known


# ------------------------------------------------------------------------------------------- JUnit


@pytest.mark.parametrize(
    ("name", "test_id"),
    [
        ("test.test_os.T.test_a", "test.test_os.T.test_a"),
        ("test.test_os.T.test_a (x=1)", "test.test_os.T.test_a"),
        ("test.test_os.T.test_a [case 2] (x=1)", "test.test_os.T.test_a"),
        ("setUpClass (test.test_socket.VSOCKTest)", "test.test_socket.VSOCKTest.setUpClass"),
        ("tearDownModule (test.test_x)", "test.test_x.tearDownModule"),
        ("unittest.loader._FailedTest.test_cppext", "test.test_cppext"),
        ("unittest.loader._FailedTest.test.test_asyncio.test_x", "test.test_asyncio.test_x"),
    ],
)
def test_case_ids(name: str, test_id: str) -> None:
    assert normalize_case_id(name) == test_id


JUNIT = b"""<testsuites tests="5" errors="1" failures="1">
<testsuite start="2026-01-01T00:00:00" tests="5" errors="1" failures="1">
  <testcase name="test.test_os.T.test_pass" status="run" result="completed" time="0.1" />
  <testcase name="test.test_os.T.test_skip" status="run" result="completed"><skipped>no</skipped></testcase>
  <testcase name="test.test_os.T.test_fail" status="run" result="completed">
    <failure type="AssertionError" message="AssertionError: 1 != 2&#10;more">tb</failure></testcase>
  <testcase name="test.test_os.T.test_sub (i=1)" status="run" result="completed" />
  <testcase name="test.test_os.T.test_sub (i=2)" status="run" result="completed">
    <error type="OSError" message="OSError: [Errno 22] Invalid argument">tb</error></testcase>
  <testcase name="test.test_os.T.test_sub (i=3)" status="run" result="completed" />
  <testcase />
</testsuite></testsuites>"""


def test_junit_outcomes_fold_subtests_into_their_test() -> None:
    """(The nameless element is what regrtest writes for a test whose subtests failed: the output names it.)"""
    assert parse_junit(JUNIT) == {
        "test.test_os.T.test_pass": Case("passed"),
        "test.test_os.T.test_skip": Case("skipped"),
        "test.test_os.T.test_fail": Case("failed", "AssertionError: 1 != 2"),
        "test.test_os.T.test_sub": Case("failed", "OSError: [Errno 22] Invalid argument"),
    }


# --------------------------------------------------------------------------------- regrtest's output

# Progress lines as 3.13 and 3.11 print them, a failed file's output with a nested run's lines in it (as
# test_regrtest's is), a hang (faulthandler's dump under --timeout), and the final summary.
OUTPUT = """\
== CPython 3.13.15
0:00:00 load avg: 3.97 Run 5 tests in parallel using 4 worker processes (timeout: 20 min, worker timeout: 25 min)
0:00:03 load avg: 3.97 [1/5] test.test_asyncio.test_context passed
0:00:14 load avg: 4.70 [2/5/1] test_regrtest failed (1 failure) -- running (1): test_socket (30.0 sec)
0:00:01 [1/2] test_nested passed
0:00:01 [2/2/1] test_nested2 failed
== Tests result: FAILURE ==
Total tests: run=2 failures=1
FAIL: test_x (test.test_regrtest.ArgsTestCase.test_x)
0:00:20 load avg: 4.70 [3/5] test_winreg skipped -- running (1): test_socket (36.4 sec)
test_winreg skipped -- No module named 'winreg'
0:20:30 load avg: 4.70 [4/5/2] test_socket timed out (20 min 1 sec)
Timeout (0:20:00)!
Thread 0x00007f0b1c9ff6c0 (most recent call first):
  File "/build/src/python/install/lib/python3.13/socket.py", line 295 in accept
  File "/build/src/python/install/lib/python3.13/test/test_socket.py", line 512 in _testRecv
  File "/build/src/python/install/lib/python3.13/threading.py", line 992 in run
Thread 0x00007f0b1e4a0740 (most recent call first):
  File "/build/src/python/install/lib/python3.13/threading.py", line 359 in wait
  File "/build/src/python/install/lib/python3.13/test/test_socket.py", line 530 in testRecv
  File "/build/src/python/install/lib/python3.13/unittest/case.py", line 606 in _callTestMethod
0:20:31 load avg: 4.70 [5/5/3] test_cppext crashed (Exit code -9)

== Tests result: FAILURE ==

3 tests failed:
    test_cppext test_regrtest test_socket

Total duration: 20 min 31 sec
Total tests: run=100 failures=1 skipped=1
Total test files: run=5/5 failed=3 skipped=1
Result: FAILURE
"""


def test_the_run_s_own_progress_lines_only() -> None:
    run = parse_regrtest_output(OUTPUT)
    assert list(run.files) == [
        "test.test_asyncio.test_context",
        "test_regrtest",
        "test_winreg",
        "test_socket",
        "test_cppext",
    ]
    assert run.files["test_regrtest"] == FileResult("failed", "failed (1 failure)")
    assert run.files["test_winreg"].state == "skipped"
    assert run.files["test_cppext"] == FileResult("crashed", "crashed (Exit code -9)")
    assert run.result == "FAILURE"
    assert run.totals == [
        "Total tests: run=100 failures=1 skipped=1",
        "Total test files: run=5/5 failed=3 skipped=1",
        "Result: FAILURE",
    ]


def test_a_hang_names_the_tests_that_were_running() -> None:
    socket = parse_regrtest_output(OUTPUT).files["test_socket"]
    assert socket.state == "timed out"
    assert socket.hung_in == ("test_socket.py:512 in _testRecv", "test_socket.py:530 in testRecv")


def test_a_crash_is_a_hang_when_faulthandler_dumped_a_timeout() -> None:
    """3.11's workers exit through faulthandler when --timeout fires: regrtest says "crashed"."""
    text = (
        "0:00:00 load avg: 1.00 [1/1/1] test_socket crashed (Exit code 1)\nTimeout (0:05:00)!\n"
        'Thread 0x1 (most recent call first):\n  File "/x/test/test_socket.py", line 9 in test_hang\n'
        "\n== Tests result: FAILURE ==\n"
    )
    assert parse_regrtest_output(text).files["test_socket"] == FileResult(
        "timed out", "crashed (Exit code 1)", ("test_socket.py:9 in test_hang",)
    )
    assert hang_location(["nothing here"]) is None


def test_an_unfinished_run_has_no_result() -> None:
    run = parse_regrtest_output("0:00:03 load avg: 3.97 [1/5] test_os passed\nKilled\n")
    assert not run.finished


# ------------------------------------------------------------------------------------------ the verdict


def _run(**files: str) -> RegrtestRun:
    return RegrtestRun(files={name: FileResult(state, state) for name, state in files.items()}, result="FAILURE")


def test_failures_are_test_cases_or_the_file_that_failed_without_one() -> None:
    run = parse_regrtest_output(OUTPUT)
    cases = {
        "test.test_regrtest.ArgsTestCase.test_x": Case("failed", "AssertionError: x"),
        "test.test_regrtest.ArgsTestCase.test_y": Case("passed"),
    }
    assert failures(run, cases) == {
        "test.test_cppext": "crashed (Exit code -9), without a failing test case in the JUnit XML",
        "test.test_regrtest.ArgsTestCase.test_x": "AssertionError: x",
        "test.test_socket": "hung: timed out (20 min 1 sec) (running test_socket.py:512 in _testRecv, "
        "test_socket.py:530 in testRecv)",
    }


def test_an_environment_change_is_not_a_failure() -> None:
    assert failures(_run(test_os="env changed"), {}) == {}


def test_entries_explain_a_test_a_class_or_a_file() -> None:
    found = {
        "test.test_readline.TestReadline.test_limited": "OSError",
        "test.test_socket.VSOCKTest.testStream": "OSError",
        "test.test_socket.VSOCKTest.testRecv": "OSError",
        "test.test_cppext": "crashed",
        "test.test_os.T.test_new": "AssertionError",
    }
    expected = {
        "test.test_readline.TestReadline.test_limited": "libedit",
        "test.test_socket.VSOCKTest": "no VSOCK",
        "test.test_cppext": "no compiler",
        "test.test_cppext.TestCPPExt.test_build": "the most specific entry wins",
    }
    cases = {"test.test_os.T.test_ok": Case("passed")}
    verdict = compare(found, expected, cases, _run(test_cppext="crashed"))
    assert verdict.explained == {
        "test.test_readline.TestReadline.test_limited": "libedit",
        "test.test_socket.VSOCKTest.testStream": "no VSOCK",
        "test.test_socket.VSOCKTest.testRecv": "no VSOCK",
        "test.test_cppext": "no compiler",
    }
    assert verdict.unexplained == {"test.test_os.T.test_new": "AssertionError"}
    assert verdict.not_run == ["test.test_cppext.TestCPPExt.test_build"]
    assert not verdict.ok


def test_a_listed_test_that_passes_fails_the_gate() -> None:
    cases = {"test.test_readline.TestReadline.test_limited": Case("passed"), "test.test_x.T.t": Case("skipped")}
    expected = {
        "test.test_readline.TestReadline.test_limited": "libedit",
        "test.test_cppext": "no compiler",
        "test.test_x.T.t": "skipped here",
        "test.test_y": "not selected",
    }
    verdict = compare({}, expected, cases, _run(test_cppext="passed"))
    assert verdict.stale == {
        "test.test_readline.TestReadline.test_limited": "libedit",
        "test.test_cppext": "no compiler",
    }
    assert verdict.not_run == ["test.test_x.T.t", "test.test_y"]
    assert not verdict.ok


def test_every_failure_explained_passes_the_gate() -> None:
    verdict = compare({"test.test_a.T.t": "x"}, {"test.test_a.T": "why"}, {}, _run(test_a="failed"))
    assert verdict.ok
    assert verdict.explained == {"test.test_a.T.t": "why"}


def test_a_rerun_confirms_failures_that_happen_again_and_sets_aside_the_others() -> None:
    first = _run(test_a="failed", test_b="failed", test_c="timed out")
    found = {"test.test_a.T.t1": "x", "test.test_b.T.t2": "y", "test.test_c": "hung", "test.test_d.T.t": "z"}
    verdict = compare(found, {}, {}, first)
    assert file_of("test.test_a.T.t1", first) == "test_a"
    assert file_of("test.test_d.T.t", first) is None
    rerun = _run(test_a="failed", test_b="passed", test_c="failed")
    again = {"test.test_a.T.t1": "x", "test.test_c.T.t9": "w"}
    verdict = confirm(verdict, again, rerun)
    # test_d's file did not run again: its failure stands.
    assert verdict.unexplained == {"test.test_a.T.t1": "x", "test.test_c": "hung", "test.test_d.T.t": "z"}
    assert verdict.flaky == {"test.test_b.T.t2": "y"}


def test_the_most_specific_file_holds_a_test() -> None:
    run = _run(**{"test_asyncio": "passed", "test.test_asyncio.test_tasks": "failed"})
    assert file_of("test.test_asyncio.test_tasks.T.t", run) == "test.test_asyncio.test_tasks"


# A failed file's output under -W: a subtest failure (absent from the JUnit XML), an error in a class fixture,
# another file's tests (test_xml_etree_c runs test_xml_etree's), and a nested run quoted without unittest's
# separator line above it, which does not count.
FAILED_FILE = """\
0:00:14 load avg: 4.70 [1/1/1] test_xml_etree_c failed (2 failures)
test_simple_xml (test.test_xml_etree.XMLPullParserTest.test_simple_xml) ... FAIL
FAIL: test_quoted (test.test_xml_etree_c.Quoted.test_quoted)
======================================================================
FAIL: test_simple_xml (test.test_xml_etree.XMLPullParserTest.test_simple_xml) (chunk_size=1)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/x/test/test_xml_etree.py", line 1431, in test_simple_xml
    self.assert_event_tags(parser, [('end', 'element')])
AssertionError: Lists differ: [] != [('end', 'element')]

Second list contains 1 additional elements.
======================================================================
ERROR: setUpClass (test.test_xml_etree_c.MiscTests)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/x/test/test_xml_etree_c.py", line 9, in setUpClass
OSError: [Errno 22] Invalid argument
----------------------------------------------------------------------
Ran 188 tests in 2.604s

FAILED (failures=2, skipped=5)

== Tests result: FAILURE ==
"""


def test_a_failed_file_s_output_names_its_failed_tests() -> None:
    run = parse_regrtest_output(FAILED_FILE)
    lists_differ = "AssertionError: Lists differ: [] != [('end', 'element')]"
    assert failures(run, {}) == {
        "test.test_xml_etree.XMLPullParserTest.test_simple_xml": lists_differ,
        "test.test_xml_etree_c.MiscTests.setUpClass": "OSError: [Errno 22] Invalid argument",
    }
