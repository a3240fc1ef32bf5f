"""fipsmodule.cnf from a module's bytes, checked against what OpenSSL 3.5.7 itself writes for the real module."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from fipsmodule import (
    CHECKS,
    FIPSINSTALL_DEFAULTS,
    PEDANTIC,
    FipsSettings,
    Writer,
    fipsinstall_options,
    fipsmodule_cnf,
    write_fipsmodule_cnf,
)
from pydist.validate.fips import FIPS_INTEGRITY_KEY, module_mac

MODULE = bytes(range(256)) * 64  # stands in for a module's bytes where only the MAC arithmetic matters


def lines(text: str) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in text.splitlines()[1:])


def test_both_writers_write_every_check_once() -> None:
    for writer in Writer:
        text = fipsmodule_cnf(MODULE, writer=writer)
        keys = [line.split(" = ")[0] for line in text.splitlines()[1:]]
        assert len(keys) == len(set(keys))
        assert set(keys) == CHECKS | {
            "activate",
            "install-version",
            "conditional-errors",
            "security-checks",
            "module-mac",
        }


def test_the_key_is_openssls_published_default() -> None:
    # Configure: "echo -n 'holy hand grenade of antioch' | openssl sha256".
    assert hashlib.sha256(b"holy hand grenade of antioch").digest() == FIPS_INTEGRITY_KEY


@pytest.mark.parametrize("position", [0, len(MODULE) // 2, len(MODULE) - 1])
def test_a_one_byte_change_changes_module_mac_and_nothing_else(position: int) -> None:
    tampered = bytearray(MODULE)
    tampered[position] ^= 0x01
    before, after = lines(fipsmodule_cnf(MODULE)), lines(fipsmodule_cnf(bytes(tampered)))
    assert before["module-mac"] != after["module-mac"]
    assert {k: v for k, v in before.items() if k != "module-mac"} == {
        k: v for k, v in after.items() if k != "module-mac"
    }


def test_module_mac_is_colon_separated_upper_case_hex() -> None:
    mac = module_mac(b"")
    assert len(mac.split(":")) == 32
    assert mac == mac.upper() and all(len(part) == 2 for part in mac.split(":"))


def test_unknown_check_is_refused() -> None:
    with pytest.raises(ValueError, match="no-such-check"):
        FipsSettings(checks=frozenset({"no-such-check"}))


def test_install_fips_never_records_install_time_self_tests() -> None:
    with pytest.raises(ValueError, match="install_fips"):
        fipsmodule_cnf(MODULE, settings=FipsSettings(self_test_on_install=True))


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_write_is_atomic_and_leaves_nothing_behind(tmp_path: Path) -> None:
    module = tmp_path / "fips.so"
    module.write_bytes(MODULE)
    conf = tmp_path / "conf"
    conf.mkdir()
    write_fipsmodule_cnf(module, conf / "fipsmodule.cnf")
    assert (conf / "fipsmodule.cnf").read_text() == fipsmodule_cnf(MODULE)
    assert (conf / "fipsmodule.cnf").stat().st_mode & 0o777 == 0o644
    assert names(conf) == ["fipsmodule.cnf"]
    # The rename fails when the destination is a non-empty directory: the temporary file must go too.
    (conf / "blocked.cnf").mkdir()
    (conf / "blocked.cnf" / "x").write_text("")
    with pytest.raises(OSError):
        write_fipsmodule_cnf(module, conf / "blocked.cnf")
    assert names(conf) == ["blocked.cnf", "fipsmodule.cnf"]


# ------------------------------------------------------------------ against the real OpenSSL 3.5.7 artifact


@pytest.fixture(scope="module")
def openssl(openssl_tree: Path) -> Path:
    return openssl_tree


def fips_so(openssl: Path) -> Path:
    return openssl / "lib" / "ossl-modules" / "fips.so"


def run_fipsinstall(openssl: Path, module: Path, out: Path, options: list[str]) -> str:
    """`openssl fipsinstall` of the artifact, with an empty config so the host's openssl.cnf plays no part."""
    empty = out.with_suffix(".empty.cnf")
    empty.write_text("")
    env = {"PATH": "/usr/bin:/bin", "OPENSSL_CONF": str(empty)}
    argv = [str(openssl / "bin" / "openssl"), "fipsinstall", "-module", str(module), "-out", str(out), *options]
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "INSTALL PASSED" in result.stderr
    return out.read_text()


@pytest.mark.integration
def test_matches_install_fips_byte_for_byte(openssl: Path) -> None:
    shipped = (openssl / "ssl" / "fipsmodule.cnf").read_bytes()
    assert fipsmodule_cnf(fips_so(openssl).read_bytes()).encode() == shipped


@pytest.mark.integration
@pytest.mark.parametrize(
    "settings",
    [
        FIPSINSTALL_DEFAULTS,
        PEDANTIC,
        FipsSettings(checks=frozenset(), self_test_on_install=True),
        FipsSettings(
            conditional_errors=False,
            security_checks=False,
            checks=frozenset({"tls1-prf-ems-check", "drbg-no-trunc-md", "rsa-sign-x931-pad-disabled"}),
        ),
    ],
    ids=["defaults", "pedantic", "self-test-on-install", "mixed"],
)
def test_matches_openssl_fipsinstall_byte_for_byte(openssl: Path, tmp_path: Path, settings: FipsSettings) -> None:
    written = run_fipsinstall(openssl, fips_so(openssl), tmp_path / "fipsmodule.cnf", fipsinstall_options(settings))
    assert fipsmodule_cnf(fips_so(openssl).read_bytes(), settings=settings, writer=Writer.FIPSINSTALL) == written


@pytest.mark.integration
def test_matches_fipsinstall_pedantic_switch(openssl: Path, tmp_path: Path) -> None:
    written = run_fipsinstall(openssl, fips_so(openssl), tmp_path / "fipsmodule.cnf", ["-pedantic"])
    assert fipsmodule_cnf(fips_so(openssl).read_bytes(), writer=Writer.FIPSINSTALL) == written


def sha256_with_fips(openssl: Path, modules: Path, module_cnf: Path) -> subprocess.CompletedProcess[str]:
    """`openssl sha256` with only the fips and base providers, the fips one configured by `module_cnf`."""
    config = module_cnf.with_name("openssl.cnf")
    config.write_text(
        f"openssl_conf = openssl_init\n.include {module_cnf}\n"
        "[openssl_init]\nproviders = provider_sect\nalg_section = algorithm_sect\n"
        "[provider_sect]\nfips = fips_sect\nbase = base_sect\n[base_sect]\nactivate = 1\n"
        "[algorithm_sect]\ndefault_properties = fips=yes\n"
    )
    env = {"PATH": "/usr/bin:/bin", "OPENSSL_CONF": str(config), "OPENSSL_MODULES": str(modules)}
    argv = [str(openssl / "bin" / "openssl"), "sha256"]
    return subprocess.run(argv, env=env, input="abc", capture_output=True, text=True)


@pytest.mark.integration
def test_the_provider_accepts_the_written_file_and_refuses_a_changed_module(openssl: Path, tmp_path: Path) -> None:
    modules = tmp_path / "ossl-modules"
    modules.mkdir()
    shutil.copyfile(fips_so(openssl), modules / "fips.so")
    module_cnf = tmp_path / "fipsmodule.cnf"
    write_fipsmodule_cnf(modules / "fips.so", module_cnf)
    loaded = sha256_with_fips(openssl, modules, module_cnf)
    assert loaded.returncode == 0, loaded.stderr
    assert "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" in loaded.stdout

    data = bytearray((modules / "fips.so").read_bytes())
    data[len(data) // 2] ^= 0x01
    (modules / "fips.so").write_bytes(bytes(data))
    refused = sha256_with_fips(openssl, modules, module_cnf)
    assert refused.returncode != 0
    assert "unsupported" in refused.stderr
