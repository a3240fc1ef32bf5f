"""FIPS rules against the real OpenSSL 3.5.7 FIPS provider built here, and modules built to break them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import Toolchain
from pydist.distribution import fips_config, install_fipsinstall_step
from pydist.validate.fips import check_fips, module_mac, parse_openssl_config
from pydist.validate.report import Report

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def openssl(openssl_tree: Path) -> Path:
    return openssl_tree


def install_tree(openssl: Path, dest: Path) -> Path:
    """share/ssl as the distribution ships it, with the openssl program and the standard library module of the
    fipsinstall step."""
    ssl = dest / "share" / "ssl"
    (ssl / "ossl-modules").mkdir(parents=True)
    shutil.copyfile(openssl / "lib" / "ossl-modules" / "fips.so", ssl / "ossl-modules" / "fips.so")
    module_cnf = (openssl / "ssl" / "fipsmodule.cnf").read_text()
    (ssl / "fipsmodule.cnf").write_text(module_cnf)
    (ssl / "openssl-fips.cnf").write_text(fips_config(module_cnf))
    (dest / "lib" / "python3.13").mkdir(parents=True)
    install_fipsinstall_step(dest, dest / "lib" / "python3.13", openssl / "bin" / "openssl")
    return dest


def rules(install: Path) -> dict[str, list[str]]:
    report = Report()
    check_fips(install, "python/", report)
    found: dict[str, list[str]] = {}
    for violation in report.violations:
        found.setdefault(violation.rule, []).append(violation.message)
    return found


def test_the_real_module_and_shipped_config_pass(openssl: Path, tmp_path: Path) -> None:
    install = install_tree(openssl, tmp_path)
    report = Report()
    digest = check_fips(install, "python/", report)
    assert report.violations == []
    assert digest is not None and len(digest) == 64


def test_module_mac_is_computed_like_fipsinstall(openssl: Path) -> None:
    recorded = re.search(r"module-mac = (\S+)", (openssl / "ssl" / "fipsmodule.cnf").read_text())
    assert recorded is not None
    assert module_mac((openssl / "lib" / "ossl-modules" / "fips.so").read_bytes()) == recorded.group(1)


def test_missing_module(openssl: Path, tmp_path: Path) -> None:
    install = install_tree(openssl, tmp_path)
    (install / "share" / "ssl" / "ossl-modules" / "fips.so").unlink()
    assert "fips.module" in rules(install)


def test_one_changed_byte_breaks_the_module_mac(openssl: Path, tmp_path: Path) -> None:
    install = install_tree(openssl, tmp_path)
    module = install / "share" / "ssl" / "ossl-modules" / "fips.so"
    data = bytearray(module.read_bytes())
    data[len(data) // 2] ^= 0x01
    module.write_bytes(bytes(data))
    found = rules(install)
    assert list(found) == ["fips.module-mac"]
    assert module_mac(bytes(data)) in found["fips.module-mac"][0]


@pytest.fixture(scope="module")
def fake_modules(toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Provider-shaped modules: one exporting more than its entry point, one hiding everything, as
    -fvisibility=hidden does to OSSL_provider_init (which carries no visibility attribute)."""
    work = tmp_path_factory.mktemp("modules")
    (work / "entry.c").write_text("int OSSL_provider_init(void) { return 1; }\nint BN_new(void) { return 2; }\n")
    cc = "x86_64-linux-gnu-clang -O2 -fPIC -shared"
    cc += " -fuse-ld=lld -Wl,-z,relro,-z,now"
    toolchain.run(work, f"{cc} -o extra.so entry.c\n{cc} -fvisibility=hidden -o hidden.so entry.c\n")
    return work


@pytest.mark.parametrize(("name", "fragment"), [("extra.so", "BN_new"), ("hidden.so", "is not exported")])
def test_module_exports_only_its_entry_point(
    openssl: Path, fake_modules: Path, tmp_path: Path, name: str, fragment: str
) -> None:
    install = install_tree(openssl, tmp_path)
    module = install / "share" / "ssl" / "ossl-modules" / "fips.so"
    shutil.copyfile(fake_modules / name, module)
    # Re-seal the module so only the exports rule can fail.
    cnf = install / "share" / "ssl" / "fipsmodule.cnf"
    sealed = re.sub(r"module-mac = \S+", f"module-mac = {module_mac(module.read_bytes())}", cnf.read_text())
    cnf.write_text(sealed)
    (install / "share" / "ssl" / "openssl-fips.cnf").write_text(fips_config(sealed))
    found = rules(install)
    assert list(found) == ["fips.exports"]
    assert fragment in found["fips.exports"][0]


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda t: t.replace("default_properties = fips=yes", "default_properties = fips=no"), "fips=yes"),
        (lambda t: t.replace("openssl_conf = openssl_init\n", ""), "openssl_conf"),
        (lambda t: t.replace("fips = fips_sect\n", ""), "fips provider is not configured"),
        (lambda t: re.sub(r"module-mac = \S+", "module-mac = 00:11", t), "differs from fipsmodule.cnf"),
        (lambda t: t.replace("activate = 1\n\n[default_sect]\nactivate = 1", "\n[default_sect]"), "neither"),
    ],
)
def test_incomplete_shipped_config(openssl: Path, tmp_path: Path, edit: object, fragment: str) -> None:
    install = install_tree(openssl, tmp_path)
    config = install / "share" / "ssl" / "openssl-fips.cnf"
    config.write_text(edit(config.read_text()))  # type: ignore[operator]
    found = rules(install)
    assert list(found) == ["fips.config"], found
    assert any(fragment in message for message in found["fips.config"])


def test_config_that_includes_the_module_config_has_no_section_to_replace(openssl: Path, tmp_path: Path) -> None:
    # Complete for OpenSSL, but FIPS mode could not put the installed module section in place of the build's.
    install = install_tree(openssl, tmp_path)
    config = install / "share" / "ssl" / "openssl-fips.cnf"
    text = config.read_text()
    header = text[: text.index("# Copied verbatim from fipsmodule.cnf:")]
    config.write_text(
        header.replace("openssl_conf = openssl_init\n", "openssl_conf = openssl_init\n.include fipsmodule.cnf\n")
    )
    assert rules(install) == {
        "fips.config": ["[fips_sect] is not on a line of its own exactly once, so FIPS mode cannot replace it"]
    }


def test_a_section_after_the_module_section_would_be_dropped(openssl: Path, tmp_path: Path) -> None:
    install = install_tree(openssl, tmp_path)
    config = install / "share" / "ssl" / "openssl-fips.cnf"
    config.write_text(config.read_text() + "\n[extra_sect]\nkey = value\n")
    found = rules(install)
    assert list(found) == ["fips.config"]
    assert "sections follow [fips_sect]" in found["fips.config"][0]


@pytest.mark.parametrize(
    ("missing", "fragment"),
    [("share/ssl/bin/openssl", "no executable openssl"), ("lib/python3.13/pystandalone_fips.py", "pystandalone_fips")],
)
def test_the_fipsinstall_step_is_shipped(openssl: Path, tmp_path: Path, missing: str, fragment: str) -> None:
    install = install_tree(openssl, tmp_path)
    (install / missing).unlink()
    found = rules(install)
    assert list(found) == ["fips.fipsinstall"]
    assert fragment in found["fips.fipsinstall"][0]


def test_a_non_executable_openssl_is_not_the_step(openssl: Path, tmp_path: Path) -> None:
    install = install_tree(openssl, tmp_path)
    (install / "share" / "ssl" / "bin" / "openssl").chmod(0o644)
    assert list(rules(install)) == ["fips.fipsinstall"]


def test_a_machines_fipsinstall_output_is_never_shipped(openssl: Path, tmp_path: Path) -> None:
    install = install_tree(openssl, tmp_path)
    (install / "share" / "ssl" / "fipsinstall").mkdir()
    (install / "share" / "ssl" / "fipsinstall" / "fipsmodule.cnf").write_text("[fips_sect]\n")
    found = rules(install)
    assert list(found) == ["fips.installed"]


def test_parse_openssl_config() -> None:
    sections, includes = parse_openssl_config(
        "openssl_conf = init # comment\n.include /x/fipsmodule.cnf\n[ init ]\nproviders = p\n[p]\nfips=s\n"
    )
    assert sections == {"": {"openssl_conf": "init"}, "init": {"providers": "p"}, "p": {"fips": "s"}}
    assert includes == ["/x/fipsmodule.cnf"]
