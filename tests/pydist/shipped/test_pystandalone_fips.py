"""The fipsinstall step shipped in the standard library (``python -m pystandalone_fips``): its pieces, and the
step itself run with the real OpenSSL 3.5.7 ``openssl`` and FIPS provider built here, on an install laid out as
the distribution ships it. Its FIPS-mode half (``verify``, and FIPS mode loading the file) needs the patched
interpreter and runs in the runtime tests of every install_only archive."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import fipsmodule
from conftest import REPO_ROOT
from pydist.distribution import FIPSINSTALL_DIR, FIPSINSTALL_DIR_VAR, FIPSINSTALL_PROGRAM, install_fipsinstall_step

SHIPPED = REPO_ROOT / "site_scons" / "pydist" / "shipped" / "pystandalone_fips.py"


def load_step() -> ModuleType:
    # A module of the distribution's standard library, not of the build: load it from its path.
    spec = importlib.util.spec_from_file_location("pystandalone_fips", SHIPPED)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["pystandalone_fips"] = module
    spec.loader.exec_module(module)
    return module


step = load_step()

# What the 3.0 providers' own install_fips writes (3.0.20, built here): the two switches those providers have.
SECTION_3_0 = {"activate": "1", "conditional-errors": "1", "security-checks": "1", "module-mac": "AB:CD"}


def test_the_step_and_the_distribution_agree_on_names() -> None:
    assert str(step.OPENSSL) == FIPSINSTALL_PROGRAM
    assert str(step.INSTALLED_DIR) == FIPSINSTALL_DIR
    assert step.INSTALLED_DIR_VAR == FIPSINSTALL_DIR_VAR


def test_every_check_of_the_35_provider_has_its_fipsinstall_option() -> None:
    # The same options tests/fipsmodule.py proves against openssl fipsinstall's own output.
    table = {**step.ON_BY_DEFAULT, **step.OFF_BY_DEFAULT}
    assert set(table) == fipsmodule.CHECKS | {"conditional-errors", "security-checks"}
    for check in fipsmodule.CHECKS - {"pbkdf2-lower-bound-check"}:
        options = fipsmodule.fipsinstall_options(fipsmodule.FipsSettings(checks=frozenset({check})))
        assert set(options) == {"-no_pbkdf2_lower_bound_check", step.OFF_BY_DEFAULT[check], "-self_test_onload"}


def test_the_options_reproduce_the_shipped_switches() -> None:
    pedantic = {"activate": "1", "conditional-errors": "1", "security-checks": "1"}
    pedantic |= dict.fromkeys(fipsmodule.CHECKS, "1")
    assert sorted(step.fipsinstall_options(pedantic)) == sorted(step.OFF_BY_DEFAULT.values())
    assert step.fipsinstall_options(SECTION_3_0) == []
    relaxed = {"conditional-errors": "0", "security-checks": "1", "pbkdf2-lower-bound-check": "0"}
    assert step.fipsinstall_options(relaxed) == ["-no_conditional_errors", "-no_pbkdf2_lower_bound_check"]


def test_a_switch_the_step_does_not_know_is_refused() -> None:
    with pytest.raises(step.StepError, match="sets future-check = 1, which this step cannot ask"):
        step.fipsinstall_options({**SECTION_3_0, "future-check": "1"})


def test_a_weaker_policy_than_the_builds_is_refused(tmp_path: Path) -> None:
    install = step.Install(prefix=tmp_path, module=tmp_path / "fips.so", openssl=tmp_path / "openssl")
    shipped = {**SECTION_3_0, "tls1-prf-ems-check": "1"}
    step.check_policy(install, shipped, {**shipped, "module-mac": "EF:01", "hmac-key-check": "0"})
    with pytest.raises(step.StepError, match="wrote tls1-prf-ems-check = 0 where the build's"):
        step.check_policy(install, shipped, {**shipped, "tls1-prf-ems-check": "0"})
    with pytest.raises(step.StepError, match=r"wrote tls1-prf-ems-check = \(nothing\)"):
        step.check_policy(install, shipped, SECTION_3_0)


def test_the_step_imports_nothing_that_fips_mode_guards() -> None:
    # In the validated setup hashlib, hmac and ssl refuse to import until the step has run.
    code = (
        f"import sys; sys.path.insert(0, {str(SHIPPED.parent)!r}); import pystandalone_fips; "
        "print(sorted({'hashlib', '_hashlib', 'hmac', 'ssl', '_ssl'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_read_section() -> None:
    text = "openssl_conf = x\n[other]\nactivate = 0\n[ fips_sect ]\nactivate = 1 # on\nmodule-mac=AA:BB\n"
    assert step.read_section(text) == {"activate": "1", "module-mac": "AA:BB"}


def test_what_fipsinstall_printed_is_read() -> None:
    output = "SHA1 : (Digest) : Pass\n\tname:     \tOpenSSL FIPS Provider\n\tversion:  \t3.0.20\nINSTALL PASSED\n"
    assert step.provider_of(output) == "OpenSSL FIPS Provider 3.0.20"
    assert step.provider_of("INSTALL PASSED\n") == "the FIPS provider"
    assert step.last_error("Module integrity mismatch\nVERIFY FAILED\n") == "Module integrity mismatch"
    assert step.last_error("") == "no output"


def test_where_the_configuration_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FIPSINSTALL_DIR_VAR, raising=False)
    assert step.config_dir(tmp_path, None) == (tmp_path / FIPSINSTALL_DIR, False)
    assert step.config_dir(tmp_path, tmp_path / FIPSINSTALL_DIR) == (tmp_path / FIPSINSTALL_DIR, False)
    assert step.config_dir(tmp_path, Path("/etc/pyfips")) == (Path("/etc/pyfips"), True)
    monkeypatch.setenv(FIPSINSTALL_DIR_VAR, "/srv/fips")
    assert step.config_dir(tmp_path, None) == (Path("/srv/fips"), True)
    monkeypatch.setenv(FIPSINSTALL_DIR_VAR, "relative/dir")
    with pytest.raises(step.StepError, match="is not an absolute path"):
        step.config_dir(tmp_path, None)


def test_an_install_without_the_fips_files_is_named(tmp_path: Path) -> None:
    with pytest.raises(step.StepError, match="holds no FIPS provider module"):
        step.locate(tmp_path, None)


# ---------------------------------------------------------------- with the real OpenSSL 3.5.7 artifact


@pytest.fixture(scope="module")
def openssl(openssl_tree: Path) -> Path:
    return openssl_tree


def make_install(openssl: Path, prefix: Path) -> Path:
    """An install's FIPS files as the distribution ships them (module, the build's fipsmodule.cnf, openssl)."""
    ssl = prefix / "share" / "ssl"
    (ssl / "ossl-modules").mkdir(parents=True)
    shutil.copyfile(openssl / "lib" / "ossl-modules" / "fips.so", ssl / "ossl-modules" / "fips.so")
    shutil.copyfile(openssl / "ssl" / "fipsmodule.cnf", ssl / "fipsmodule.cnf")
    (prefix / "lib" / "python3.13").mkdir(parents=True)
    install_fipsinstall_step(prefix, prefix / "lib" / "python3.13", openssl / "bin" / "openssl")
    return prefix


def run_step(prefix: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m pystandalone_fips`` of `prefix` (its standard library copy), as a user runs it."""
    module = prefix / "lib" / "python3.13" / "pystandalone_fips.py"
    argv = [sys.executable, "-I", str(module), *args, "--prefix", str(prefix)]
    base = {"PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run(argv, env=base, capture_output=True, text=True, timeout=600)


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("pystandalone_fips ") and fragment in lines[0], lines[0]


@pytest.mark.integration
def test_install_writes_what_fipsinstall_wrote_with_the_builds_policy(openssl: Path, tmp_path: Path) -> None:
    prefix = make_install(openssl, tmp_path / "python")
    result = run_step(prefix, "install")
    assert result.returncode == 0, result.stderr
    written = prefix / FIPSINSTALL_DIR / "fipsmodule.cnf"
    assert result.stdout.splitlines() == [result.stdout.strip()]
    assert result.stdout.startswith(f"wrote {written}: openssl fipsinstall ran the self-tests of OpenSSL FIPS")
    assert "Provider 3.5.7" in result.stdout and "run again at every load" in result.stdout
    # The same switches and MAC as the build's (same module, same policy), in fipsinstall's own order and form;
    # no install-status: a 3.5 provider runs its self-tests at every load.
    shipped = step.read_section((openssl / "ssl" / "fipsmodule.cnf").read_text())
    assert step.read_section(written.read_text()) == shipped
    assert written.read_text() != (openssl / "ssl" / "fipsmodule.cnf").read_text()
    assert written.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in written.parent.iterdir()] == ["fipsmodule.cnf"]


@pytest.mark.integration
def test_install_ignores_the_hosts_openssl_configuration(openssl: Path, tmp_path: Path) -> None:
    # A host configuration that cannot load (here: a provider that does not exist) would stop fipsinstall.
    host = tmp_path / "host-openssl.cnf"
    host.write_text("openssl_conf = init\n[init]\nproviders = p\n[p]\nnowhere = s\n[s]\nactivate = 1\n")
    prefix = make_install(openssl, tmp_path / "python")
    result = run_step(prefix, "install", env={"OPENSSL_CONF": str(host), "OPENSSL_MODULES": str(tmp_path)})
    assert result.returncode == 0, result.stderr


@pytest.mark.integration
def test_install_into_a_named_directory_says_how_fips_mode_finds_it(openssl: Path, tmp_path: Path) -> None:
    prefix = make_install(openssl, tmp_path / "python")
    target = tmp_path / "etc" / "pyfips"
    result = run_step(prefix, "install", "--dir", str(target))
    assert result.returncode == 0, result.stderr
    assert (target / "fipsmodule.cnf").is_file()
    assert not (prefix / FIPSINSTALL_DIR).exists()
    assert f"where {FIPSINSTALL_DIR_VAR}={target} is set" in result.stdout


@pytest.mark.integration
def test_a_module_that_fails_fipsinstall_leaves_nothing(openssl: Path, tmp_path: Path) -> None:
    prefix = make_install(openssl, tmp_path / "python")
    module = prefix / "share" / "ssl" / "ossl-modules" / "fips.so"
    module.write_bytes(module.read_bytes()[:4096])  # truncated: it cannot be loaded
    result = run_step(prefix, "install")
    assert_one_line_error(result, "openssl fipsinstall failed for")
    assert list((prefix / FIPSINSTALL_DIR).iterdir()) == []


@pytest.mark.integration
def test_verify_file_refuses_a_configuration_of_another_module(openssl: Path, tmp_path: Path) -> None:
    prefix = make_install(openssl, tmp_path / "python")
    assert run_step(prefix, "install").returncode == 0
    install = step.locate(prefix, None)
    config = prefix / FIPSINSTALL_DIR / "fipsmodule.cnf"
    assert step.verify_file(install, config)["module-mac"]
    # Another copy of the module: one byte more, still a loadable provider, but not the one installed.
    with install.module.open("ab") as module:
        module.write(b"\0")
    with pytest.raises(step.StepError, match=r"does not match .* \(Module integrity mismatch\)"):
        step.verify_file(install, config)


def read_only(prefix: Path, argv: list[str]) -> list[str]:
    """`argv` in new user and mount namespaces where `prefix` is a read-only bind mount of itself (as root may
    write to any file its permissions deny, a read-only file system is what makes an install read-only)."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", str(prefix), *argv]


@pytest.mark.integration
def test_a_read_only_install_needs_a_directory_named(openssl: Path, tmp_path: Path) -> None:
    prefix = make_install(openssl, tmp_path / "python")
    module = prefix / "lib" / "python3.13" / "pystandalone_fips.py"
    base = [sys.executable, "-I", str(module), "install", "--prefix", str(prefix)]
    env = {"PATH": "/usr/bin:/bin"}
    refused = subprocess.run(read_only(prefix, base), env=env, capture_output=True, text=True, timeout=600)
    assert_one_line_error(refused, "(Read-only file system): the install is read-only")
    assert f"--dir DIR` with a writable DIR on this machine, and set {FIPSINSTALL_DIR_VAR}=DIR" in refused.stderr
    target = tmp_path / "writable"
    named = [*base, "--dir", str(target)]
    accepted = subprocess.run(read_only(prefix, named), env=env, capture_output=True, text=True, timeout=600)
    assert accepted.returncode == 0, accepted.stderr
    assert (target / "fipsmodule.cnf").is_file()


@pytest.mark.integration
def test_an_openssl_that_cannot_run_is_named(openssl: Path, tmp_path: Path) -> None:
    prefix = make_install(openssl, tmp_path / "python")
    (prefix / FIPSINSTALL_PROGRAM).chmod(0o644)
    assert_one_line_error(run_step(prefix, "install"), "is not an executable program: pass an OpenSSL 3")
