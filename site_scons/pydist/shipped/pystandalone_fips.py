"""Install this Python's OpenSSL FIPS provider on this machine, as a validated provider's Security Policy says.

    python -I -m pystandalone_fips install [--dir DIR] [--openssl PATH] [--prefix PREFIX]
    python -I -m pystandalone_fips verify [--dir DIR] [--openssl PATH] [--prefix PREFIX]

``install`` runs ``openssl fipsinstall`` (by default the ``openssl`` shipped in ``share/ssl/bin/``) on the shipped
module ``share/ssl/ossl-modules/fips.so``: the module runs its self-tests, and ``fipsinstall`` writes the module's
configuration section (``module-mac``; for a FIPS 140-2 provider, 3.0.x, also ``install-status`` and
``install-mac``, so the known-answer tests are not run again at each load). The policy switches are the ones the
build's own ``share/ssl/fipsmodule.cnf`` turns on, so the file differs from it only in what ``fipsinstall``
records on this machine. The file is checked with ``openssl fipsinstall -verify`` and then renamed into place:
``fipsmodule.cnf`` in DIR, or in ``$PYSTANDALONE_FIPSINSTALL_DIR``, or else in ``share/ssl/fipsinstall/`` of the
install. FIPS mode of this Python (``PYSTANDALONE_FIPS=1`` and its other switches) then loads it instead of the
section the build wrote; ``PYSTANDALONE_FIPS=validated`` refuses FIPS mode without it. A read-only install takes
``--dir DIR`` and ``PYSTANDALONE_FIPSINSTALL_DIR=DIR`` where this Python runs.

``verify`` checks that the file matches the module (``openssl fipsinstall -verify``) and that this Python's FIPS
mode, asked for the validated setup, activates with it.

Each prints one line and exits 0, or prints one line saying what is wrong and what to do and exits 1. Shipped in
the standard library of fips-python-standalone; it imports neither hashlib nor ssl, which refuse to import in the
validated setup until this has run.
"""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALLED_DIR_VAR = "PYSTANDALONE_FIPSINSTALL_DIR"
INSTALLED_DIR = Path("share", "ssl", "fipsinstall")
CONFIG_NAME = "fipsmodule.cnf"
SHIPPED_CONFIG = Path("share", "ssl", CONFIG_NAME)
MODULE_DIR = Path("share", "ssl", "ossl-modules")
MODULE_NAMES = ("fips.so", "fips.dylib")
OPENSSL = Path("share", "ssl", "bin", "openssl")
PROVIDER_NAME = "fips"
SECTION = "fips_sect"
STEP = "python -m pystandalone_fips install"
# Seconds a child process may take: the self-tests take well under one on any machine this runs on.
TIMEOUT = 600

# Keys of the section that record the installation rather than a policy.
RECORD_KEYS = frozenset({"activate", "install-version", "module-mac", "install-mac", "install-status"})
# Switches on unless fipsinstall is told otherwise, and the option that turns each off.
ON_BY_DEFAULT = {
    "conditional-errors": "-no_conditional_errors",
    "security-checks": "-no_security_checks",
    "pbkdf2-lower-bound-check": "-no_pbkdf2_lower_bound_check",
}
# Checks off unless fipsinstall is told otherwise, and the option that turns each on (apps/fipsinstall.c).
_SPELLED_DIFFERENTLY = {
    "tls1-prf-ems-check": "-ems_check",
    "drbg-no-trunc-md": "-no_drbg_truncated_digests",
    "rsa-pkcs15-pad-disabled": "-rsa_pkcs15_padding_disabled",
    "rsa-sign-x931-pad-disabled": "-rsa_sign_x931_disabled",
}
_SPELLED_ALIKE = (
    "hmac-key-check",
    "kmac-key-check",
    "no-short-mac",
    "signature-digest-check",
    "hkdf-digest-check",
    "tls13-kdf-digest-check",
    "tls1-prf-digest-check",
    "sshkdf-digest-check",
    "sskdf-digest-check",
    "x963kdf-digest-check",
    "dsa-sign-disabled",
    "tdes-encrypt-disabled",
    "rsa-pss-saltlen-check",
    "hkdf-key-check",
    "kbkdf-key-check",
    "tls13-kdf-key-check",
    "tls1-prf-key-check",
    "sshkdf-key-check",
    "sskdf-key-check",
    "x963kdf-key-check",
    "x942kdf-key-check",
    "ecdh-cofactor-check",
)
OFF_BY_DEFAULT = {**_SPELLED_DIFFERENTLY, **{name: "-" + name.replace("-", "_") for name in _SPELLED_ALIKE}}


class StepError(Exception):
    """What went wrong, as one line that says the cause and what to do."""


@dataclass(frozen=True)
class Install:
    """The files of one install that the step works with.

    Attributes:
        prefix: (Path) the install (``sys.base_prefix``).
        module: (Path) the FIPS provider module.
        openssl: (Path) the ``openssl`` program that runs ``fipsinstall``.
    """

    prefix: Path
    module: Path
    openssl: Path

    @property
    def shipped_config(self) -> Path:
        """The module section the build wrote (the policy switches the installed one must keep)."""
        return self.prefix / SHIPPED_CONFIG


def locate(prefix: Path, openssl: Path | None) -> Install:
    """The install at `prefix`, with `openssl` (or the shipped one) to run; StepError when a file is missing."""
    modules = [prefix / MODULE_DIR / name for name in MODULE_NAMES if (prefix / MODULE_DIR / name).is_file()]
    if not modules:
        raise StepError(
            f"{prefix / MODULE_DIR} holds no FIPS provider module: {prefix} is not an install of "
            "fips-python-standalone with its FIPS files; pass the install as --prefix"
        )
    program = openssl if openssl is not None else prefix / OPENSSL
    if not (program.is_file() and os.access(program, os.X_OK)):
        raise StepError(f"{program} is not an executable program: pass an OpenSSL 3 `openssl` as --openssl PATH")
    if not (prefix / SHIPPED_CONFIG).is_file():
        raise StepError(
            f"{prefix / SHIPPED_CONFIG} is missing, so the policy to install is unknown: unpack the install again"
        )
    return Install(prefix=prefix, module=modules[0], openssl=program)


def config_dir(prefix: Path, named: Path | None) -> tuple[Path, bool]:
    """Where the installed configuration goes, as this Python's FIPS mode looks for it: `named` (--dir), else
    $PYSTANDALONE_FIPSINSTALL_DIR, else share/ssl/fipsinstall/ of the install. The flag says whether FIPS mode
    needs the variable to find it there."""
    if named is not None:
        directory = named.absolute()
        return directory, directory != prefix / INSTALLED_DIR
    from_env = os.environ.get(INSTALLED_DIR_VAR, "")
    if from_env:
        if not Path(from_env).is_absolute():
            raise StepError(
                f"{INSTALLED_DIR_VAR}={from_env} is not an absolute path: set it to the absolute path of the "
                "directory to use, or pass --dir"
            )
        return Path(from_env), True
    return prefix / INSTALLED_DIR, False


def read_section(text: str, section: str = SECTION) -> dict[str, str]:
    """The keys of `section` in an OpenSSL configuration text."""
    keys: dict[str, str] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == section and "=" in line:
            key, _, value = line.partition("=")
            keys[key.strip()] = value.strip()
    return keys


def policy(section: dict[str, str]) -> dict[str, str]:
    """The policy switches of a module section (everything but what records the installation)."""
    return {key: value for key, value in section.items() if key not in RECORD_KEYS}


def fipsinstall_options(shipped: dict[str, str]) -> list[str]:
    """The ``openssl fipsinstall`` options that write the policy switches `shipped` has; StepError for a
    switch this step cannot ask for (from a newer provider than it knows)."""
    options = []
    for key, value in policy(shipped).items():
        if key in ON_BY_DEFAULT and value == "0":
            options.append(ON_BY_DEFAULT[key])
        elif key in OFF_BY_DEFAULT and value == "1":
            options.append(OFF_BY_DEFAULT[key])
        elif key not in ON_BY_DEFAULT and key not in OFF_BY_DEFAULT:
            raise StepError(
                f"the shipped {CONFIG_NAME} sets {key} = {value}, which this step cannot ask openssl fipsinstall "
                f"for: install a fips-python-standalone whose {Path(__file__).name} knows it"
            )
    return options


def openssl_env() -> dict[str, str]:
    """The environment of ``openssl``: no configuration file. A host's openssl.cnf that activates its own FIPS
    provider would load that module before fipsinstall starts (openssl-fipsinstall(1), NOTES), and
    OPENSSL_MODULES would not matter anyway: ``-module`` names the file."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENSSL_CONF", "OPENSSL_CONF_INCLUDE", "OPENSSL_MODULES")}
    env["OPENSSL_CONF"] = os.devnull
    return env


def run_openssl(install: Install, *args: str) -> subprocess.CompletedProcess[str]:
    """``openssl fipsinstall`` for the install's module with `args`."""
    argv = [str(install.openssl), "fipsinstall", "-module", str(install.module)]
    argv += ["-provider_name", PROVIDER_NAME, "-section_name", SECTION, *args]
    try:
        return subprocess.run(argv, env=openssl_env(), capture_output=True, text=True, timeout=TIMEOUT)
    except OSError as e:
        raise StepError(
            f"{install.openssl} cannot run: {e.strerror}; pass a working `openssl` as --openssl PATH"
        ) from None
    except subprocess.TimeoutExpired:
        raise StepError(f"{install.openssl} fipsinstall did not finish in {TIMEOUT} s; run it again") from None


def last_error(output: str) -> str:
    """The line of openssl's output that says why it failed (the last that is not its FAILED banner)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reasons = [line for line in lines if not line.endswith(("INSTALL FAILED", "VERIFY FAILED"))]
    return (reasons or lines or ["no output"])[-1]


def provider_of(output: str) -> str:
    """The provider's name and version as ``fipsinstall`` printed them while its self-tests ran."""
    fields = {}
    for line in output.splitlines():
        key, _, value = line.strip().partition(":")
        if key in ("name", "version") and value.strip():
            fields[key] = value.strip()
    return " ".join(fields[k] for k in ("name", "version") if k in fields) or "the FIPS provider"


def reserve(path: Path, named: bool) -> None:
    """Create `path` empty, for fipsinstall to write; StepError saying what to do when that is not possible."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except OSError as e:
        where = path.parent
        if named:
            raise StepError(f"cannot write {where} ({e.strerror}): name a writable directory with --dir") from None
        read_only = e.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        fix = (
            f"the install is read-only: run `{STEP} --dir DIR` with a writable DIR on this machine, and set "
            f"{INSTALLED_DIR_VAR}=DIR where this Python runs"
            if read_only
            else f"fix {where}, or use `{STEP} --dir DIR` and {INSTALLED_DIR_VAR}=DIR"
        )
        raise StepError(f"cannot write {where} ({e.strerror}): {fix}") from None


def check_policy(install: Install, shipped: dict[str, str], written: dict[str, str]) -> None:
    """The `written` section must keep every policy switch of the build's (`shipped`), as it sets it: an
    ``openssl`` older than the provider would leave a check off without a word."""
    for key, value in policy(shipped).items():
        if written.get(key) != value:
            raise StepError(
                f"{install.openssl} fipsinstall wrote {key} = {written.get(key, '(nothing)')} where the build's "
                f"{install.shipped_config} has {value}: use an `openssl` that knows that switch (the shipped one)"
            )


def verify_file(install: Install, config: Path) -> dict[str, str]:
    """``openssl fipsinstall -verify`` of `config` against the module (and of its install-status, when it
    records one); returns its section, or raises StepError."""
    section = read_section(config.read_text())
    if "module-mac" not in section:
        raise StepError(f"{config} has no module-mac in [{SECTION}]: it was not written by `{STEP}`; run it again")
    extra = ["-self_test_oninstall"] if "install-status" in section else []
    result = run_openssl(install, "-in", str(config), "-verify", *extra)
    if result.returncode != 0 or "VERIFY PASSED" not in result.stderr:
        raise StepError(
            f"{config} does not match {install.module} ({last_error(result.stderr)}): if this module is the one "
            f"you meant to install, run `{STEP}` again"
        )
    return section


def install_config(install: Install, directory: Path, named: bool) -> str:
    """Run ``openssl fipsinstall`` into a new file in `directory`, check it and rename it to fipsmodule.cnf;
    returns the line to print."""
    final = directory / CONFIG_NAME
    partial = directory / f".{CONFIG_NAME}.{os.getpid()}.partial"
    shipped = read_section(install.shipped_config.read_text())
    options = fipsinstall_options(shipped)
    reserve(partial, named)
    try:
        result = run_openssl(install, "-out", str(partial), "-noout", *options)
        if result.returncode != 0 or "INSTALL PASSED" not in result.stderr:
            raise StepError(
                f"openssl fipsinstall failed for {install.module} (exit {result.returncode}: "
                f"{last_error(result.stderr)}): the module or its self-tests failed; do not use FIPS mode "
                "with it, unpack the install again"
            )
        section = verify_file(install, partial)
        check_policy(install, shipped, section)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    return report(install, final, section, provider_of(result.stderr), named)


def report(install: Install, final: Path, section: dict[str, str], provider: str, named: bool) -> str:
    """The one line ``install`` prints."""
    kats = (
        "recorded its module-mac and install-status (its known-answer tests ran now and are skipped at load)"
        if "install-status" in section
        else "recorded its module-mac (its self-tests run again at every load)"
    )
    use = (
        f"FIPS mode of this Python uses it where {INSTALLED_DIR_VAR}={final.parent} is set"
        if named
        else "FIPS mode of this Python uses it"
    )
    return f"wrote {final}: openssl fipsinstall ran the self-tests of {provider} ({install.module}) and {kats}; {use}"


def fips_mode_config(install: Install, directory: Path, named: bool) -> str:
    """The configuration this Python's FIPS mode activates with when asked for the validated setup, as the
    interpreter reports it (``_hashlib.get_fips_config()``); StepError when FIPS mode is refused."""
    env = {**os.environ, "PYSTANDALONE_FIPS": "validated"}
    env.pop(INSTALLED_DIR_VAR, None)
    if named:
        env[INSTALLED_DIR_VAR] = str(directory)
    python = install.prefix / "bin" / "python3"
    argv = [str(python), "-I", "-c", "import _hashlib; print(_hashlib.get_fips_config())"]
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StepError(f"{python} did not run: {e}; run verify with the install's own bin/python3") from None
    if result.returncode != 0:
        raise StepError(f"FIPS mode does not activate: {last_error(result.stderr)}")
    return result.stdout.strip()


def verify_installed(install: Install, directory: Path, named: bool) -> str:
    """Check the installed configuration against the module and FIPS mode with it; returns the line to print."""
    config = directory / CONFIG_NAME
    if not config.is_file():
        raise StepError(f"{config} is missing: run `{STEP}`" + (f" --dir {directory}" if named else ""))
    section = verify_file(install, config)
    used = fips_mode_config(install, directory, named)
    if Path(used) != config:
        raise StepError(f"FIPS mode activated with {used}, not {config}: unset the variables that point elsewhere")
    records = "module-mac, install-status" if "install-status" in section else "module-mac"
    return f"ok: {config} matches {install.module} ({records}), and FIPS mode (validated) activates with it"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m pystandalone_fips", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("install", "verify"))
    parser.add_argument(
        "--dir",
        type=Path,
        help=f"where fipsmodule.cnf goes (default: ${INSTALLED_DIR_VAR}, else <prefix>/{INSTALLED_DIR})",
    )
    parser.add_argument("--openssl", type=Path, help=f"the openssl that runs fipsinstall (default: <prefix>/{OPENSSL})")
    parser.add_argument("--prefix", type=Path, default=Path(sys.base_prefix), help="the install (default: this one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 with one line on stderr otherwise."""
    args = parse_args(argv)
    try:
        install = locate(args.prefix.absolute(), args.openssl)
        directory, named = config_dir(install.prefix, args.dir)
        run = install_config if args.command == "install" else verify_installed
        print(run(install, directory, named))
    except StepError as e:
        print(f"pystandalone_fips {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # A file the step reads or writes (other than those it reports itself): name it and why.
        print(f"pystandalone_fips {args.command}: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pystandalone_fips {args.command}: interrupted; nothing was changed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
