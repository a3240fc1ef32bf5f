"""The OpenSSL 3.5.7 artifact: the FIPS provider loads, refuses MD5, and its module-mac is right."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# The HMAC key OpenSSL's FIPS module uses for its integrity check (FIPS_KEY in OpenSSL's Configure).
FIPS_INTEGRITY_KEY = bytes.fromhex("f4556650ac31d35461610bac4ed81b1a181b2d8a43ea2854cbae22ca74560813")


@pytest.fixture(scope="module")
def openssl(openssl_tree: Path) -> Path:
    return openssl_tree


def fips_config(root: Path, tmp_path: Path) -> Path:
    config = tmp_path / "openssl-fips.cnf"
    config.write_text(
        "config_diagnostics = 1\n"
        "openssl_conf = openssl_init\n"
        f".include {root / 'ssl' / 'fipsmodule.cnf'}\n"
        "[openssl_init]\nproviders = provider_sect\nalg_section = algorithm_sect\n"
        "[provider_sect]\nfips = fips_sect\nbase = base_sect\n"
        "[base_sect]\nactivate = 1\n"
        "[algorithm_sect]\ndefault_properties = fips=yes\n"
    )
    return config


def run_openssl(root: Path, config: Path, *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {
        "PATH": os.environ["PATH"],
        "OPENSSL_CONF": str(config),
        "OPENSSL_MODULES": str(root / "lib" / "ossl-modules"),
    }
    return subprocess.run([str(root / "bin" / "openssl"), *args], input=data, capture_output=True, env=env)


def test_artifact_contents(openssl: Path) -> None:
    expected = ["lib/libcrypto.a", "lib/libssl.a", "include/openssl/evp.h", "lib/ossl-modules/fips.so"]
    expected += ["ssl/fipsmodule.cnf", "bin/openssl", ".hermetic/openssl-3.5.7.action.json"]
    for path in expected:
        assert (openssl / path).is_file(), path
    assert not list((openssl / "lib").glob("libcrypto.so*")), "OpenSSL must be static (no-shared)"


def test_built_without_hidden_visibility_and_exports_the_provider_entry(openssl: Path) -> None:
    flags = subprocess.run([str(openssl / "bin" / "openssl"), "version", "-f"], capture_output=True, text=True)
    assert "-fvisibility=hidden" not in flags.stdout
    assert "-fPIC" in flags.stdout
    symbols = subprocess.run(
        ["nm", "-D", "--defined-only", str(openssl / "lib" / "ossl-modules" / "fips.so")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r"\bT OSSL_provider_init$", symbols, re.M)


def test_fips_provider_is_active_and_refuses_md5(openssl: Path, tmp_path: Path) -> None:
    config = fips_config(openssl, tmp_path)
    providers = run_openssl(openssl, config, "list", "-providers")
    assert providers.returncode == 0, providers.stderr
    text = providers.stdout.decode()
    fips = text[text.index("  fips") :]
    assert "OpenSSL FIPS Provider" in fips and "version: 3.5.7" in fips and "status: active" in fips
    md5 = run_openssl(openssl, config, "dgst", "-md5", data=b"hello")
    assert md5.returncode != 0
    assert b"unsupported" in md5.stderr and b"MD5" in md5.stderr
    sha256 = run_openssl(openssl, config, "dgst", "-sha256", data=b"hello")
    assert sha256.returncode == 0 and hashlib.sha256(b"hello").hexdigest().encode() in sha256.stdout


def test_module_mac_is_the_hmac_of_fips_so(openssl: Path) -> None:
    config = (openssl / "ssl" / "fipsmodule.cnf").read_text()
    recorded = re.search(r"^module-mac = ([0-9A-F:]+)$", config, re.M)
    assert recorded is not None
    expected = hmac.new(FIPS_INTEGRITY_KEY, (openssl / "lib" / "ossl-modules" / "fips.so").read_bytes(), "sha256")
    assert recorded.group(1).replace(":", "").lower() == expected.hexdigest()


def test_a_changed_fips_so_is_refused(openssl: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered"
    (tampered / "lib" / "ossl-modules").mkdir(parents=True)
    (tampered / "ssl").mkdir()
    data = bytearray((openssl / "lib" / "ossl-modules" / "fips.so").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tampered / "lib" / "ossl-modules" / "fips.so").write_bytes(bytes(data))
    (tampered / "ssl" / "fipsmodule.cnf").write_bytes((openssl / "ssl" / "fipsmodule.cnf").read_bytes())
    (tampered / "bin").mkdir()
    (tampered / "bin" / "openssl").symlink_to(openssl / "bin" / "openssl")
    config = fips_config(tampered, tmp_path)
    digest = run_openssl(tampered, config, "dgst", "-sha256", data=b"hello")
    assert digest.returncode != 0 and b"unsupported" in digest.stderr  # no FIPS provider: nothing is served
    providers = run_openssl(tampered, config, "list", "-providers").stdout.decode()
    assert "OpenSSL FIPS Provider" not in providers
    cnf = str(tampered / "ssl" / "fipsmodule.cnf")
    module = "lib/ossl-modules/fips.so"
    verify = run_openssl(tampered, config, "fipsinstall", "-module", str(tampered / module), "-in", cnf, "-verify")
    assert verify.returncode != 0 and b"VERIFY FAILED" in verify.stderr
    original = run_openssl(openssl, config, "fipsinstall", "-module", str(openssl / module), "-in", cnf, "-verify")
    assert original.returncode == 0 and b"VERIFY PASSED" in original.stderr
