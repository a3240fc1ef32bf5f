"""Runtime tests of an unpacked distribution; run inside the sandbox with the distribution's own Python.

    python/bin/python3 -E -s runtime_tests.py PYTHON_DIR --openssl X.Y.Z --sqlite X.Y.Z \
        --openssl-cli PATH --report FILE

Every check runs in a child interpreter of the distribution under test, first where it was unpacked and
then after moving the whole tree elsewhere (relocation). A failing check fails the build. Standard
library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

CHECKS: list[Callable[[Path, argparse.Namespace, Path], str]] = []


def check(
    fn: Callable[[Path, argparse.Namespace, Path], str],
) -> Callable[[Path, argparse.Namespace, Path], str]:
    CHECKS.append(fn)
    return fn


class CheckFailed(Exception):
    pass


def python_of(root: Path) -> Path:
    return root / "bin" / "python3"


def run(root: Path, code: str, *, env: dict[str, str] | None = None, argv: list[str] | None = None) -> str:
    """Run `code` in a fresh interpreter of the distribution at `root`; return its stdout."""
    base = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run(
        [str(python_of(root)), "-c", textwrap.dedent(code), *(argv or [])],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise CheckFailed(f"exit {result.returncode}: {(result.stderr or result.stdout).strip()[-2000:]}")
    return result.stdout.strip()


@check
def imports_every_extension_module(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    return run(
        root,
        """
        import importlib, sys, sysconfig, pathlib
        names = set(sys.builtin_module_names)
        dynload = pathlib.Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        names |= {p.name[: -len(suffix)] for p in dynload.glob("*" + suffix)}
        failed = []
        for name in sorted(names):
            try:
                importlib.import_module(name)
            except Exception as e:
                failed.append(f"{name}: {e!r}")
        assert not failed, failed
        print(f"{len(names)} extension modules import")
        """,
    )


@check
def pinned_library_versions(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    return run(
        root,
        f"""
        import ssl, sqlite3
        assert ssl.OPENSSL_VERSION.startswith("OpenSSL {args.openssl} "), ssl.OPENSSL_VERSION
        assert sqlite3.sqlite_version == "{args.sqlite}", sqlite3.sqlite_version
        print(ssl.OPENSSL_VERSION, "/ SQLite", sqlite3.sqlite_version)
        """,
    )


@check
def one_openssl_copy(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    return run(
        root,
        """
        import sys
        builtin = set(sys.builtin_module_names)
        assert {"_ssl", "_hashlib"} <= builtin, "_ssl and _hashlib must both be built into libpython"
        print("_ssl and _hashlib are built in: one copy of OpenSSL")
        """,
    )


@check
def relocatable_prefix(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    out = run(
        root,
        """
        import sys, sysconfig
        print(sys.prefix); print(sysconfig.get_paths()["stdlib"]); print(sys.executable)
        """,
    )
    prefix, stdlib, executable = out.splitlines()
    real = str(root.resolve())
    assert prefix == real, (prefix, real)
    assert stdlib.startswith(real + "/lib/python"), stdlib
    assert executable.startswith(real + "/bin/"), executable
    return f"prefix follows the install: {prefix}"


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
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sys, hermetic_probe\n"
            "assert sys.prefix != sys.base_prefix\n"
            "print(hermetic_probe.ANSWER, sys.base_prefix)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    answer, base = out.split()
    assert answer == "42" and base == str(root.resolve()), out
    return f"venv ok, wheel installed offline ({out})"


TLS_CODE = """
import hashlib, socket, ssl, sys, threading
cert, key = sys.argv[1], sys.argv[2]
server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(cert, key)
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
def serve():
    conn, _ = listener.accept()
    with server_ctx.wrap_socket(conn, server_side=True) as tls:
        tls.sendall(tls.recv(100).upper())
threading.Thread(target=serve, daemon=True).start()
client_ctx = ssl.create_default_context(cafile=cert)
with socket.create_connection(("127.0.0.1", port)) as raw:
    with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"hello")
        assert tls.recv(100) == b"HELLO"
        print(tls.version(), tls.cipher()[0])
"""


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
    return run(root, TLS_CODE, argv=[str(cert), str(key)])


FIPS_CODE = """
import hashlib, _hashlib
assert _hashlib.get_fips_mode() == 1, "FIPS mode is not on"
def refused(make):
    try:
        make()
    except ValueError as e:
        return str(e)
    raise AssertionError(f"{make} was not refused in FIPS mode")
md5 = refused(lambda: hashlib.md5(b"x"))
refused(lambda: hashlib.new("md5", b"x"))
refused(lambda: hashlib.blake2b(b"x"))
assert hashlib.md5(b"abc", usedforsecurity=False).hexdigest() == "900150983cd24fb0d6963f7d28e17f72"
assert hashlib.blake2b(b"abc", usedforsecurity=False).hexdigest()
sha = hashlib.sha256(b"abc")
assert sha.hexdigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
assert type(sha).__module__ == "_hashlib", type(sha)
print("fips_mode=1; md5 refused:", md5.splitlines()[0][:80])
"""


def fips_env(root: Path) -> dict[str, str]:
    return {"OPENSSL_CONF": str(root / "share" / "ssl" / "openssl-fips.cnf")}


@check
def fips_mode(root: Path, args: argparse.Namespace, tmp: Path) -> str:
    out = run(root, FIPS_CODE, env=fips_env(root))
    cert, key = certificate(args, tmp)
    tls = run(root, TLS_CODE, argv=[str(cert), str(key)], env=fips_env(root))
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
        run(broken, "import hashlib; print(hashlib.sha256(b'x').hexdigest())", env=fips_env(broken))
    except CheckFailed as e:
        return f"a modified fips.so stops FIPS mode: {str(e).splitlines()[-1][:120]}"
    raise CheckFailed("FIPS mode still served SHA-256 with a modified fips.so")


def run_checks(root: Path, args: argparse.Namespace, tmp: Path, where: str) -> list[dict[str, str]]:
    results = []
    for fn in CHECKS:
        started = time.monotonic()
        try:
            detail = fn(root, args, tmp)
            status = "ok"
        except (CheckFailed, AssertionError, subprocess.CalledProcessError) as e:
            detail, status = str(e) or repr(e), "FAILED"
        elapsed = time.monotonic() - started
        print(f"[{status:6s}] {where}: {fn.__name__} ({elapsed:.1f}s): {detail}", flush=True)
        results.append({"where": where, "check": fn.__name__, "status": status, "detail": detail})
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--openssl", required=True)
    parser.add_argument("--sqlite", required=True)
    parser.add_argument("--openssl-cli", required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="runtime-tests-"))
    results = run_checks(args.root, args, tmp, "unpacked")
    moved = tmp / "moved" / "elsewhere" / "python"
    shutil.copytree(args.root, moved, symlinks=True)
    results += run_checks(moved, args, tmp, "moved")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(results, indent=2) + "\n")
    failed = [r for r in results if r["status"] != "ok"]
    print(f"{len(results) - len(failed)} of {len(results)} runtime checks passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
