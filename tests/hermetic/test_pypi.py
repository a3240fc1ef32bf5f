"""``pypi:`` URLs resolved by the real pip against a real package index served on loopback."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hermetic.pypi import IndexFile, resolve

ANY = "demo-1.0-py3-none-any.whl"
LINUX = "demo-1.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
OLDER = "demo-0.9-py3-none-any.whl"


def _wheel(filename: str) -> bytes:
    """A minimal valid wheel (pip reads its METADATA to resolve it)."""
    name, version, python, abi, platform = filename.removesuffix(".whl").split("-")
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {python}-{abi}-{platform}\n"
        ).encode(),
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{info}/RECORD", record + f"{info}/RECORD,,\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def index() -> Iterator[str]:
    """A PEP 503 simple index on 127.0.0.1 with three files of the project "demo"."""
    files = {name: _wheel(name) for name in (ANY, LINUX, OLDER)}
    links = "".join(f'<a href="/files/{n}#sha256={hashlib.sha256(d).hexdigest()}">{n}</a>\n' for n, d in files.items())
    pages = {"/simple/demo/": f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path in pages:
                body, kind = pages[self.path], "text/html"
            elif self.path.startswith("/files/") and self.path[7:] in files:
                body, kind = files[self.path[7:]], "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pip_env(index_url: str, home: Path) -> dict[str, str]:
    """Only this index: no configuration files, no find-links, no cache shared with the machine's pip."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {
        **env,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": index_url,
        "HOME": str(home),
        "PIP_NO_CACHE_DIR": "1",
    }


def test_the_exact_file_is_found_on_the_configured_index(index: str, tmp_path: Path) -> None:
    env = pip_env(f"{index}/simple", tmp_path)
    assert resolve(f"pypi:demo/1.0/{LINUX}", env=env) == [f"{index}/files/{LINUX}"]
    assert resolve(f"pypi:demo/1.0/{ANY}", env=env) == [f"{index}/files/{ANY}"]
    assert resolve(f"pypi:demo/0.9/{OLDER}", env=env) == [f"{index}/files/{OLDER}"]


def test_a_file_the_index_does_not_have_gives_no_url(index: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    env = pip_env(f"{index}/simple", tmp_path)
    assert resolve("pypi:demo/2.0/demo-2.0-py3-none-any.whl", env=env) == []
    assert "pip cannot find demo==2.0" in capsys.readouterr().err
    # Another index (none answers there): nothing either, with pip's reason.
    assert resolve(f"pypi:demo/1.0/{ANY}", env=pip_env(f"{index}/nothing-here", tmp_path)) == []


def test_other_urls_pass_through_and_bad_ones_are_refused() -> None:
    assert resolve("https://example.invalid/x.tar.gz") == ["https://example.invalid/x.tar.gz"]
    assert resolve("debian:pool/main/x.deb") == ["debian:pool/main/x.deb"]
    with pytest.raises(ValueError, match="expected pypi:<project>/<version>/<filename>"):
        IndexFile.parse("pypi:demo/demo-1.0-py3-none-any.whl")


def test_pip_is_asked_for_the_wheel_s_own_tags() -> None:
    wanted = IndexFile.parse(f"pypi:demo/1.0/{LINUX}")
    assert wanted is not None
    assert wanted.pip_arguments() == [
        "--only-binary",
        ":all:",
        "--implementation",
        "py",
        "--abi",
        "none",
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux2014_x86_64",
        "demo==1.0",
    ]
