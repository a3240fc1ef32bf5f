"""Test support: ``fipsmodule.cnf`` written from the bytes of a FIPS provider module, as OpenSSL 3.5 writes it.

The build host cannot run ``openssl fipsinstall`` for a module of another architecture (aarch64 ``fips.so``,
``fips.dylib``), and nothing in the file needs the module to run: it is a fixed list of switches plus
``module-mac``, an HMAC-SHA256 of the module's bytes under a key that is public and the same in every OpenSSL 3.x
build (:func:`pydist.validate.fips.module_mac`, which the validator checks). So the tests can write (or re-check)
the file for any target without an emulator, and know every switch ``openssl fipsinstall`` has.

OpenSSL 3.5.7 has two writers, with the same keys in a different order:

- ``make install_fips`` copies ``providers/fipsmodule.cnf``, which the build generates with
  ``util/mk-fipsmodule-cnf.pl -module providers/fips.so -section_name fips_sect -key $(FIPSKEY)``
  (``providers/build.info``, ``Configurations/unix-Makefile.tmpl``): every check on ("pedantic"), and no
  ``install-mac``/``install-status``, so the self tests run on every load. This is what the build ships.
- ``openssl fipsinstall`` (``apps/fipsinstall.c: write_config_fips_section``) loads the module, runs its self
  tests and writes the keys in its own order, ``module-mac`` last. Its defaults keep most checks off
  (``fips_opts``); ``-pedantic`` turns them all on (``pedantic_opts``). ``-self_test_oninstall`` adds
  ``install-mac`` (the same HMAC over the text ``INSTALL_SELF_TEST_KATS_RUN``) and ``install-status``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from hermetic import scratch
from pydist.validate.fips import module_mac

# apps/fipsinstall.c: VERSION_VAL and INSTALL_STATUS_VAL.
INSTALL_VERSION = "1"
INSTALL_STATUS = "INSTALL_SELF_TEST_KATS_RUN"
DEFAULT_SECTION = "fips_sect"

# apps/fipsinstall.c: write_config_fips_section, the header keys, the checks, then the MACs.
_FIPSINSTALL_CHECK_ORDER = (
    "hmac-key-check",
    "kmac-key-check",
    "tls1-prf-ems-check",
    "no-short-mac",
    "drbg-no-trunc-md",
    "signature-digest-check",
    "hkdf-digest-check",
    "tls13-kdf-digest-check",
    "tls1-prf-digest-check",
    "sshkdf-digest-check",
    "sskdf-digest-check",
    "x963kdf-digest-check",
    "dsa-sign-disabled",
    "tdes-encrypt-disabled",
    "rsa-pkcs15-pad-disabled",
    "rsa-pss-saltlen-check",
    "rsa-sign-x931-pad-disabled",
    "hkdf-key-check",
    "kbkdf-key-check",
    "tls13-kdf-key-check",
    "tls1-prf-key-check",
    "sshkdf-key-check",
    "sskdf-key-check",
    "x963kdf-key-check",
    "x942kdf-key-check",
    "pbkdf2-lower-bound-check",
    "ecdh-cofactor-check",
)
# The indicator and check switches of the 3.5 provider (names from util/perl/OpenSSL/paramnames.pm).
CHECKS = frozenset(_FIPSINSTALL_CHECK_ORDER)


@dataclass(frozen=True, kw_only=True)
class FipsSettings:
    """The switches a ``[fips_sect]`` records.

    Attributes:
        conditional_errors: (bool) a failed conditional self test puts the module in its error state.
        security_checks: (bool) the run-time security checks are on.
        checks: (frozenset[str]) the names in :data:`CHECKS` that are on (``1``); the rest are written ``0``.
        self_test_on_install: (bool) record that the known-answer tests ran at install time
            (``install-mac``, ``install-status``), so they are skipped on load; off since OpenSSL 3.1.
    """

    conditional_errors: bool = True
    security_checks: bool = True
    checks: frozenset[str] = CHECKS
    self_test_on_install: bool = False

    def __post_init__(self) -> None:
        unknown = self.checks - CHECKS
        if unknown:
            raise ValueError(f"unknown FIPS provider checks: {', '.join(sorted(unknown))}")


# What install_fips ships (util/mk-fipsmodule-cnf.pl) and `fipsinstall -pedantic` writes.
PEDANTIC = FipsSettings()
# `openssl fipsinstall` without options (apps/fipsinstall.c: fips_opts, "for backward compatibility").
FIPSINSTALL_DEFAULTS = FipsSettings(checks=frozenset({"pbkdf2-lower-bound-check"}))


class Writer(Enum):
    """Which OpenSSL program's key order to reproduce."""

    INSTALL_FIPS = "install_fips"
    FIPSINSTALL = "fipsinstall"


# util/mk-fipsmodule-cnf.pl: the header keys, module-mac, then the checks.
_INSTALL_FIPS_CHECK_ORDER = (
    "tls1-prf-ems-check",
    "no-short-mac",
    "drbg-no-trunc-md",
    "signature-digest-check",
    "dsa-sign-disabled",
    "hkdf-digest-check",
    "tls13-kdf-digest-check",
    "tls1-prf-digest-check",
    "sshkdf-digest-check",
    "sskdf-digest-check",
    "x963kdf-digest-check",
    "tdes-encrypt-disabled",
    "rsa-pkcs15-pad-disabled",
    "rsa-pss-saltlen-check",
    "rsa-sign-x931-pad-disabled",
    "hkdf-key-check",
    "kbkdf-key-check",
    "tls13-kdf-key-check",
    "tls1-prf-key-check",
    "sshkdf-key-check",
    "sskdf-key-check",
    "x963kdf-key-check",
    "x942kdf-key-check",
    "pbkdf2-lower-bound-check",
    "ecdh-cofactor-check",
    "hmac-key-check",
    "kmac-key-check",
)


# `openssl fipsinstall` switches that turn a check on (apps/fipsinstall.c: fipsinstall_options); the
# PBKDF2 lower bound is the one check on by default, turned off by -no_pbkdf2_lower_bound_check.
_FIPSINSTALL_SWITCHES = {name: "-" + name.replace("-", "_") for name in CHECKS} | {
    "tls1-prf-ems-check": "-ems_check",
    "drbg-no-trunc-md": "-no_drbg_truncated_digests",
    "rsa-pkcs15-pad-disabled": "-rsa_pkcs15_padding_disabled",
    "rsa-sign-x931-pad-disabled": "-rsa_sign_x931_disabled",
}


def fipsinstall_options(settings: FipsSettings) -> list[str]:
    """The ``openssl fipsinstall`` options that make it write `settings` (to check this module against it
    where the target's ``openssl`` can run: natively, or under an emulator)."""
    options = [] if settings.conditional_errors else ["-no_conditional_errors"]
    if not settings.security_checks:
        options.append("-no_security_checks")
    for name in _FIPSINSTALL_CHECK_ORDER:
        if name == "pbkdf2-lower-bound-check":
            if name not in settings.checks:
                options.append("-no_pbkdf2_lower_bound_check")
        elif name in settings.checks:
            options.append(_FIPSINSTALL_SWITCHES[name])
    # Explicit, because fipsinstall records install-time self tests by default for a 3.0 (FIPS 140-2) module.
    options.append("-self_test_oninstall" if settings.self_test_on_install else "-self_test_onload")
    return options


def _flag(on: bool) -> str:
    return "1" if on else "0"


def _lines(pairs: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{key} = {value}\n" for key, value in pairs)


def fipsmodule_cnf(
    module: bytes,
    *,
    settings: FipsSettings = PEDANTIC,
    writer: Writer = Writer.INSTALL_FIPS,
    section: str = DEFAULT_SECTION,
) -> str:
    """The text of ``fipsmodule.cnf`` for the provider module `module`, byte for byte as `writer` writes it."""
    header = [
        ("activate", "1"),
        ("install-version", INSTALL_VERSION),
        ("conditional-errors", _flag(settings.conditional_errors)),
        ("security-checks", _flag(settings.security_checks)),
    ]
    mac = ("module-mac", module_mac(module))
    if writer is Writer.INSTALL_FIPS:
        if settings.self_test_on_install:
            raise ValueError("install_fips never records install-time self tests (use Writer.FIPSINSTALL)")
        checks = [(name, _flag(name in settings.checks)) for name in _INSTALL_FIPS_CHECK_ORDER]
        return f"[{section}]\n" + _lines([*header, mac, *checks])
    checks = [(name, _flag(name in settings.checks)) for name in _FIPSINSTALL_CHECK_ORDER]
    installed = []
    if settings.self_test_on_install:
        # install-mac is the same HMAC, over the status text instead of the module (apps/fipsinstall.c).
        installed = [("install-mac", module_mac(INSTALL_STATUS.encode())), ("install-status", INSTALL_STATUS)]
    return f"[{section}]\n" + _lines([*header, *checks, mac, *installed])


def write_fipsmodule_cnf(
    module_path: Path,
    out: Path,
    *,
    settings: FipsSettings = PEDANTIC,
    writer: Writer = Writer.INSTALL_FIPS,
    section: str = DEFAULT_SECTION,
) -> None:
    """Write ``fipsmodule.cnf`` for the module file at `module_path` to `out` atomically (mode 0644)."""
    text = fipsmodule_cnf(module_path.read_bytes(), settings=settings, writer=writer, section=section)
    scratch.write_text(out, text)
