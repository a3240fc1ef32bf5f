"""A real nginx on loopback that accepts WebDAV PUT: the shared build cache the remote-cache tests use.

nginx comes from Debian's package (installed by ``scripts/bootstrap``); each server gets its own directory
(configuration, stored files, logs, temp files) and a free port. The access log records
``METHOD PATH STATUS`` per request, so tests can tell what a build sent.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

NGINX_SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def nginx_binary() -> str:
    """Path of nginx; an AssertionError naming the fix when it is not installed."""
    found = shutil.which("nginx", path=NGINX_SEARCH_PATH)
    assert found is not None, "nginx is not installed: run ./scripts/bootstrap (it installs Debian's nginx)"
    return found


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WebDavServer:
    """One running nginx. ``url`` is its base URL, ``store`` the directory its files live in."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> Path:
        return self.directory / "store"

    def requests(self) -> list[tuple[str, str, int]]:
        """Every request so far: (method, path, status). nginx logs a request just after answering it, so
        this waits until the log has been quiet for a moment."""
        log = self.directory / "access.log"
        size, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 0.3:
            current = log.stat().st_size if log.exists() else 0
            if current != size:
                size, quiet_since = current, time.monotonic()
            time.sleep(0.05)
        entries = []
        for line in log.read_text().splitlines() if log.exists() else []:
            method, path, status = line.split(" ")
            entries.append((method, path, int(status)))
        return entries

    def stop(self) -> None:
        """End nginx (master and worker) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_webdav_server(
    directory: Path, *, basic_auth: tuple[str, str] | None = None, rate_limit: str | None = None
) -> WebDavServer:
    """Start nginx serving `directory`/store with GET, HEAD and PUT (with basic auth, and answers sent at most
    at `rate_limit` per second, e.g. ``20k``, when given)."""
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("store", "tmp"):
        (directory / sub).mkdir(exist_ok=True)
    auth = ""
    if basic_auth is not None:
        user, password = basic_auth
        (directory / "htpasswd").write_text(f"{user}:{{PLAIN}}{password}\n")
        auth = f'auth_basic "cache"; auth_basic_user_file {directory}/htpasswd;'
    if rate_limit is not None:
        auth += f" limit_rate {rate_limit};"
    last_error = ""
    for _attempt in range(3):  # the free port may be taken between choosing it and nginx binding it
        port = free_port()
        (directory / "nginx.conf").write_text(_config(directory, port, auth))
        with open(directory / "error.log", "ab") as errors:  # nginx keeps its own copy of the descriptor
            process = subprocess.Popen(
                [nginx_binary(), "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"],
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        server = WebDavServer(directory, port, process)
        if _wait_until_listening(server):
            return server
        server.stop()
        last_error = (directory / "error.log").read_text()[-2000:]
    raise AssertionError(f"nginx did not start:\n{last_error}")


def _config(directory: Path, port: int, auth: str) -> str:
    # As root, nginx's workers would otherwise run as nobody and could not write into a private temp dir.
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    temp = directory / "tmp"
    return f"""
{user}
daemon off;
worker_processes 2;
pid {directory}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format cache '$request_method $uri $status';
    access_log {directory}/access.log cache;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {directory}/store;
        client_max_body_size 0;
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            {auth}
        }}
    }}
}}
"""


def _wait_until_listening(server: WebDavServer) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", server.port)) == 0:
                return True
        time.sleep(0.05)
    return False
