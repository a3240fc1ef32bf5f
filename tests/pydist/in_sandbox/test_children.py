"""The child programs of the runtime tests (site_scons/pydist/in_sandbox/children/): each one runtime_tests.py
names exists and none is left unused, none shadows a module it or the standard library imports, and those that
need no FIPS patch run on this CPython 3.11 (the oldest minor they must run on) and say what they should."""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
import zlib
from pathlib import Path
from types import ModuleType

import pytest

from conftest import REPO_ROOT

IN_SANDBOX = REPO_ROOT / "site_scons" / "pydist" / "in_sandbox"
CHILDREN = IN_SANDBOX / "children"
# The functions of runtime_tests.py whose first string argument names a child program.
STARTERS = {"run": 1, "run_unchecked": 1, "child": 0}


def runtime_tests_module() -> ModuleType:
    """runtime_tests.py, a standalone script, loaded from its path (once per session)."""
    if "runtime_tests" not in sys.modules:
        spec = importlib.util.spec_from_file_location("runtime_tests", IN_SANDBOX / "runtime_tests.py")
        assert spec and spec.loader
        sys.modules["runtime_tests"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["runtime_tests"])
    return sys.modules["runtime_tests"]


def named_children() -> set[str]:
    """Every child program runtime_tests.py starts, as it names them: the string argument of run, run_unchecked
    and child."""
    names = set()
    for node in ast.walk(ast.parse((IN_SANDBOX / "runtime_tests.py").read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in STARTERS:
            argument = node.args[STARTERS[node.func.id]]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.add(argument.value)
    return names


def child_run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run children/NAME.py with this interpreter, as the runtime tests run it with the one under test."""
    return subprocess.run(
        [sys.executable, str(CHILDREN / f"{name}.py"), *args],
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def child_output(name: str, *args: str) -> str:
    result = child_run(name, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_every_child_runtime_tests_names_exists_and_every_child_is_named() -> None:
    files = {path.stem for path in CHILDREN.glob("*.py")}
    named = named_children()
    assert named, "runtime_tests.py names no child program: the parse above no longer sees its calls"
    assert named <= files, f"named but missing: {sorted(named - files)}"
    assert files <= named, f"never run: {sorted(files - named)}"


def test_no_child_shadows_a_module() -> None:
    # A program's own directory comes first on sys.path, and the sandbox shows every helper file in one directory.
    files = {path.stem for path in CHILDREN.glob("*.py")}
    assert not files & set(sys.stdlib_module_names), files & set(sys.stdlib_module_names)
    assert not files & {path.stem for path in IN_SANDBOX.iterdir()}


def test_install_paths_are_the_interpreters_own() -> None:
    prefix, stdlib, executable = child_output("install_paths").splitlines()
    assert (prefix, stdlib, executable) == (sys.prefix, sysconfig.get_paths()["stdlib"], sys.executable)


def test_digest_asks_hashlib_by_name() -> None:
    assert child_output("digest", "sha256", "x") == hashlib.sha256(b"x").hexdigest()
    assert child_output("digest", "md5", "abc") == "900150983cd24fb0d6963f7d28e17f72"
    assert "AttributeError" in child_run("digest", "no_such_hash", "x").stderr


def test_tls_echo_completes_a_handshake_on_loopback(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "the host's openssl makes the test certificate"
    # The certificate the runtime tests make, with the host's openssl.
    cert, key = runtime_tests_module().certificate(argparse.Namespace(openssl_cli=openssl), tmp_path)
    version, cipher = child_output("tls_echo", str(cert), str(key)).split()
    assert version in ("TLSv1.2", "TLSv1.3") and cipher.startswith("TLS_"), (version, cipher)
    assert "No such file" in child_run("tls_echo", str(tmp_path / "missing.pem"), str(key)).stderr


def test_pbkdf2_and_hmac_agree_with_the_rfcs_outside_fips_mode() -> None:
    # Outside FIPS mode every case is computed, and the RFC implementations in the program must give the same
    # bytes as OpenSSL: they are what the FIPS-mode check compares against.
    results = json.loads(child_output("pbkdf2_hmac", "reference"))
    reference = results.pop("reference")
    for name in ("pbkdf2_short_salt", "pbkdf2_few_iterations", "pbkdf2_short_key", "pbkdf2_good"):
        assert results[name] == reference[name], name
    assert results["hmac_new_weak"] == results["hmac_digest_weak"] == reference["hmac_weak"]
    assert results["hmac_callable_digestmod"] == reference["hmac_good_msg"]
    name, digest_size, block_size, digest, copy, _module = results["hmac_object"]
    assert (name, digest_size, block_size) == ("hmac-sha256", 32, 64)
    assert (digest, copy) == (reference["hmac_good"], reference["hmac_copy"])
    assert "reference" not in json.loads(child_output("pbkdf2_hmac", "fips"))


def test_builtin_hashes_are_allowed_outside_fips_mode_and_the_fips_expectation_fails() -> None:
    out = child_output("builtin_hashes", "off")
    assert out.endswith("builtin constructors allowed for security use; usedforsecurity=False works"), out
    # md5, sha1, two BLAKE2, six SHA-3 and SHAKE, four SHA-2 (in _sha256 and _sha512 before 3.12, _sha2 after).
    assert int(out.split()[0]) == 14, out
    refused = child_run("builtin_hashes", "fips")
    assert refused.returncode != 0 and "AssertionError" in refused.stderr


def test_crypto_imports_use_each_in_turn_and_know_no_other_use() -> None:
    assert child_run("crypto_imports", "hashlib", "ssl", "hmac", "_md5", "md5").returncode == 0
    assert "KeyError: 'sha1'" in child_run("crypto_imports", "sha1").stderr


def test_library_versions_reads_each_row_and_reports_what_fails() -> None:
    rows = {
        "zlib": {"module": "zlib", "expression": "zlib.ZLIB_RUNTIME_VERSION"},
        "nested": {"module": "xml.parsers.expat", "expression": "xml.parsers.expat.EXPAT_VERSION"},
        "missing": {"module": "_no_such_module", "expression": "_no_such_module.VERSION"},
        "broken": {"module": "zlib", "expression": "zlib.NO_SUCH_ATTRIBUTE"},
    }
    found = json.loads(child_output("library_versions", json.dumps(rows)))
    assert found["zlib"] == {"version": zlib.ZLIB_RUNTIME_VERSION}
    assert found["nested"]["version"].startswith("expat_")
    assert found["missing"]["error"].startswith("_no_such_module: ModuleNotFoundError(")
    assert "AttributeError" in found["broken"]["error"]


@pytest.mark.parametrize("name", sorted(path.stem for path in CHILDREN.glob("*.py")))
def test_each_child_compiles_for_the_oldest_minor(name: str) -> None:
    # ruff and mypy check the programs for 3.11 too; this is the interpreter's own word on the syntax.
    compile((CHILDREN / f"{name}.py").read_text(), name, "exec", dont_inherit=True)
