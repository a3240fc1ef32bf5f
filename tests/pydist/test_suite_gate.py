"""The suite script's command line and the sandboxed action it runs (the run itself: tests/integration)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from crafted_archives import regular, write_tar
from hermetic.errors import ConfigError
from hermetic.toolchain import host_platform
from pydist.suite_gate import (
    DEFAULT_RESOURCES,
    HOST_ETC,
    SuiteSettings,
    check_resources,
    read_archive_facts,
    read_results,
    suite_action,
    suite_toolchain,
)

SCRIPT = REPO_ROOT / "scripts" / "cpython_suite.py"
FACTS = {
    "python_version": "3.13.15",
    "target_triple": "x86_64-unknown-linux-gnu",
    "build_options": "freethreaded+pgo+lto",
    "python_exe": "install/bin/python3.13t",
}


def full_archive(path: Path, first: str = "python/PYTHON.json") -> Path:
    """A .tar.zst laid out like a full archive: PYTHON.json first (the suite reads nothing else before running)."""
    return write_tar(path, [regular(first, json.dumps(FACTS).encode()), regular("python/install/x", b"x")])


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["missing.tar.zst"], "error: missing.tar.zst: no such file; give the full .tar.zst archive of a build"),
        (["{gz}"], "error: x-install_only.tar.gz is not a full archive (install_only archives have no test package)"),
        (["{zst}", "--jobs", "0"], "error: argument --jobs: '0' is not a positive whole number"),
        (["{zst}", "--timeout", "soon"], "error: argument --timeout: 'soon' is not a positive whole number"),
        (
            ["{zst}", "--resources", "all,-netwrk"],
            "error: --resources 'all,-netwrk': netwrk is not a regrtest resource",
        ),
        (["{zst}", "--test", "../etc"], "error: --test '../etc' is not a test file name"),
        (["{zst}", "--expected", "{bad}"], "error: bad.txt:1: 'test_os' is not a test id"),
        (["{odd}"], "error: odd.tar.zst: python/PYTHON.json is not its first member"),
        (["--frobnicate"], "error: the following arguments are required: archive"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    paths = {
        "zst": str(full_archive(tmp_path / "x.tar.zst")),
        "gz": str(write_tar(tmp_path / "x-install_only.tar.gz", [regular("python/bin/python3")])),
        "odd": str(full_archive(tmp_path / "odd.tar.zst", first="python/install/x")),
        "bad": str(tmp_path / "bad.txt"),
    }
    (tmp_path / "bad.txt").write_text("test_os  # no test. prefix\n")
    result = run_script(*(arg.format(**paths) for arg in args))
    assert result.returncode == 2, result
    assert result.stderr.startswith(says), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_facts_of_a_full_archive(tmp_path: Path) -> None:
    facts = read_archive_facts(full_archive(tmp_path / "x.tar.zst"))
    assert (facts.minor, facts.freethreaded, facts.python_exe) == ("3.13", True, "install/bin/python3.13t")


def test_resources_are_regrtest_s() -> None:
    assert check_resources(DEFAULT_RESOURCES) == DEFAULT_RESOURCES
    assert check_resources("none,tzdata") == "none,tzdata"
    with pytest.raises(ConfigError, match="an empty name is not a regrtest resource"):
        check_resources("")


def test_regrtest_runs_every_file_with_a_time_limit_and_junit() -> None:
    settings = SuiteSettings(jobs=4, timeout=600, tests=("test_os",))
    assert settings.regrtest_args("/o/j.xml") == [
        *("-j", "4", "-u", DEFAULT_RESOURCES, "--timeout", "600", "-W", "--junit-xml", "/o/j.xml", "test_os"),
    ]


@pytest.mark.skipif(host_platform() != "x86_64-linux", reason="the x86_64 target runs natively on x86_64 hosts only")
def test_the_action_runs_natively_with_the_host_s_compiler_in_a_clean_environment(tmp_path: Path) -> None:
    archive = full_archive(tmp_path / "x.tar.zst")
    toolchain, emulated = suite_toolchain("x86_64-unknown-linux-gnu")
    assert not emulated and toolchain.compiler is None  # nothing to fetch, no pinned clang in the sandbox
    action = suite_action(archive, read_archive_facts(archive), toolchain, SuiteSettings(jobs=2), "t", emulated)
    description = action.description()
    assert description["host_etc"] == list(HOST_ETC) and description["host_compilers"] is True
    [step] = description["steps"]
    script = step["argv"][-1]
    assert "env -i PATH=/usr/bin:/bin HOME=/build/tmp/home TMPDIR=/build/tmp/tmp" in script
    assert "/build/src/python/install/bin/python3.13t -m test -j 2" in script
    assert 'echo "${PIPESTATUS[0]}" > /build/out/exit-status' in script


@pytest.mark.skipif(host_platform() != "x86_64-linux", reason="on an x86_64 host the aarch64 target is emulated")
def test_a_foreign_target_runs_under_its_pinned_emulator() -> None:
    toolchain, emulated = suite_toolchain("aarch64-unknown-linux-gnu")
    assert emulated and toolchain.emulator is not None and toolchain.guest is not None


def test_results_without_regrtest_s_summary_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "regrtest.log").write_text("0:00:03 load avg: 3.97 [1/5] test_os passed\nSegmentation fault\n")
    (tmp_path / "exit-status").write_text("139\n")
    with pytest.raises(Exception, match=r"regrtest ended \(exit status 139\) without its summary: .*Segmentation"):
        read_results(tmp_path)
