"""uv (pinned in the dev dependencies) installs our archives through the downloads list `pydist uv-downloads`
writes, served from a real HTTP server on loopback; the installed Python runs in FIPS mode, and a venv made
by uv builds and installs a C extension package offline."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import archive
from hermetic.pins import Pin
from pydist import uv_downloads
from pydist.distribution import DistNames
from pydist.matrix import BuildRequest
from pydist.options import BuildOptions

UV = Path(sys.executable).parent / "uv"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined,method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def uv_env(tmp_path: Path, downloads_url: str) -> dict[str, str]:
    """uv isolated from any user configuration, cache or Python, reading our downloads list."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    return {
        **env,
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "pythons"),
        "UV_PYTHON_BIN_DIR": str(tmp_path / "bin"),
        "UV_PYTHON_DOWNLOADS_JSON_URL": downloads_url,
    }


def uv(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run([str(UV), *args], env=env, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert result.returncode == 0, f"uv {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def write_c_extension_package(root: Path) -> Path:
    """A tiny package with one C extension and an in-tree build backend (no setuptools: everything is offline).

    The backend compiles with the compiler and flags the interpreter's sysconfig names, as setuptools does,
    so it depends on uv having patched the build-time paths of the installed Python."""
    package = root / "tinyext"
    (package / "backend").mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = []
            build-backend = "tinybackend"
            backend-path = ["backend"]

            [project]
            name = "tinyext"
            version = "1.0"
            """
        )
    )
    (package / "tinyext.c").write_text(
        textwrap.dedent(
            """
            #include <Python.h>
            static PyObject *add(PyObject *self, PyObject *args) {
                long a, b;
                if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
                return PyLong_FromLong(a + b);
            }
            static PyMethodDef methods[] = {{"add", add, METH_VARARGS, NULL}, {NULL, NULL, 0, NULL}};
            static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tinyext", NULL, -1, methods};
            PyMODINIT_FUNC PyInit_tinyext(void) { return PyModule_Create(&module); }
            """
        )
    )
    (package / "backend" / "tinybackend.py").write_text(
        textwrap.dedent(
            """
            import base64, hashlib, os, shlex, subprocess, sys, sysconfig, tempfile, zipfile

            def _tag():
                impl = f"cp{sys.version_info[0]}{sys.version_info[1]}"
                return f"{impl}-{impl}{sys.abiflags}-{sysconfig.get_platform().replace('-', '_').replace('.', '_')}"

            def get_requires_for_build_wheel(config_settings=None):
                return []

            def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
                v = sysconfig.get_config_var
                ext = "tinyext" + v("EXT_SUFFIX")
                with tempfile.TemporaryDirectory() as tmp:
                    obj, so = os.path.join(tmp, "tinyext.o"), os.path.join(tmp, ext)
                    include = sysconfig.get_path("include")
                    subprocess.run([*shlex.split(v("CC")), *shlex.split(v("CFLAGS")), *shlex.split(v("CCSHARED")),
                                    f"-I{include}", "-c", "tinyext.c", "-o", obj], check=True)
                    subprocess.run([*shlex.split(v("LDSHARED")), obj, "-o", so], check=True)
                    name = f"tinyext-1.0-{_tag()}.whl"
                    files = {
                        ext: open(so, "rb").read(),
                        "tinyext-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: tinyext\\nVersion: 1.0\\n",
                        "tinyext-1.0.dist-info/WHEEL": (
                            f"Wheel-Version: 1.0\\nGenerator: tinybackend\\nRoot-Is-Purelib: false\\nTag: {_tag()}\\n"
                        ).encode(),
                    }
                    record = [
                        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                        f"{len(data)}" for path, data in files.items()
                    ] + ["tinyext-1.0.dist-info/RECORD,,"]
                    files["tinyext-1.0.dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
                    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
                        for path, data in files.items():
                            zf.writestr(path, data)
                return name
            """
        )
    )
    return package


FIPS_CHECK = """
import _hashlib, hashlib, ssl
assert _hashlib.get_fips_mode() == 1
try:
    hashlib.md5()
    raise SystemExit("md5 for security use was allowed")
except ValueError:
    pass
hashlib.md5(b"x", usedforsecurity=False)
print(hashlib.sha256(b"abc").hexdigest(), ssl.OPENSSL_VERSION)
"""


@pytest.mark.integration
def test_uv_installs_the_stripped_archive_which_runs_in_fips_mode_and_builds_a_c_extension(
    noopt_dist: Path, served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = served
    stripped = archive(noopt_dist, "stripped")
    (root / stripped.name).symlink_to(stripped)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pydist",
            "uv-downloads",
            str(noopt_dist),
            "--base-url",
            base,
            "-o",
            str(root / "d.json"),
        ],
        check=True,
        capture_output=True,
    )
    [entry] = json.loads((root / "d.json").read_text()).values()
    assert entry["url"] == f"{base}/{stripped.name}"
    assert entry["sha256"] == hashlib.sha256(stripped.read_bytes()).hexdigest()
    env = uv_env(tmp_path, f"{base}/d.json")

    uv(env, "python", "install", "3.13.15")
    python = Path(uv(env, "python", "find", "--managed-python", "3.13.15").strip())
    assert python.is_relative_to(tmp_path / "pythons"), python
    assert (python.parent.parent / "BUILD").read_text().strip() == "test"  # uv recorded our build tag

    fips_env = {"PATH": "/usr/bin:/bin", "OPENSSL_CONF": str(python.parent.parent / "share/ssl/openssl-fips.cnf")}
    result = subprocess.run([str(python), "-I", "-c", FIPS_CHECK], env=fips_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad OpenSSL 3.5.7")

    uv(env, "venv", "--offline", "--managed-python", "--python", "3.13.15", str(tmp_path / "venv"))
    venv_python = tmp_path / "venv" / "bin" / "python"
    package = write_c_extension_package(tmp_path / "src")
    uv(env, "pip", "install", "--offline", "--no-index", "--python", str(venv_python), str(package))
    check = "import sys, tinyext; assert sys.prefix != sys.base_prefix; print(tinyext.add(40, 2), tinyext.__file__)"
    result = subprocess.run([str(venv_python), "-c", check], capture_output=True, text=True, env=fips_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"42 {tmp_path / 'venv'}")


def names(options: str) -> DistNames:
    pin = Pin(name="cpython", version="3.13.15", filename="Python-3.13.15.tar.xz", size=1, sha256="0" * 64, urls=())
    return DistNames(
        request=BuildRequest(target="x86_64-unknown-linux-gnu", python=pin, options=BuildOptions.parse(options)),
        tag="t1",
    )


def test_uv_reads_the_freethreaded_entry_as_its_freethreaded_variant(tmp_path: Path) -> None:
    # A freethreaded build is a full CPython build, too slow for the suite: uv is asked to list the entries
    # our list gives for a release's two 3.13 archives (without installing them).
    default, freethreaded = names("pgo+lto"), names("freethreaded+pgo+lto")
    base = "http://127.0.0.1:9/releases/download/t1"
    document = uv_downloads.downloads(
        {default.install_only_stripped: "1" * 64, freethreaded.install_only_stripped: "2" * 64}, base
    )
    listing = tmp_path / "d.json"
    uv_downloads.write_json(listing, document)
    env = uv_env(tmp_path, str(listing))
    shown = uv(env, "python", "list", "--only-downloads", "--all-versions", "--show-urls").split("\n")
    rows = sorted(line.split() for line in shown if line.strip())
    assert rows == [
        [
            "cpython-3.13.15+freethreaded-linux-x86_64-gnu",
            f"{base}/{freethreaded.install_only_stripped}",
        ],
        ["cpython-3.13.15-linux-x86_64-gnu", f"{base}/{default.install_only_stripped}"],
    ]
