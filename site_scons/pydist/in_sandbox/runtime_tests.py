"""Runtime tests of an unpacked distribution; run inside the sandbox with the distribution's own Python.

    python/bin/python3 -E -s runtime_tests.py PYTHON_DIR --libraries JSON --fips-provider X.Y.Z \
        --openssl-cli PATH --cpython-tests DIR --fips-skips FILE --allocator NAME --report FILE

--libraries is what the build knows of each library the target uses (pydist.archive_actions.library_version_facts):
a JSON list of {library, display, version} with either module and expression (how to read the version) or why
nothing is read (not_built, unreadable).

Every check runs in a child interpreter of the distribution under test, first where it was unpacked and
then after moving the whole tree elsewhere (relocation). What a child interpreter runs is a program of
children/ beside this script, one file each (standard library only, Python 3.11 and later), which the linters
check like the rest of the code. Then CPython's own test_hashlib, test_hmac and test_ssl (the test package comes
from the full archive, in --cpython-tests) run outside and inside FIPS mode, the latter without the tests
--fips-skips names with the FIPS rule that makes each fail. A failing check fails the build. Standard library only.

What FIPS mode refuses depends on the provider that ships (--fips-provider; a 3.0 or 3.1 provider when built from
its own tree): a check a provider version does not have (``hmac-key-check`` came with 3.4) is expected to let the
operation through, and skip-list entries that name only such checks must pass. Which checks the provider enforces
is read from the fipsmodule.cnf its own ``install_fips`` wrote (see ``provider_enforces``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

CHECKS: list[Callable[[Path, argparse.Namespace, Path], str]] = []


def check(
    fn: Callable[[Path, argparse.Namespace, Path], str],
) -> Callable[[Path, argparse.Namespace, Path], str]:
    CHECKS.append(fn)
    return fn


class CheckFailed(Exception):
    pass


class CheckSkipped(Exception):
    """The check cannot run here, for the reason given (reported as skipped, never as passed)."""


def python_of(root: Path) -> Path:
    return root / "bin" / "python3"


# The child programs the checks run with the interpreter under test (children/NAME.py beside this script).
CHILDREN = Path(__file__).resolve().parent / "children"


def child(name: str) -> str:
    """The path of the child program `name`."""
    return str(CHILDREN / f"{name}.py")


def run_unchecked(
    root: Path,
    program: str,
    *,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
    python_args: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the child program `program` with arguments `argv` in a fresh interpreter of the distribution at
    `root` (with `python_args` before the program)."""
    base = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [str(python_of(root)), *(python_args or []), child(program), *(argv or [])],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def run(
    root: Path,
    program: str,
    *,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
    python_args: list[str] | None = None,
) -> str:
    """Run the child program `program` in a fresh interpreter of the distribution at `root`; return its stdout."""
    result = run_unchecked(root, program, env=env, argv=argv, python_args=python_args)
    if result.returncode != 0:
        raise CheckFailed(f"exit {result.returncode}: {(result.stderr or result.stdout).strip()[-2000:]}")
    return result.stdout.strip()


@check
def imports_every_extension_module(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    return run(root, "extension_modules")


# What sys._debugmallocstats() writes only for each object allocator (CPython's obmalloc.c).
ALLOCATOR_STATS = {"mimalloc": "Medium block threshold", "pymalloc": "# arenas allocated total"}


def allocator_in_use(root: Path, pythonmalloc: str | None = None) -> str:
    """The object allocator the distribution's interpreter runs with, read from its allocator statistics."""
    env = {"PYTHONMALLOC": pythonmalloc} if pythonmalloc else {}
    result = run_unchecked(root, "allocator_stats", env=env)
    if result.returncode != 0:
        raise CheckFailed(f"PYTHONMALLOC={pythonmalloc}: exit {result.returncode}: {result.stderr.strip()[-500:]}")
    found = [name for name, marker in ALLOCATOR_STATS.items() if marker in result.stderr]
    return found[0] if len(found) == 1 else f"neither of {sorted(ALLOCATOR_STATS)}"


@check
def default_object_allocator(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    """mimalloc where this build defaults to it (3.13+, and every free-threaded build), and PYTHONMALLOC chooses."""
    default = allocator_in_use(root)
    assert default == args.allocator, f"the default object allocator is {default}, not {args.allocator}"
    # This script runs under the distribution's own interpreter, whose build (GIL or not) the moved copy shares.
    if args.allocator == "mimalloc" and not sysconfig.get_config_var("Py_GIL_DISABLED"):
        chosen = allocator_in_use(root, "pymalloc")
        assert chosen == "pymalloc", f"PYTHONMALLOC=pymalloc runs {chosen}"
        return "mimalloc by default, pymalloc with PYTHONMALLOC=pymalloc"
    return f"{default} by default"


def pinned_version(args: argparse.Namespace, library: str) -> str:
    """The version of `library` the build pinned (from --libraries)."""
    for row in args.libraries:
        if row["library"] == library:
            return str(row["version"])
    raise CheckFailed(f"--libraries names no {library}")


def listed(rows: list[dict[str, str]], reason: str) -> str:
    """The libraries of `rows` with their `reason`, or ``none``."""
    return "; ".join(f"{row['display']} ({row[reason]})" for row in rows if reason in row) or "none"


def version_read(found: dict[str, str]) -> str:
    """A library's version as library_versions.py read it, or why it could not."""
    return found.get("version") or f"unreadable ({found.get('error')})"


def elf_machine(path: Path) -> bytes:
    """The e_machine bytes of an ELF file's header."""
    with open(path, "rb") as f:
        return f.read(20)[18:20]


def perf_unusable(tmp: Path) -> str | None:
    """Why perf cannot profile this interpreter here, or None."""
    if sys.version_info < (3, 12):
        return "python -X perf came with 3.12"
    if shutil.which("perf") is None:
        return "perf is not installed (scripts/bootstrap installs linux-perf)"
    if elf_machine(Path(sys.executable).resolve()) != elf_machine(Path("/bin/sh").resolve()):
        return "the interpreter runs under the emulator here: perf would profile qemu, not it"
    probe = subprocess.run(
        ["perf", "record", "-q", "-o", str(tmp / "perf-probe.data"), "true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        paranoid = Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()
        said = (probe.stderr.strip().splitlines() or ["no output"])[0]
        return f"the kernel does not let this user profile (kernel.perf_event_paranoid={paranoid}): {said}"
    return None


@check
def perf_shows_python_frames(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    """With python -X perf, perf's call graphs name Python functions: py::foo called by py::bar called by py::baz.
    perf walks the frame pointers of the interpreter's C frames to reach them (the default levers keep them)."""
    reason = perf_unusable(tmp)
    if reason:
        raise CheckSkipped(reason)
    data = tmp / f"perf-{root.parent.name}.data"
    record = ["perf", "record", "-q", "-F", "999", "-g", "-o", str(data), str(python_of(root)), "-X", "perf"]
    recorded = subprocess.run([*record, child("perf_workload")], capture_output=True, text=True, timeout=600)
    if recorded.returncode != 0:
        raise CheckFailed(f"perf record: exit {recorded.returncode}: {recorded.stderr.strip()[-1000:]}")
    shown = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, text=True, timeout=600)
    stacks = shown.stdout.split("\n\n")
    chained = [s for s in stacks if re.search(r"py::foo:.*\n(.*\n)*.*py::bar:.*\n(.*\n)*.*py::baz:", s)]
    if not chained:
        found = sorted(set(re.findall(r"py::\w+", shown.stdout)))[:10]
        raise CheckFailed(
            f"no sample shows py::foo <- py::bar <- py::baz in {len(stacks)} stacks (Python frames: {found})"
        )
    return f"{len(chained)} of {len(stacks)} samples show py::foo called by py::bar called by py::baz"


@check
def pinned_library_versions(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    """Every library whose module reports its version (its catalogue row's runtime_version) is the pinned one;
    the others are listed with why they are not checked."""
    readable = [row for row in args.libraries if "module" in row]
    if not readable:
        raise CheckFailed(f"no library version to check in --libraries: {args.libraries}")
    asked = {row["library"]: {"module": row["module"], "expression": row["expression"]} for row in readable}
    found = json.loads(run(root, "library_versions", argv=[json.dumps(asked)]))
    wrong = [
        f"{row['display']} {version_read(found[row['library']])}, pinned {row['version']}"
        for row in readable
        if found[row["library"]] != {"version": row["version"]}
    ]
    if wrong:
        raise CheckFailed(f"not the pinned version: {'; '.join(wrong)}")
    checked = ", ".join(f"{row['display']} {row['version']}" for row in readable)
    unreadable, not_built = listed(args.libraries, "unreadable"), listed(args.libraries, "not_built")
    return f"pinned versions: {checked}; not checkable: {unreadable}; not built by this minor: {not_built}"


@check
def one_openssl_copy(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    return run(root, "openssl_built_in")


@check
def relocatable_prefix(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    out = run(root, "install_paths")
    prefix, stdlib, executable = out.splitlines()
    real = str(root.resolve())
    assert prefix == real, (prefix, real)
    assert stdlib.startswith(real + "/lib/python"), stdlib
    assert executable.startswith(real + "/bin/"), executable
    return f"prefix follows the install: {prefix}"


@check
def prefix_found_without_argv0(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    """Started under a name neither argv[0] nor PATH resolves, from an unrelated directory (as a program that execs
    it with its own argv[0] does), the interpreter still finds its install: getpath takes the running file
    (/proc/self/exe) instead of falling back to the configured prefix (CPython's test_executable_without_cwd)."""
    name = "no-such-python"
    base = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run(
        [name, child("install_paths")],
        executable=str(python_of(root)),
        cwd=tmp,
        env=base,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 or "Could not find platform" in result.stderr:
        raise CheckFailed(f"exit {result.returncode}: {(result.stderr or result.stdout).strip()[-1000:]}")
    prefix, stdlib, _ = result.stdout.splitlines()
    real = str(root.resolve())
    assert prefix == real and stdlib.startswith(real + "/lib/python"), (prefix, stdlib, real)
    return f"argv[0] {name!r} from {tmp}: prefix {prefix}"


@check
def sysconfig_follows_the_install(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    """What extensions built later read from sysconfig names this install's directories (moved or not) and, on
    Linux, the host's compiler (cc, c++) rather than the build's clang."""
    return run(root, "sysconfig_paths")


@check
def scripts_run_from_anywhere(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    for script in sorted((root / "bin").iterdir()):
        if script.is_file() and not script.is_symlink() and script.read_bytes()[:2] == b"#!":
            first = script.read_bytes().split(b"\n", 1)[0]
            if b"/install" in first or b"/build" in first:
                raise CheckFailed(f"{script.name} has a build path in its shebang: {first!r}")
    pip = subprocess.run([str(root / "bin" / "pip3"), "--version"], capture_output=True, text=True)
    if pip.returncode != 0 or str(root.resolve()) not in pip.stdout:
        raise CheckFailed(f"bin/pip3 --version failed: {pip.stderr or pip.stdout}")
    return pip.stdout.strip()


def make_wheel(directory: Path) -> Path:
    """A minimal pure-Python wheel, made here so pip installs it offline."""
    wheel = directory / "hermetic_probe-1.0-py3-none-any.whl"
    files = {
        "hermetic_probe.py": "ANSWER = 42\n",
        "hermetic_probe-1.0.dist-info/METADATA": ("Metadata-Version: 2.1\nName: hermetic-probe\nVersion: 1.0\n"),
        "hermetic_probe-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "hermetic_probe-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr("hermetic_probe-1.0.dist-info/RECORD", record)
    return wheel


@check
def venv_and_offline_wheel_install(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    venv = tmp / f"venv-{root.parent.name}"
    subprocess.run([str(python_of(root)), "-m", "venv", str(venv)], check=True, capture_output=True)
    wheel = make_wheel(tmp)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp), "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if install.returncode != 0:
        raise CheckFailed(f"pip install failed: {install.stderr[-1500:]}")
    out = subprocess.run(
        [str(venv / "bin" / "python"), child("venv_probe")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    answer, base = out.split()
    assert answer == "42" and base == str(root.resolve()), out
    return f"venv ok, wheel installed offline ({out})"


def certificate(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path]:
    """An ECDSA P-256 / SHA-256 certificate for localhost (acceptable to the FIPS provider)."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    if not cert.exists():
        subprocess.run(
            [
                args.openssl_cli,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-sha256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            env={"PATH": "/usr/bin:/bin", "OPENSSL_CONF": "/dev/null"},
        )
    return cert, key


@check
def tls_handshake(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    cert, key = certificate(args, tmp)
    return run(root, "tls_echo", argv=[str(cert), str(key)])


# ------------------------------------------------------------------------------------------------ FIPS

# This Python's FIPS switches (patches/cpython/*/..-openssl-fips-switch.patch).
FIPS_ENV_VAR = "PYSTANDALONE_FIPS"
FIPS_XOPTION = "pystandalone_fips"
FIPS_MARKER = Path("share") / "ssl" / "fips-mode"
KERNEL_FIPS_FLAG = "/proc/sys/crypto/fips_enabled"
FIPS_REQUEST_ERROR = "ImportError: FIPS mode was requested ("

# Checks older providers enforce without a switch. The 3.0 and 3.1 FIPS providers always apply SP 800-132's
# PBKDF2 lower bounds (providers/implementations/kdfs/pbkdf2.c: lower_bound_checks starts at
# ossl_kdf_pbkdf2_default_checks, 1 in the FIPS module); 3.4 turned that into the pbkdf2-lower-bound-check switch.
# Every other switch of fipsmodule.cnf (hmac-key-check, tls1-prf-ems-check, ...) is a check those providers lack.
BUILT_IN_CHECKS = frozenset({"pbkdf2-lower-bound-check"})
# The names of fipsmodule.cnf's policy switches, as a skip-list rule cites them.
CHECK_NAME = re.compile(r"\b[a-z0-9]+(?:-[a-z0-9]+)*-(?:check|disabled)\b")


def module_config(root: Path) -> dict[str, str]:
    """The [fips_sect] of the shipped fipsmodule.cnf (the one the provider's own install_fips wrote)."""
    return module_section(root / "share" / "ssl" / "fipsmodule.cnf")


def module_section(path: Path) -> dict[str, str]:
    """The [fips_sect] of the OpenSSL configuration file `path`."""
    section: dict[str, str] = {}
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif "=" in line and current == "fips_sect":
            key, _, value = line.partition("=")
            section[key.strip()] = value.strip()
    return section


def provider_enforces(module_cnf: dict[str, str], check: str) -> bool:
    """Whether the shipped provider enforces the policy check `check`: its fipsmodule.cnf turns the switch on,
    or the provider predates the switch (no such key) and has the check built in (BUILT_IN_CHECKS)."""
    if check in module_cnf:
        return module_cnf[check] == "1"
    return check in BUILT_IN_CHECKS


def applicable_skips(skips: dict[str, str], module_cnf: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The skip-list entries that apply to the shipped provider, and those that do not: an entry whose rule
    cites policy switches applies when the provider enforces at least one of them; any other entry always."""
    applies: dict[str, str] = {}
    lifted: dict[str, str] = {}
    for test_id, rule in skips.items():
        checks = CHECK_NAME.findall(rule)
        if not checks or any(provider_enforces(module_cnf, check) for check in checks):
            applies[test_id] = rule
        else:
            lifted[test_id] = rule
    return applies, lifted


def providers_listed(text: str) -> dict[str, dict[str, str]]:
    """``openssl list -providers`` output: provider -> its name, version and status."""
    providers: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if indent == 2 and line.strip():
            current = providers.setdefault(line.strip(), {})
        elif indent >= 4 and current is not None and ":" in line:
            key, _, value = line.strip().partition(":")
            current[key.strip()] = value.strip()
    return providers


@check
def shipped_fips_provider_is_the_requested_one(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    # The OpenSSL command line of the libcrypto Python links loads the shipped module with the shipped
    # configuration: the provider that answers must be the version this build was asked to ship.
    ssl_dir = root / "share" / "ssl"
    env = {
        "PATH": "/usr/bin:/bin",
        "OPENSSL_CONF": str(ssl_dir / "openssl-fips.cnf"),
        "OPENSSL_MODULES": str(ssl_dir / "ossl-modules"),
    }
    result = subprocess.run(
        [args.openssl_cli, "list", "-providers"], env=env, capture_output=True, text=True, timeout=120
    )
    fips = providers_listed(result.stdout).get("fips", {})
    if result.returncode != 0 or fips.get("version") != args.fips_provider or fips.get("status") != "active":
        raise CheckFailed(f"expected the FIPS provider {args.fips_provider}, active: {result.stdout or result.stderr}")
    module_cnf = module_config(root)
    switches = sorted(key for key, value in module_cnf.items() if CHECK_NAME.fullmatch(key) and value == "1")
    loaded = Path(run(root, "mapped_fips_module", env=SWITCH_ENV))
    shipped = ssl_dir / "ossl-modules" / "fips.so"
    if not loaded.is_file() or not loaded.samefile(shipped):
        raise CheckFailed(f"in FIPS mode this Python mapped {loaded}, not the shipped {shipped}")
    libcrypto = pinned_version(args, "openssl")
    return (
        f"{fips['name']} {fips['version']} is active under libcrypto {libcrypto}; this Python in FIPS mode "
        f"mapped {loaded.relative_to(root)}; policy switches on: {len(switches)}"
    )


def fips_env(root: Path) -> dict[str, str]:
    """The environment that turns FIPS mode on through OpenSSL's own variable (every OpenSSL user sees it)."""
    return {"OPENSSL_CONF": str(root / "share" / "ssl" / "openssl-fips.cnf")}


SWITCH_ENV = {FIPS_ENV_VAR: "1"}


@check
def fips_mode(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    out = run(root, "fips_mode_hashes", env=fips_env(root))
    cert, key = certificate(args, tmp)
    tls = run(root, "tls_echo", argv=[str(cert), str(key)], env=fips_env(root))
    return f"{out}; TLS in FIPS mode: {tls}"


@check
def fips_provider_serves_sha256(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    # With default_properties fips=yes only a provider whose algorithms carry fips=yes can serve
    # SHA-256: the FIPS provider. Without a usable fips.so, the same request must fail.
    broken = tmp / f"broken-{root.parent.name}"
    shutil.copytree(root, broken, symlinks=True)
    module = broken / "share" / "ssl" / "ossl-modules" / "fips.so"
    data = bytearray(module.read_bytes())
    data[len(data) // 2] ^= 0x01
    module.write_bytes(bytes(data))
    try:
        run(broken, "digest", argv=["sha256", "x"], env=fips_env(broken))
    except CheckFailed as e:
        return f"a modified fips.so stops FIPS mode: {str(e).splitlines()[-1][:120]}"
    finally:
        shutil.rmtree(broken)
    raise CheckFailed("FIPS mode still served SHA-256 with a modified fips.so")


def other_openssl_users(args: argparse.Namespace, env: dict[str, str], tmp: Path) -> list[str]:
    """Run the other OpenSSL users of this environment (the OpenSSL command line given as --openssl-cli,
    and the host's openssl and python3 when present) with `env`; return one failure line per user whose
    MD5 is refused (MD5 working means that user is not in FIPS mode)."""
    data = tmp / "md5-input"
    data.write_bytes(b"abc")
    full_env = {"PATH": "/usr/bin:/bin", **env}
    users = [[args.openssl_cli, "dgst", "-md5", str(data)]]
    if Path("/usr/bin/openssl").exists():
        users.append(["/usr/bin/openssl", "dgst", "-md5", str(data)])
    if Path("/usr/bin/python3").exists():
        users.append(["/usr/bin/python3", child("digest"), "md5", "abc"])
    failures = []
    for argv in users:
        result = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=120)
        if result.returncode != 0 or "900150983cd24fb0d6963f7d28e17f72" not in result.stdout:
            failures.append(f"{argv[0]}: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    return failures


@check
def fips_switches_are_scoped_to_this_python(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    # OPENSSL_CONF turns FIPS on for every OpenSSL user of the environment: the OpenSSL command line
    # refuses MD5 under it. That shows the check below can see a leak.
    leaked = other_openssl_users(args, fips_env(root), tmp)
    if not any(line.startswith(args.openssl_cli) for line in leaked):
        raise CheckFailed(f"{args.openssl_cli} is not in FIPS mode under OPENSSL_CONF, so a leak would go unseen")
    marker = root / FIPS_MARKER
    switches: list[tuple[str, list[str], dict[str, str]]] = [
        (FIPS_ENV_VAR, [], SWITCH_ENV),
        ("-X", ["-X", FIPS_XOPTION], {}),
        ("marker", [], {}),
    ]
    seen = []
    for name, python_args, env in switches:
        if name == "marker":
            marker.write_text("")
        try:
            out = run(root, "fips_switch", env=env, python_args=python_args)
        finally:
            marker.unlink(missing_ok=True)
        request, child = (part.strip() for part in out.split("|"))
        expected = {FIPS_ENV_VAR: f"{FIPS_ENV_VAR}=1", "-X": f"-X {FIPS_XOPTION}", "marker": str(marker)}[name]
        if expected not in request or not child.startswith("1 "):
            raise CheckFailed(f"{name}: requested by {request!r}; child process: {child!r}")
        leaks = other_openssl_users(args, env, tmp)
        if leaks:
            raise CheckFailed(f"{name} turned FIPS mode on for other OpenSSL users too: {leaks}")
        seen.append(name)
    off = run(root, "fips_state", argv=["mode", "request"])
    if off != "0 None":
        raise CheckFailed(f"without a switch: {off}")
    return f"{', '.join(seen)} each turn FIPS mode on for this Python only (and its children); off without"


# What a program of a FIPS-mode request must fail on (crypto_imports.py's uses).
FAILING_IMPORTS = {"hashlib": "hashlib", "ssl": "ssl", "hmac": "hmac", "_md5 for security": "_md5"}


def assert_fails_closed(root: Path, env: dict[str, str], python_args: list[str], cause: str) -> str:
    """Every FAILING_IMPORTS line must fail with one ImportError line naming the request and `cause`."""
    last = ""
    for what, use in FAILING_IMPORTS.items():
        result = run_unchecked(root, "crypto_imports", env=env, argv=[use], python_args=python_args)
        lines = result.stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        if result.returncode == 0 or not last.startswith(FIPS_REQUEST_ERROR) or cause not in last:
            raise CheckFailed(f"{what} did not fail closed ({cause!r} expected): exit {result.returncode}, {last!r}")
        if sum(FIPS_REQUEST_ERROR.split(":")[1].strip() in line for line in lines) != 1:
            raise CheckFailed(f"{what}: the FIPS error is not one line: {lines}")
    return last


@check
def fips_request_fails_closed(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    broken = tmp / f"fails-closed-{root.parent.name}"
    shutil.copytree(root, broken, symlinks=True)
    ssl_dir = broken / "share" / "ssl"
    module = ssl_dir / "ossl-modules" / "fips.so"
    pristine = module.read_bytes()
    try:
        tampered = bytearray(pristine)
        tampered[len(tampered) // 2] ^= 0x01
        module.write_bytes(bytes(tampered))
        line = assert_fails_closed(broken, SWITCH_ENV, [], "module integrity failure")
        assert_fails_closed(broken, {}, ["-X", FIPS_XOPTION], "module integrity failure")
        (broken / FIPS_MARKER).write_text("")
        assert_fails_closed(broken, {}, [], "module integrity failure")
        (broken / FIPS_MARKER).unlink()
        module.unlink()
        assert_fails_closed(broken, SWITCH_ENV, [], "fips.so")
        module.write_bytes(pristine)
        (ssl_dir / "openssl-fips.cnf").rename(ssl_dir / "renamed.cnf")
        assert_fails_closed(broken, SWITCH_ENV, [], "the configuration file is missing")
        # Not requested: the same damaged install still runs, outside FIPS mode.
        run(broken, "crypto_imports", argv=["hashlib", "ssl", "md5"])
    finally:
        shutil.rmtree(broken)
    return f"tampered, missing module and missing config each refuse hashlib, ssl, hmac, _md5: {line[:160]}"


# ---------------------------------------------------------------- the Security Policy's step: fipsinstall

# The step shipped in the standard library (site_scons/pydist/shipped/pystandalone_fips.py), where it writes, and
# what FIPS mode then uses (patches/cpython/*/*-openssl-fips-switch.patch).
FIPSINSTALL_STEP = "pystandalone_fips"
INSTALLED_CONFIG = Path("share") / "ssl" / "fipsinstall" / "fipsmodule.cnf"
INSTALLED_DIR_VAR = "PYSTANDALONE_FIPSINSTALL_DIR"
VALIDATED_ENV = {FIPS_ENV_VAR: "validated"}
# Keys of a module section that record its installation rather than a policy switch.
RECORD_KEYS = frozenset({"activate", "install-version", "module-mac", "install-mac", "install-status"})


def step_command(root: Path, *args: str) -> list[str]:
    """``python -I -m pystandalone_fips ARGS`` of the distribution at `root`."""
    return [str(python_of(root)), "-I", "-m", FIPSINSTALL_STEP, *args]


def run_command(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(argv, env={**base, **(env or {})}, capture_output=True, text=True, timeout=600)


def step_succeeded(result: subprocess.CompletedProcess[str], what: str) -> str:
    """The one line a successful step printed."""
    lines = result.stdout.splitlines()
    if result.returncode != 0 or len(lines) != 1 or result.stderr:
        raise CheckFailed(f"{what}: exit {result.returncode}, {(result.stderr or result.stdout).strip()[-600:]}")
    return lines[0]


def step_refused(result: subprocess.CompletedProcess[str], what: str, cause: str) -> str:
    """The one line a refusing step printed: exit 1, on stderr, naming `cause`, no traceback."""
    lines = result.stderr.splitlines()
    if result.returncode != 1 or len(lines) != 1 or result.stdout or cause not in lines[0]:
        raise CheckFailed(f"{what} was not refused in one line naming {cause!r}: exit {result.returncode}, {lines}")
    return lines[0]


def installed_matches_shipped(root: Path, args: argparse.Namespace, installed: Path) -> str:
    """The section fipsinstall wrote keeps every policy switch of the build's, and records the self-tests at
    install time exactly for a FIPS 140-2 provider (3.0.x); returns what it records."""
    written, shipped = module_section(installed), module_config(root)
    weaker = sorted(k for k, v in shipped.items() if k not in RECORD_KEYS and written.get(k) != v)
    if weaker or written.get("module-mac") is None:
        raise CheckFailed(f"{installed}: switches unlike the build's {weaker}, or no module-mac: {written}")
    fips_140_2 = args.fips_provider.startswith("3.0.")
    if ("install-status" in written) != fips_140_2:
        raise CheckFailed(f"provider {args.fips_provider}: install-status {'missing' if fips_140_2 else 'written'}")
    return "module-mac and install-status" if fips_140_2 else "module-mac, no install-status"


def validated_switches_refuse_without_fipsinstall(root: Path) -> None:
    """Each switch asking for the validated setup refuses FIPS mode before fipsinstall ran."""
    missing = f"activated with {root / INSTALLED_CONFIG}: the configuration file is missing: the validated setup"
    assert_fails_closed(root, VALIDATED_ENV, [], missing)
    assert_fails_closed(root, {}, ["-X", f"{FIPS_XOPTION}=validated"], missing)
    (root / FIPS_MARKER).write_text("validated\n")
    try:
        marker = f"marker file {root / FIPS_MARKER} (validated)) but the OpenSSL FIPS provider could not be "
        assert_fails_closed(root, {}, [], marker + missing)
    finally:
        (root / FIPS_MARKER).unlink()


def validated_request_passes_on_to_children(root: Path) -> None:
    out = run(root, "validated_request", python_args=["-X", f"{FIPS_XOPTION}=validated"])
    if out != f"-X {FIPS_XOPTION}=validated | validated | {root / INSTALLED_CONFIG}":
        raise CheckFailed(f"-X {FIPS_XOPTION}=validated: {out!r}")


@check
def fipsinstall_step_is_what_fips_mode_uses(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    site = tmp / f"fipsinstall-{root.parent.name}"
    shutil.copytree(root, site, symlinks=True)
    installed = site / INSTALLED_CONFIG
    try:
        validated_switches_refuse_without_fipsinstall(site)
        # The step runs where the validated setup is already asked for: it imports neither hashlib nor ssl.
        (site / FIPS_MARKER).write_text("validated\n")
        line = step_succeeded(run_command(step_command(site, "install")), "pystandalone_fips install")
        (site / FIPS_MARKER).unlink()
        if not line.startswith(f"wrote {installed}: openssl fipsinstall ran the self-tests of OpenSSL FIPS Provider"):
            raise CheckFailed(f"pystandalone_fips install said: {line}")
        records = installed_matches_shipped(site, args, installed)
        for env in (VALIDATED_ENV, SWITCH_ENV):
            used = run(site, "fips_config", env=env)
            if used != str(installed):
                raise CheckFailed(f"{env}: FIPS mode was activated with {used}, not {installed}")
        validated_request_passes_on_to_children(site)
        run(site, "fips_mode_hashes", env=VALIDATED_ENV)
        cert, key = certificate(args, tmp)
        tls = run(site, "tls_echo", argv=[str(cert), str(key)], env=VALIDATED_ENV)
        verified = step_succeeded(run_command(step_command(site, "verify")), "pystandalone_fips verify")
        if not verified.startswith(f"ok: {installed} matches "):
            raise CheckFailed(f"pystandalone_fips verify said: {verified}")
        # The installed file is what the module checks: a wrong module-mac there stops FIPS mode, while the
        # build's own section (still shipped) would have loaded.
        good = installed.read_text()
        installed.write_text(re.sub(r"(?m)^module-mac = \S+$", "module-mac = 00:11:22", good))
        assert_fails_closed(site, SWITCH_ENV, [], f"with {installed}: the provider is not active")
    finally:
        shutil.rmtree(site)
    provider = re.search(r"self-tests of (.+?) \(", line)
    return (
        f"install: {provider.group(1) if provider else '?'} self-tested, {INSTALLED_CONFIG} records {records}; "
        f"PYSTANDALONE_FIPS=1 and =validated use it (MD5 refused, TLS {tls}); verify ok; a wrong module-mac there "
        "is refused"
    )


def another_module(args: argparse.Namespace, shipped: Path, tmp: Path) -> tuple[bytes, str]:
    """Another copy of a FIPS provider module, loadable but not the shipped one: OpenSSL's own (beside
    --openssl-cli) when it is another build, as with fips_provider=, else the shipped module with a byte appended
    (past its last section: the loader never reads it, the MAC does)."""
    deps_module = Path(args.openssl_cli).parent.parent / "lib" / "ossl-modules" / "fips.so"
    if deps_module.is_file() and deps_module.read_bytes() != shipped.read_bytes():
        return deps_module.read_bytes(), f"OpenSSL {pinned_version(args, 'openssl')}'s own provider"
    return shipped.read_bytes() + b"\0", "the shipped module with a byte appended"


def give_the_build_configuration_to(site: Path, args: argparse.Namespace, tmp: Path) -> None:
    """Rewrite the install's build-time module section for the module now in it (as a build of that module would
    ship it), with OpenSSL's fipsinstall, in share/ssl/fipsmodule.cnf and share/ssl/openssl-fips.cnf."""
    ssl_dir = site / "share" / "ssl"
    section = tmp / f"another-section-{site.name}.cnf"
    subprocess.run(
        [args.openssl_cli, "fipsinstall", "-module", str(ssl_dir / "ossl-modules" / "fips.so"), "-out", str(section)],
        env={"PATH": "/usr/bin:/bin", "OPENSSL_CONF": "/dev/null"},
        check=True,
        capture_output=True,
        timeout=600,
    )
    (ssl_dir / "fipsmodule.cnf").write_text(section.read_text())
    shipped = (ssl_dir / "openssl-fips.cnf").read_text()
    activation = shipped[: shipped.index("\n[fips_sect]\n") + 1]
    (ssl_dir / "openssl-fips.cnf").write_text(activation + section.read_text())


@check
def fipsinstall_refuses_a_replaced_module(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    site = tmp / f"replaced-{root.parent.name}"
    shutil.copytree(root, site, symlinks=True)
    module = site / "share" / "ssl" / "ossl-modules" / "fips.so"
    installed = site / INSTALLED_CONFIG
    try:
        step_succeeded(run_command(step_command(site, "install")), "pystandalone_fips install")
        other, what = another_module(args, module, tmp)
        module.write_bytes(other)
        give_the_build_configuration_to(site, args, tmp)
        # Before fipsinstall (no installed file), the build's configuration takes any module it is given.
        aside = tmp / f"aside-{root.parent.name}.cnf"
        installed.rename(aside)
        before = run(site, "fips_config", env=SWITCH_ENV)
        if before != str(site / "share" / "ssl" / "openssl-fips.cnf"):
            raise CheckFailed(f"{what}: without the installed file FIPS mode used {before}")
        aside.rename(installed)
        # After it, the file fipsinstall wrote on this machine names the module it installed.
        line = assert_fails_closed(site, VALIDATED_ENV, [], f"{installed}: the provider is not active: its self-test")
        assert_fails_closed(site, SWITCH_ENV, [], "module integrity failure")
        verify = step_refused(run_command(step_command(site, "verify")), "verify", "Module integrity mismatch")
    finally:
        shutil.rmtree(site)
    failed = line[line.index("its self-test") :][:60] if "its self-test" in line else line[-60:]
    return (
        f"{what} in place of the module: loaded with a build-time configuration for it; after fipsinstall refused "
        f"({failed}...), verify: {verify[verify.index('(') :][:40]}"
    )


def read_only(root: Path, argv: list[str]) -> list[str]:
    """`argv` in new user and mount namespaces where `root` is a read-only bind mount of itself (root, which may
    write to any file whatever its mode, cannot write to a read-only file system)."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", str(root), *argv]


@check
def fipsinstall_on_a_read_only_install(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    site = tmp / f"read-only-{root.parent.name}"
    shutil.copytree(root, site, symlinks=True)
    target = tmp / f"fipsinstall-dir-{root.parent.name}"
    try:
        refused = step_refused(
            run_command(read_only(site, step_command(site, "install"))), "install", "the install is read-only"
        )
        if f"--dir DIR` with a writable DIR on this machine, and set {INSTALLED_DIR_VAR}=DIR" not in refused:
            raise CheckFailed(f"the refusal does not say what to do: {refused}")
        if (site / INSTALLED_CONFIG).exists():
            raise CheckFailed("a read-only install was written to")
        step_succeeded(run_command(read_only(site, step_command(site, "install", "--dir", str(target)))), "--dir")
        env = {**VALIDATED_ENV, INSTALLED_DIR_VAR: str(target)}
        used = run_command(read_only(site, [str(python_of(site)), child("fips_config")]), env=env)
        if used.returncode != 0 or used.stdout.strip() != str(target / "fipsmodule.cnf"):
            raise CheckFailed(f"{INSTALLED_DIR_VAR}={target}: {(used.stderr or used.stdout).strip()[-400:]}")
    finally:
        shutil.rmtree(site)
        shutil.rmtree(target, ignore_errors=True)
    return f"without --dir: {refused.split(': error: ', 1)[1][:90]}...; with --dir and {INSTALLED_DIR_VAR}: used"


def kernel_flag_command(flag: str, argv: list[str]) -> list[str]:
    """`argv` run in new user and mount namespaces where /proc/sys/crypto/fips_enabled reads `flag`,
    whatever the host's kernel says (a tmpfs over the flag's directory, or over /proc/sys when the
    kernel has no FIPS support and so no such directory)."""
    script = (
        "set -e\n"
        "if [ -d /proc/sys/crypto ]; then dir=/proc/sys/crypto; else dir=/proc/sys; fi\n"
        'mount -t tmpfs -o size=64k fips-flag "$dir"\n'
        "mkdir -p /proc/sys/crypto\n"
        f'printf "%s\\n" "$FIPS_FLAG" > {KERNEL_FIPS_FLAG}\n'
        'exec "$@"\n'
    )
    namespaces = ["unshare", "--user", "--map-root-user", "--mount"]
    return [*namespaces, "env", f"FIPS_FLAG={flag}", "sh", "-c", script, "sh", *argv]


@check
def kernel_fips_flag_requests_fips_mode(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    answers = {}
    for flag in ("1", "0"):
        result = subprocess.run(
            kernel_flag_command(flag, [str(python_of(root)), child("fips_state"), "mode", "request"]),
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise CheckFailed(f"with the kernel flag at {flag}: {result.stderr.strip()[-600:]}")
        answers[flag] = result.stdout.strip()
    if answers["1"] != f"1 {KERNEL_FIPS_FLAG} = 1" or answers["0"] != "0 None":
        raise CheckFailed(f"kernel flag 1 -> {answers['1']!r}, 0 -> {answers['0']!r}")
    broken = tmp / f"kernel-{root.parent.name}"
    shutil.copytree(root, broken, symlinks=True)
    try:
        (broken / "share" / "ssl" / "ossl-modules" / "fips.so").unlink()
        result = subprocess.run(
            kernel_flag_command("1", [str(python_of(broken)), child("crypto_imports"), "hashlib"]),
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(broken)
    last = result.stderr.strip().splitlines()[-1:] or [""]
    if result.returncode == 0 or not last[0].startswith(FIPS_REQUEST_ERROR + KERNEL_FIPS_FLAG):
        raise CheckFailed(f"a FIPS kernel without a usable module did not fail closed: {last}")
    return f"kernel flag 1: {answers['1']}; 0: {answers['0']}; without fips.so: refused"


# The PBKDF2 cases below one lower bound each (pbkdf2_hmac.py's WEAK_PBKDF2).
WEAK_PBKDF2 = ("pbkdf2_short_salt", "pbkdf2_few_iterations", "pbkdf2_short_key")


def pbkdf2_hmac_results(root: Path, env: dict[str, str], mode: str) -> dict[str, Any]:
    return json.loads(run(root, "pbkdf2_hmac", env=env, argv=[mode]))


@check
def pbkdf2_and_hmac_use_the_provider(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    off = pbkdf2_hmac_results(root, {}, "reference")
    on = pbkdf2_hmac_results(root, SWITCH_ENV, "fips")
    ref = off["reference"]
    expected_off = {
        **{name: ref[name] for name in WEAK_PBKDF2},
        "pbkdf2_good": ref["pbkdf2_good"],
        "hmac_new_weak": ref["hmac_weak"],
        "hmac_digest_weak": ref["hmac_weak"],
        "hmac_callable_digestmod": ref["hmac_good_msg"],
    }
    for name, value in expected_off.items():
        if off[name] != value:
            raise CheckFailed(f"outside FIPS mode {name} = {off[name]!r}, expected {value!r}")
    # What the provider refuses follows its checks; HMAC over a digest that is not OpenSSL's is refused by
    # this Python itself, whatever the provider.
    module_cnf = module_config(root)
    pbkdf2_bounds = provider_enforces(module_cnf, "pbkdf2-lower-bound-check")
    hmac_key_bound = provider_enforces(module_cnf, "hmac-key-check")
    refused = {
        **dict.fromkeys(WEAK_PBKDF2, pbkdf2_bounds),
        "hmac_new_weak": hmac_key_bound,
        "hmac_digest_weak": hmac_key_bound,
        "hmac_callable_digestmod": True,
    }
    for name, must_refuse in refused.items():
        if must_refuse and not on[name].startswith("refused: "):
            raise CheckFailed(f"in FIPS mode {name} was not refused: {on[name]}")
        if not must_refuse and on[name] != expected_off[name]:
            raise CheckFailed(f"in FIPS mode {name} = {on[name]!r}; this provider has no such check: {off[name]!r}")
    if on["pbkdf2_good"] != ref["pbkdf2_good"]:
        raise CheckFailed(f"in FIPS mode a conforming PBKDF2 gave {on['pbkdf2_good']!r}")
    object_expected = ["hmac-sha256", 32, 64, ref["hmac_good"], ref["hmac_copy"], "_hashlib"]
    for mode, results in (("outside", off), ("in", on)):
        if results["hmac_object"] != object_expected:
            raise CheckFailed(f"hmac object {mode} FIPS mode: {results['hmac_object']} != {object_expected}")
    pbkdf2 = (
        "PBKDF2 with a short salt, few iterations or a short key refused "
        f"({'; '.join(on[name][9:60] for name in WEAK_PBKDF2)})"
        if pbkdf2_bounds
        else "no PBKDF2 bounds"
    )
    hmac = (
        f"40-bit HMAC keys refused ({on['hmac_new_weak'][9:60]})"
        if hmac_key_bound
        else "40-bit HMAC keys accepted: the provider has no hmac-key-check, same bytes as RFC 2104"
    )
    return f"in FIPS mode: {pbkdf2}; {hmac}; outside it the same bytes as RFC 2104/8018"


@check
def builtin_hashes_refuse_security_use_in_fips_mode(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    on = run(root, "builtin_hashes", env=SWITCH_ENV, argv=["fips"])
    off = run(root, "builtin_hashes", argv=["off"])
    return f"FIPS mode: {on}; outside: {off}"


@check
def fips_base_configuration_keeps_non_security_hashes(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    # The other common FIPS configuration loads only the fips and base providers, so non-approved
    # algorithms are never in OpenSSL and hashlib.new(..., usedforsecurity=False) needs the builtins.
    shipped = (root / "share" / "ssl" / "openssl-fips.cnf").read_text()
    if "default = default_sect\n" not in shipped:
        raise CheckFailed("the shipped configuration no longer activates the default provider as expected")
    config = tmp / f"fips-base-{root.parent.name}.cnf"
    config.write_text(shipped.replace("default = default_sect\n", ""))
    return run(root, "fips_base_hashes", env={"OPENSSL_CONF": str(config)})


# ------------------------------------------------------------------------------- CPython's own suites

# CPython's tests of what FIPS mode changes; they run outside FIPS mode as upstream ships them, and in
# FIPS mode minus a reviewed skip list that names the FIPS rule behind each skipped test.
SUITES = ("test_hashlib", "test_hmac", "test_ssl")


def read_skip_list(path: Path) -> dict[str, str]:
    """The skip list: test id -> the FIPS rule that makes it fail. Lines are ``<test id>  # <rule>``;
    blank lines and lines starting with ``#`` are comments."""
    skips: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, rule = (part.strip() for part in line.partition("#"))
        if not rule or " " in test_id or not test_id.startswith("test."):
            raise CheckFailed(f"{path.name}:{number}: expected '<test id>  # <FIPS rule>', got {line!r}")
        if test_id in skips:
            raise CheckFailed(f"{path.name}:{number}: {test_id} is listed twice")
        skips[test_id] = rule
    return skips


def suite_outcomes(xml: Path) -> dict[str, str]:
    """test id -> 'passed', 'skipped', 'failed' or 'error', from regrtest's JUnit XML."""
    outcomes = {}
    for case in ElementTree.parse(xml).iter("testcase"):
        kinds = {child.tag for child in case}
        if "error" in kinds:
            outcomes[case.get("name", "?")] = "error"
        elif "failure" in kinds:
            outcomes[case.get("name", "?")] = "failed"
        elif "skipped" in kinds:
            outcomes[case.get("name", "?")] = "skipped"
        else:
            outcomes[case.get("name", "?")] = "passed"
    return outcomes


def run_suites(
    root: Path, args: argparse.Namespace, tmp: Path, label: str, env: dict[str, str], selection: list[str]
) -> tuple[int, dict[str, str], str]:
    """Run SUITES with regrtest (no resources enabled: no network) in the distribution at `root`, with
    CPython's test package from --cpython-tests; returns the exit code, the outcomes and the output's tail."""
    xml = tmp / f"suites-{label}.xml"
    result = subprocess.run(
        [str(python_of(root)), "-m", "test", "--junit-xml", str(xml), *selection, *SUITES],
        env={
            "PATH": "/usr/bin:/bin",
            "LC_ALL": "C.UTF-8",
            "HOME": str(tmp),
            "PYTHONPATH": str(args.cpython_tests),
            **env,
        },
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    outcomes = suite_outcomes(xml) if xml.exists() else {}
    tail = " | ".join(result.stdout.strip().splitlines()[-8:])
    return result.returncode, outcomes, tail


def broken_tests(outcomes: dict[str, str]) -> list[str]:
    return sorted(test for test, outcome in outcomes.items() if outcome in ("failed", "error"))


def judge_suite_run(
    label: str, code: int, outcomes: dict[str, str], tail: str, skips: dict[str, str]
) -> tuple[bool, str]:
    """Whether one run of the suites is as it must be, and its one-line account."""
    broken = broken_tests(outcomes)
    if label == "skip_list_fails_in_fips_mode":
        stale = sorted(set(skips) - set(broken))
        if stale:
            return False, f"{len(stale)} listed tests do not fail in FIPS mode (stale entries): {stale[:10]}"
        return True, f"all {len(skips)} listed tests fail in FIPS mode"
    passed = sum(outcome == "passed" for outcome in outcomes.values())
    skipped = sum(outcome == "skipped" for outcome in outcomes.values())
    if code != 0 or broken or not passed:
        return False, f"exit {code}, {len(broken)} failed: {broken[:10]}; {tail[-1500:]}"
    detail = f"{passed} passed, {skipped} skipped by upstream's own conditions"
    if label == "in_fips_mode":
        detail += f", {len(skips)} left out by the FIPS skip list ({rule_summary(skips)})"
    return True, detail


def cpython_suites(root: Path, args: argparse.Namespace, tmp: Path) -> list[dict[str, str]]:
    """Three runs: outside FIPS mode, in FIPS mode without the skipped tests, and the skipped tests alone
    in FIPS mode, each of which must fail (a listed test that passes is a stale entry). Entries whose rule is a
    check the shipped provider lacks are not skipped: those tests must pass in FIPS mode."""
    skips, lifted = applicable_skips(read_skip_list(args.fips_skips), module_config(root))
    pattern_file = tmp / "fips-skips.patterns"
    pattern_file.write_text("".join(f"{test}\n" for test in skips))
    runs = {
        "outside_fips_mode": ({}, []),
        "in_fips_mode": (SWITCH_ENV, ["--ignorefile", str(pattern_file)]),
    }
    if skips:  # an empty --matchfile would select every test
        runs["skip_list_fails_in_fips_mode"] = (SWITCH_ENV, ["--matchfile", str(pattern_file)])
    results = []
    for label, (env, selection) in runs.items():
        started = time.monotonic()
        code, outcomes, tail = run_suites(root, args, tmp, label, env, selection)
        ok, detail = judge_suite_run(label, code, outcomes, tail, skips)
        if label == "in_fips_mode" and lifted:
            ok, detail = judge_lifted(ok, detail, outcomes, lifted, args.fips_provider)
        status = "ok" if ok else "FAILED"
        print(f"[{status:6s}] suites: {label} ({time.monotonic() - started:.1f}s): {detail}", flush=True)
        results.append({"where": "unpacked", "check": f"cpython_suites_{label}", "status": status, "detail": detail})
    return results


def judge_lifted(
    ok: bool, detail: str, outcomes: dict[str, str], lifted: dict[str, str], provider: str
) -> tuple[bool, str]:
    """The verdict on the FIPS-mode run, given the skip-list entries that do not apply to the shipped provider
    (their rule is a check it lacks): each of those tests must have run and passed."""
    checks = sorted({check for rule in lifted.values() for check in CHECK_NAME.findall(rule)})
    not_passed = [(test, outcomes.get(test, "not run")) for test in sorted(lifted) if outcomes.get(test) != "passed"]
    if not_passed:
        lacking = f"listed for {', '.join(checks)}, which provider {provider} lacks, yet not passing"
        return False, f"{detail}; {lacking}: {not_passed[:10]}"
    return ok, f"{detail}; {len(lifted)} listed tests passed, the provider {provider} lacking {', '.join(checks)}"


def rule_summary(skips: dict[str, str]) -> str:
    """How many skipped tests each FIPS rule accounts for, most first."""
    counts: dict[str, int] = {}
    for rule in skips.values():
        counts[rule] = counts.get(rule, 0) + 1
    return "; ".join(f"{rule}: {n}" for rule, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def run_checks(root: Path, args: argparse.Namespace, tmp: Path, where: str) -> list[dict[str, str]]:
    results = []
    for fn in CHECKS:
        started = time.monotonic()
        try:
            detail = fn(root, args, tmp)
            status = "ok"
        except CheckSkipped as e:
            detail, status = f"skipped: {e}", "skipped"
        except (CheckFailed, AssertionError, subprocess.CalledProcessError) as e:
            detail, status = str(e) or repr(e), "FAILED"
        elapsed = time.monotonic() - started
        print(f"[{status:6s}] {where}: {fn.__name__} ({elapsed:.1f}s): {detail}", flush=True)
        results.append({"where": where, "check": fn.__name__, "status": status, "detail": detail})
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--libraries", type=json.loads, required=True, help="the libraries' facts, as JSON")
    parser.add_argument("--fips-provider", required=True, help="the version of the FIPS provider that ships")
    parser.add_argument("--openssl-cli", required=True)
    parser.add_argument("--cpython-tests", type=Path, required=True, help="holds CPython's test package")
    parser.add_argument("--fips-skips", type=Path, required=True, help="the reviewed FIPS skip list")
    parser.add_argument("--allocator", choices=ALLOCATOR_STATS, required=True, help="the expected default allocator")
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    # A fixed name (the sandbox's TMPDIR is fresh for every run): paths in the report must not differ between
    # two builds of the same inputs.
    tmp = Path(tempfile.gettempdir()) / "runtime-tests"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    results = run_checks(args.root, args, tmp, "unpacked")
    moved = tmp / "moved" / "elsewhere" / "python"
    shutil.copytree(args.root, moved, symlinks=True)
    results += run_checks(moved, args, tmp, "moved")
    results += cpython_suites(args.root, args, tmp)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(results, indent=2) + "\n")
    failed = [r for r in results if r["status"] == "FAILED"]
    skipped = [r for r in results if r["status"] == "skipped"]
    shown = f" ({len(skipped)} skipped: {'; '.join(sorted({r['detail'] for r in skipped}))})" if skipped else ""
    print(f"{len(results) - len(failed) - len(skipped)} of {len(results)} runtime checks passed{shown}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
