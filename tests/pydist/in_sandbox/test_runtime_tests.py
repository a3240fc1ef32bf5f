"""The host-independent pieces of the runtime tests: the FIPS skip lists, reading regrtest's JUnit XML, and
the namespace in which the kernel's FIPS flag reads what a check wants."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import REPO_ROOT

IN_SANDBOX = REPO_ROOT / "site_scons" / "pydist" / "in_sandbox"


def load_runtime_tests() -> ModuleType:
    # A standalone script run inside the sandbox, not a package module: load it from its path.
    spec = importlib.util.spec_from_file_location("runtime_tests", IN_SANDBOX / "runtime_tests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["runtime_tests"] = module
    spec.loader.exec_module(module)
    return module


rt = load_runtime_tests()


@pytest.mark.parametrize("minor", ["3.11", "3.13"])
def test_each_shipped_skip_list_names_a_fips_rule_for_every_test(minor: str) -> None:
    path = IN_SANDBOX / f"fips_skips_{minor}.txt"
    skips = rt.read_skip_list(path)
    suites = {f"test.{suite}" for suite in rt.SUITES}
    for test_id, rule in skips.items():
        assert ".".join(test_id.split(".")[:2]) in suites, test_id
        assert len(rule) >= 10, f"{test_id}: say which FIPS rule makes it fail, not just {rule!r}"


def test_a_skip_without_a_rule_or_listed_twice_is_refused(tmp_path: Path) -> None:
    no_rule = tmp_path / "no-rule.txt"
    no_rule.write_text("# comment\n\ntest.test_hmac.X.test_a  # MD5 not approved\ntest.test_hmac.X.test_b\n")
    with pytest.raises(rt.CheckFailed, match=r"no-rule.txt:4: expected"):
        rt.read_skip_list(no_rule)
    twice = tmp_path / "twice.txt"
    twice.write_text("test.test_ssl.T.test_a  # PSK not approved\ntest.test_ssl.T.test_a  # PSK not approved\n")
    with pytest.raises(rt.CheckFailed, match="listed twice"):
        rt.read_skip_list(twice)


JUNIT = """<testsuites><testsuite tests="4">
<testcase name="test.test_hmac.A.test_pass" status="run" result="completed" time="0.1" />
<testcase name="test.test_hmac.A.test_skip" status="run" result="completed"><skipped>needs network</skipped></testcase>
<testcase name="test.test_hmac.A.test_fail" status="run" result="completed"><failure type="AssertionError" /></testcase>
<testcase name="test.test_hmac.A.test_error" status="run" result="completed"><error type="ValueError" /></testcase>
</testsuite></testsuites>"""


def test_suite_outcomes_read_regrtest_junit_xml(tmp_path: Path) -> None:
    xml = tmp_path / "out.xml"
    xml.write_text(JUNIT)
    outcomes = rt.suite_outcomes(xml)
    assert outcomes == {
        "test.test_hmac.A.test_pass": "passed",
        "test.test_hmac.A.test_skip": "skipped",
        "test.test_hmac.A.test_fail": "failed",
        "test.test_hmac.A.test_error": "error",
    }
    assert rt.broken_tests(outcomes) == ["test.test_hmac.A.test_error", "test.test_hmac.A.test_fail"]


def test_rule_summary_counts_tests_per_rule() -> None:
    skips = {"a": "MD5 not approved", "b": "PSK not approved", "c": "MD5 not approved"}
    assert rt.rule_summary(skips) == "MD5 not approved: 2; PSK not approved: 1"


@pytest.mark.parametrize("flag", ["1", "0"])
def test_the_kernel_flag_reads_what_the_check_asks_for_in_its_namespace(flag: str) -> None:
    result = subprocess.run(
        rt.kernel_flag_command(flag, ["cat", rt.KERNEL_FIPS_FLAG]), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{flag}\n"


def test_a_suite_run_passes_only_without_failures_and_the_skip_run_only_when_every_listed_test_fails() -> None:
    skips = {"test.test_ssl.T.test_psk": "32-bit PSK < 112-bit TLS KDF key"}
    clean = {"test.test_ssl.T.test_a": "passed", "test.test_ssl.T.test_b": "skipped"}
    ok, detail = rt.judge_suite_run("in_fips_mode", 0, clean, "", skips)
    assert ok and detail.startswith("1 passed, 1 skipped") and "32-bit PSK" in detail
    assert not rt.judge_suite_run("outside_fips_mode", 2, {**clean, "test.test_ssl.T.test_c": "error"}, "", {})[0]
    assert not rt.judge_suite_run("outside_fips_mode", 0, {}, "no tests ran", {})[0]
    assert rt.judge_suite_run("skip_list_fails_in_fips_mode", 2, {"test.test_ssl.T.test_psk": "error"}, "", skips)[0]
    ok, detail = rt.judge_suite_run(
        "skip_list_fails_in_fips_mode", 0, {"test.test_ssl.T.test_psk": "passed"}, "", skips
    )
    assert not ok and "stale" in detail


# What 3.0.20's install_fips writes (util/mk-fipsmodule-cnf.pl), and a few of the switches 3.5.7's adds.
MODULE_CNF_3_0 = "[fips_sect]\nactivate = 1\nconditional-errors = 1\nsecurity-checks = 1\nmodule-mac = AB:CD\n"
MODULE_CNF_3_5 = MODULE_CNF_3_0 + "hmac-key-check = 1\ntls1-prf-key-check = 1\npbkdf2-lower-bound-check = 1\n"


def shipped(tmp_path: Path, module_cnf: str) -> Path:
    (tmp_path / "share" / "ssl").mkdir(parents=True)
    (tmp_path / "share" / "ssl" / "fipsmodule.cnf").write_text("# written by install_fips\n" + module_cnf)
    return tmp_path


@pytest.mark.parametrize(
    ("module_cnf", "enforced"),
    [
        # 3.5: every switch is in the file; the PBKDF2 bounds are a switch too, and can be off.
        (MODULE_CNF_3_5, {"hmac-key-check", "tls1-prf-key-check", "pbkdf2-lower-bound-check"}),
        (MODULE_CNF_3_5.replace("pbkdf2-lower-bound-check = 1", "pbkdf2-lower-bound-check = 0"), {"hmac-key-check"}),
        # 3.0/3.1: no switches; the PBKDF2 bounds are built in, the rest does not exist.
        (MODULE_CNF_3_0, {"pbkdf2-lower-bound-check"}),
    ],
)
def test_what_the_shipped_provider_enforces_follows_its_own_fipsmodule_cnf(
    tmp_path: Path, module_cnf: str, enforced: set[str]
) -> None:
    section = rt.module_config(shipped(tmp_path, module_cnf))
    assert section["module-mac"] == "AB:CD"
    for check in ("hmac-key-check", "tls1-prf-ems-check", "pbkdf2-lower-bound-check"):
        assert rt.provider_enforces(section, check) == (check in enforced), check


def test_skip_entries_naming_only_checks_the_provider_lacks_are_lifted(tmp_path: Path) -> None:
    skips = {
        "test.test_hmac.A.test_short_key": "HMAC key < 112 bits refused (hmac-key-check, SP 800-131Ar2)",
        "test.test_ssl.T.test_psk": "32-bit PSK < 112-bit key (tls1-prf-key-check, tls13-kdf-key-check)",
        "test.test_hashlib.H.test_blake2b": "BLAKE2 not approved: not in the FIPS provider",
        "test.test_hashlib.K.test_pbkdf2": "PBKDF2 below SP 800-132 bounds refused (pbkdf2-lower-bound-check)",
    }
    old = rt.module_config(shipped(tmp_path / "old", MODULE_CNF_3_0))
    applies, lifted = rt.applicable_skips(skips, old)
    assert set(lifted) == {"test.test_hmac.A.test_short_key", "test.test_ssl.T.test_psk"}
    assert set(applies) == {"test.test_hashlib.H.test_blake2b", "test.test_hashlib.K.test_pbkdf2"}
    one_of_two = MODULE_CNF_3_5.replace("tls1-prf-key-check = 1", "tls1-prf-key-check = 0\ntls13-kdf-key-check = 1")
    new = rt.module_config(shipped(tmp_path / "new", one_of_two))
    applies, lifted = rt.applicable_skips(skips, new)
    assert lifted == {} and applies == skips  # one of the PSK entry's two checks is enough


def test_a_lifted_entry_must_have_run_and_passed_in_fips_mode() -> None:
    lifted = {"test.test_hmac.A.test_short_key": "HMAC key < 112 bits (hmac-key-check)"}
    ok, detail = rt.judge_lifted(True, "10 passed", {"test.test_hmac.A.test_short_key": "passed"}, lifted, "3.0.20")
    assert ok and "1 listed tests passed, the provider 3.0.20 lacking hmac-key-check" in detail
    for outcomes in ({"test.test_hmac.A.test_short_key": "failed"}, {}):
        ok, detail = rt.judge_lifted(True, "10 passed", outcomes, lifted, "3.0.20")
        assert not ok and "yet not passing" in detail


def test_openssl_list_providers_output_is_read_per_provider() -> None:
    text = (
        "Providers:\n  base\n    name: OpenSSL Base Provider\n    version: 3.5.7\n    status: active\n"
        "  fips\n    name: OpenSSL FIPS Provider\n    version: 3.0.20\n    status: active\n"
    )
    listed = rt.providers_listed(text)
    assert listed["fips"] == {"name": "OpenSSL FIPS Provider", "version": "3.0.20", "status": "active"}
    assert listed["base"]["version"] == "3.5.7"


@pytest.mark.parametrize("minor", ["3.11", "3.13"])
def test_the_shipped_skip_lists_cite_real_policy_switches(minor: str) -> None:
    # A rule's switch names decide whether it applies to an older provider: they must be fipsmodule.cnf's.
    from fipsmodule import CHECKS

    rules = rt.read_skip_list(IN_SANDBOX / f"fips_skips_{minor}.txt").values()
    names = {name for rule in rules for name in rt.CHECK_NAME.findall(rule)}
    assert names and names <= CHECKS, names - CHECKS


def _distribution_of(python: str, tmp_path: Path) -> Path:
    """A directory laid out like an unpacked distribution whose bin/python3 is `python`."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(Path(python).resolve())
    return tmp_path


def test_the_allocator_is_read_from_the_interpreters_own_statistics(tmp_path: Path) -> None:
    # The interpreter running these tests is a CPython 3.11 with the GIL: pymalloc, unless PYTHONMALLOC says malloc.
    root = _distribution_of(sys.executable, tmp_path)
    assert rt.allocator_in_use(root) == "pymalloc"
    assert rt.allocator_in_use(root, "malloc") == "neither of ['mimalloc', 'pymalloc']"
    with pytest.raises(rt.CheckFailed, match="PYTHONMALLOC=no-such-allocator: exit 1"):
        rt.allocator_in_use(root, "no-such-allocator")
    args = argparse.Namespace(allocator="pymalloc")
    assert rt.default_object_allocator(root, args, tmp_path) == "pymalloc by default"
    with pytest.raises(AssertionError, match="the default object allocator is pymalloc, not mimalloc"):
        rt.default_object_allocator(root, argparse.Namespace(allocator="mimalloc"), tmp_path)


def library_rows(**versions: str) -> list[dict[str, str]]:
    """--libraries as the build passes it: zlib and SQLite read (at `versions`, default the running interpreter's),
    bzip2 not readable, zstd not built."""
    import sqlite3
    import zlib

    return [
        {"library": "zlib", "display": "zlib", "version": versions.get("zlib", zlib.ZLIB_RUNTIME_VERSION)}
        | {"module": "zlib", "expression": "zlib.ZLIB_RUNTIME_VERSION"},
        {"library": "sqlite", "display": "SQLite", "version": versions.get("sqlite", sqlite3.sqlite_version)}
        | {"module": "sqlite3", "expression": "sqlite3.sqlite_version"},
        {"library": "bzip2", "display": "bzip2", "version": "1.0.8", "unreadable": "not exposed: no version"},
        {"library": "zstd", "display": "zstd", "version": "1.5.7", "not_built": "_zstd comes with Python 3.14"},
    ]


def test_library_versions_are_read_from_the_interpreter_and_the_rest_listed(tmp_path: Path) -> None:
    import sqlite3
    import zlib

    root = _distribution_of(sys.executable, tmp_path)
    detail = rt.pinned_library_versions(root, argparse.Namespace(libraries=library_rows()), tmp_path)
    assert detail == (
        f"pinned versions: zlib {zlib.ZLIB_RUNTIME_VERSION}, SQLite {sqlite3.sqlite_version}; "
        "not checkable: bzip2 (not exposed: no version); not built by this minor: zstd (_zstd comes with Python 3.14)"
    )


def test_a_library_not_at_its_pinned_version_or_unreadable_fails_the_check(tmp_path: Path) -> None:
    root = _distribution_of(sys.executable, tmp_path)
    wrong = argparse.Namespace(libraries=library_rows(sqlite="3.0.0"))
    with pytest.raises(rt.CheckFailed, match=r"not the pinned version: SQLite 3\.[0-9.]+, pinned 3\.0\.0$"):
        rt.pinned_library_versions(root, wrong, tmp_path)
    missing = library_rows()
    missing[0] |= {"module": "_no_such_module", "expression": "_no_such_module.VERSION"}
    with pytest.raises(rt.CheckFailed, match=r"zlib unreadable \(_no_such_module: ModuleNotFoundError"):
        rt.pinned_library_versions(root, argparse.Namespace(libraries=missing), tmp_path)
    # Nothing to read is a broken argument, not a passing check.
    with pytest.raises(rt.CheckFailed, match="no library version to check"):
        rt.pinned_library_versions(root, argparse.Namespace(libraries=library_rows()[2:]), tmp_path)


def test_the_pinned_version_of_a_library_comes_from_the_libraries_argument() -> None:
    args = argparse.Namespace(libraries=library_rows(zlib="9.9"))
    assert rt.pinned_version(args, "zlib") == "9.9" and rt.pinned_version(args, "zstd") == "1.5.7"
    with pytest.raises(rt.CheckFailed, match="--libraries names no openssl"):
        rt.pinned_version(args, "openssl")


def test_a_skipped_check_is_reported_as_skipped_never_as_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def cannot_run_here(root: Path, args: argparse.Namespace, tmp: Path) -> str:
        raise rt.CheckSkipped("the kernel forbids it")

    monkeypatch.setattr(rt, "CHECKS", [cannot_run_here])
    [result] = rt.run_checks(tmp_path, argparse.Namespace(), tmp_path, "unpacked")
    assert result == {
        "where": "unpacked",
        "check": "cannot_run_here",
        "status": "skipped",
        "detail": "skipped: the kernel forbids it",
    }
    assert "[skipped] unpacked: cannot_run_here" in capsys.readouterr().out


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="asks what an interpreter without -X perf is told")
def test_perf_is_not_used_before_3_12(tmp_path: Path) -> None:
    assert rt.perf_unusable(tmp_path) == "python -X perf came with 3.12"
