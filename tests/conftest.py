"""Shared fixtures: a real HTTP server on loopback, pins of real bytes, a fetch in a child process, a copy of
the repository."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from hermetic.pins import Pin

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Served:
    """What the loopback server serves, how badly it behaves, and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    flaky_left: dict[str, int] = field(default_factory=dict)
    # "trickle": one byte every this many seconds.
    trickle_seconds: float = 0.5
    # "stall": this many bytes of the response, then silence with the connection kept open.
    stall_after: int = 1000
    # Set when the server shuts down, so handlers that hold a connection open let go of it.
    released: threading.Event = field(default_factory=threading.Event)
    # When set, every request must carry this ``Authorization`` header value (HTTP 401 otherwise).
    authorization: str | None = None
    # "redirect": where ``/redirect/<name>`` sends the client (HTTP 302).
    redirects: dict[str, str] = field(default_factory=dict)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``/<mode>/<name>``; the mode says how (well) ``served.files[name]`` is served:

    good, missing (404), wrong (other bytes), short (half, honestly announced), truncate (half, then the
    connection drops), flaky (truncate for ``flaky_left[name]`` requests, then good), trickle (one byte every
    ``trickle_seconds``), stall (``stall_after`` bytes, then silence), silent (no answer at all), loop (a
    redirect to itself, forever), error500 (HTTP 500), redirect (HTTP 302 to ``redirects[name]``). Every mode
    first asks for ``served.authorization`` when it is set.
    """

    served: Served

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.served.hits.append(self.path)
        mode, _, name = self.path.lstrip("/").partition("/")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up on a slow mode
            self._answer(mode, name)

    def _answer(self, mode: str, name: str) -> None:
        if self.served.authorization is not None and self.headers.get("Authorization") != self.served.authorization:
            self.send_error(401)
            return
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", self.served.redirects[name])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.served.files.get(name.partition("?")[0])
        if data is None or mode == "missing":
            self.send_error(404)
            return
        if mode == "silent":
            self.served.released.wait(120)
            return
        if mode == "loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "error500":
            self.send_error(500)
            return
        start = 0
        if "Range" in self.headers:
            self.served.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        body = data[start:]
        if mode == "wrong":  # same length, different bytes
            body = bytes(b ^ 0xFF for b in body)
        if mode == "short":  # honest Content-Length, but fewer bytes than pinned
            body = body[: len(body) // 2]
        cut = mode == "truncate" or (mode == "flaky" and self.served.flaky_left.get(name, 0) > 0)
        if mode == "flaky" and cut:
            self.served.flaky_left[name] -= 1
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if cut:  # announce everything, send half, drop the connection
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "trickle":
            for index in range(len(body)):
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
                if self.served.released.wait(self.served.trickle_seconds):
                    return
            return
        if mode == "stall":
            self.wfile.write(body[: self.served.stall_after])
            self.wfile.flush()
            self.served.released.wait(120)
            return
        self.wfile.write(body)


@dataclass
class LoopbackServer:
    """A real HTTP server on 127.0.0.1."""

    base: str
    served: Served

    def url(self, mode: str, name: str) -> str:
        return f"{self.base}/{mode}/{name}"


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    served = Served()
    handler = type("Handler", (_Handler,), {"served": served})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LoopbackServer(base=f"http://127.0.0.1:{server.server_address[1]}", served=served)
    finally:
        served.released.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A URL on a loopback port nothing listens on (connection refused).

    The port stays bound, without listening, until the test ends, so no other server can take it meanwhile.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/nothing-here.tar.gz"


def make_pin(data: bytes, name: str = "demo", urls: tuple[str, ...] = ()) -> Pin:
    """A pin for `data`."""
    return Pin(
        name=name,
        version="1.0",
        filename=f"{name}-1.0.tar.gz",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        urls=urls,
        license="MIT",
    )


# A fetch in a process of its own: for signals, and for a cache mounted only in that process.
_CHILD_FETCH = """
import json, signal, sys
from pathlib import Path
from hermetic import cancel
from hermetic.content_store import ContentStore
from hermetic.errors import HermeticError
from hermetic.fetch import Fetcher, FetchPolicy
from hermetic.pins import Pin

args = json.loads(sys.argv[1])
# Stand-in for SCons's own handler, which only stops new tasks from starting (Taskmaster.stop).
for signum in cancel.STOP_SIGNALS:
    signal.signal(signum, lambda received, frame: None)
cancel.chain_handlers()
fetcher = Fetcher(ContentStore(Path(args["store"])), policy=FetchPolicy(**args["policy"]))
try:
    print(fetcher.fetch(Pin(**args["pin"])), flush=True)
except HermeticError as e:
    print(e.one_line(), file=sys.stderr, flush=True)
    sys.exit(e.exit_code)
"""


def child_fetch(store: Path, pin: Pin, policy: dict[str, float], *, wrap: Sequence[str] = ()) -> subprocess.Popen[str]:
    """Start a real Python process that fetches `pin` into `store` (optionally under a wrapper command)."""
    args = {"store": str(store), "pin": {**asdict(pin), "urls": list(pin.urls)}, "policy": policy}
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "site_scons")}
    command = [*wrap, sys.executable, "-c", _CHILD_FETCH, json.dumps(args)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def copy_repository(dest: Path) -> Path:
    """Copy the tracked files of the repository (and uncommitted ones) to `dest`, without build outputs."""
    ignore = shutil.ignore_patterns("build", "dist", ".venv", ".git", "__pycache__", ".pytest_cache", "*.egg-info")
    shutil.copytree(REPO_ROOT, dest, ignore=ignore, symlinks=True)
    return dest


def scons_command() -> list[str]:
    """How tests invoke SCons: the scons of the interpreter running the tests."""
    return [sys.executable, "-m", "SCons"]


def run_scons(project: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run scons in `project` with `args`, capturing output."""
    result = subprocess.run([*scons_command(), "-Q", *args], cwd=project, capture_output=True, text=True, timeout=3600)
    if check and result.returncode != 0:
        raise AssertionError(f"scons {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository shared by the integration tests of one session (default caches)."""
    return copy_repository(tmp_path_factory.mktemp("project") / "repo")


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a .tar.zst/.tar.gz artifact with the system tar, independently of the code under test."""
    dest.mkdir(parents=True, exist_ok=True)
    flag = "--zstd" if archive.name.endswith(".zst") else "-z"
    subprocess.run(["tar", flag, "-xf", str(archive), "-C", str(dest)], check=True)
    return dest


@dataclass(frozen=True)
class Toolchain:
    """The pinned x86_64 toolchain, materialized, and a way to run commands with it in the sandbox."""

    compiler: Path
    sysroot: Path

    def run(self, work: Path, script: str) -> subprocess.CompletedProcess[str]:
        """Run `script` (sh) in the sandbox with `work` as the writable /build/out; raise on failure."""
        from hermetic.sandbox import Bubblewrap, Mount

        scratch = work / ".sandbox"
        scratch.mkdir(parents=True, exist_ok=True)
        log = scratch / "log"
        log.write_text("")
        mounts = [
            Mount(work, "/build/out", True),
            Mount(self.compiler, "/toolchain"),
            Mount(self.sysroot, "/sysroot"),
        ]
        env = {
            "PATH": "/toolchain/bin:/usr/bin:/bin",
            "LC_ALL": "C",
            "HOME": "/tmp",
            "SOURCE_DATE_EPOCH": "0",
        }
        rc = Bubblewrap(scratch).run(["/bin/sh", "-ec", script], mounts=mounts, env=env, cwd="/build/out", log_file=log)
        output = log.read_text()
        if rc != 0:
            raise AssertionError(f"sandboxed command failed ({rc}):\n{script}\n{output}")
        return subprocess.CompletedProcess(script, rc, output, "")


def generated_sysroot_name(triple: str) -> str:
    """The name of the action (and artifact) that generates the glibc sysroot of `triple` in a build."""
    from hermetic.toolchain import load_toolchain
    from pydist import glibc_sysroot
    from pydist.paths import PINS_SCHEMA, TOOLCHAINS_DIR

    target = load_toolchain(TOOLCHAINS_DIR, triple, PINS_SCHEMA)
    return glibc_sysroot.sysroot_name(target.arch, str(target.target["glibc_floor"]))


def generated_sysroot_artifact(triple: str) -> Path:
    """The artifact of the glibc sysroot the build generates for `triple`, made (or reused) with the real action
    in the user cache, in a directory named after the action's key; unpacked beside it, in ``unpacked/``."""
    from hermetic.action import ActionRunner
    from hermetic.archive_extract import extract_tar
    from hermetic.lock import load_lock
    from hermetic.toolchain import load_toolchain
    from pydist import glibc_sysroot
    from pydist.graph import make_fetcher
    from pydist.paths import LOCK_FILE, PINS_SCHEMA, TOOLCHAINS_DIR
    from pydist.settings import default_cache_root, resolve

    cache = default_cache_root()
    target = load_toolchain(TOOLCHAINS_DIR, triple, PINS_SCHEMA)
    epoch = load_lock(LOCK_FILE, PINS_SCHEMA).source_date_epoch
    action = glibc_sysroot.sysroot_action(target, str(target.target["glibc_floor"]), source_date_epoch=epoch)
    root = cache / "test-sysroots" / action.key()[:20]
    if not (root / "unpacked" / "usr" / "include" / "features.h").is_file():
        shutil.rmtree(root, ignore_errors=True)
        fetcher = make_fetcher(resolve({}))
        runner = ActionRunner(
            fetcher=fetcher, toolchain_root=cache / "toolchains", work_root=root / "work", log_root=root, jobs=2
        )
        artifact = root / glibc_sysroot.artifact_name(target.arch, str(target.target["glibc_floor"]))
        runner.run(action, artifact, [])
        extract_tar(artifact, root / "unpacked")
    [artifact] = root.glob("*.tar.zst")
    return artifact


def generated_sysroot(triple: str) -> Path:
    """The glibc sysroot the build generates for `triple`, unpacked (see :func:`generated_sysroot_artifact`)."""
    return generated_sysroot_artifact(triple).parent / "unpacked"


@pytest.fixture(scope="session")
def toolchain() -> Toolchain:
    """Materialize (or reuse) the pinned x86_64-unknown-linux-gnu toolchain from the user cache, with the glibc
    sysroot the build generates for it."""
    from hermetic.toolchain import load_toolchain, materialize_toolchain
    from pydist.graph import make_fetcher
    from pydist.paths import PINS_SCHEMA, TOOLCHAINS_DIR
    from pydist.settings import default_cache_root, resolve

    cache = default_cache_root()
    pins = load_toolchain(TOOLCHAINS_DIR, "x86_64-unknown-linux-gnu", PINS_SCHEMA)
    dirs = materialize_toolchain(pins, make_fetcher(resolve({})), cache / "toolchains")
    return Toolchain(compiler=dirs.compiler, sysroot=generated_sysroot("x86_64-unknown-linux-gnu"))


NOOPT_TARGET = "x86_64-unknown-linux-gnu"


@pytest.fixture(scope="session")
def noopt_dist(project: Path) -> Path:
    """The dist/ directory of ``scons py=3.13 options=noopt tag=test`` in the session's repository copy
    (the build validates and runtime-tests the archives before they appear)."""
    result = run_scons(project, "py=3.13", "options=noopt", "tag=test")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    [directory] = (project / "dist").glob(f"cpython-3.13.15-{NOOPT_TARGET}-noopt-test")
    return directory


def archive(dist: Path, kind: str) -> Path:
    """One archive of the noopt dist: full, install_only or stripped."""
    names = {
        "full": f"cpython-3.13.15-{NOOPT_TARGET}-noopt-test.tar.zst",
        "install_only": f"cpython-3.13.15-{NOOPT_TARGET}-noopt-install_only-test.tar.gz",
        "stripped": f"cpython-3.13.15-{NOOPT_TARGET}-noopt-install_only_stripped-test.tar.gz",
    }
    return dist / names[kind]


@pytest.fixture(scope="session")
def openssl_tree(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenSSL 3.5.7 artifact built (or restored from the cache) in the session's repository copy."""
    run_scons(project, "openssl", check=True)
    artifact = project / "build" / "x86_64-unknown-linux-gnu" / "deps" / "openssl-3.5.7.tar.zst"
    return unpack(artifact, tmp_path_factory.mktemp("openssl"))
