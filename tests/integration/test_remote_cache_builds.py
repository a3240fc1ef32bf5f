"""The shared remote build cache with real builds and a real nginx (WebDAV PUT) on loopback.

Each checkout is a fresh copy of the repository with its own, empty local CacheDir, so whatever it does not
build comes from the remote cache: two read-write builds at once fill it; a third checkout restores from it
with no action run; a corrupt remote entry is detected, rebuilt (and, read-write, uploaded again); an
unreachable cache costs one warning line; read-only builds never PUT. The last test restores the whole noopt
CPython 3.13 distribution into an empty checkout with 0 actions run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webdav_server import WebDavServer, free_port, start_webdav_server

from conftest import NOOPT_TARGET, copy_repository, generated_sysroot_name, run_scons, scons_command

pytestmark = pytest.mark.integration

TARGETS = ("zlib", "bzip2")
# The libraries and the generated glibc sysroot they compile against.
ALL = {generated_sysroot_name(NOOPT_TARGET), "zlib-1.3.1", "bzip2-1.0.8"}
DEPS = Path(f"build/{NOOPT_TARGET}/deps")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDavServer]:
    running = start_webdav_server(tmp_path_factory.mktemp("remote-cache") / "nginx")
    try:
        yield running
    finally:
        running.stop()


class Checkout:
    """A fresh copy of the repository with an empty local cache of its own."""

    def __init__(self, base: Path, name: str) -> None:
        self.root = copy_repository(base / name)
        self.cache = base / f"{name}-cache"

    def args(self, server_url: str, mode: str, *targets: str) -> list[str]:
        return [*targets, f"scons_cache={self.cache}", f"remote_cache={server_url}", f"remote_cache_mode={mode}"]

    def build(self, url: str, mode: str, *targets: str) -> subprocess.CompletedProcess[str]:
        result = run_scons(self.root, *self.args(url, mode, *(targets or TARGETS)))
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
        return result

    def digests(self, directory: Path = DEPS) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (self.root / directory).glob("*.tar.*")}


def ran(result: subprocess.CompletedProcess[str]) -> set[str]:
    return set(re.findall(r"^\[start\] build (\S+) ", result.stdout, re.M))


def restored(result: subprocess.CompletedProcess[str]) -> set[str]:
    return set(re.findall(r"^Retrieved `(.+)' from cache", result.stdout, re.M))


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    [line] = [line for line in result.stdout.splitlines() if line.startswith("remote cache ")]
    return {what: int(n) for n, what in re.findall(r"(\d+) (hits|misses|corrupt|uploaded)", line)}


def puts(server: WebDavServer) -> list[str]:
    return [path for method, path, _status in server.requests() if method == "PUT"]


@pytest.fixture(scope="module")
def filled(server: WebDavServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two read-write builds at once fill the remote cache; the artifacts' digests."""
    base = tmp_path_factory.mktemp("writers")
    writers = [Checkout(base, "a"), Checkout(base, "b")]
    processes = [
        subprocess.Popen(
            [*scons_command(), "-Q", *w.args(server.url, "rw", *TARGETS)],
            cwd=w.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in writers
    ]
    for process in processes:
        out, err = process.communicate(timeout=1800)
        assert process.returncode == 0, out[-3000:] + err[-3000:]
        assert "warning" not in err, err
    first, second = (w.digests() for w in writers)
    assert first == second and len(first) == len(ALL)  # reproducible: both writers made the same bytes
    return first


def test_two_writers_at_once_leave_sound_entries(server: WebDavServer, filled: dict[str, str]) -> None:
    records = [json.loads(p.read_text()) for p in (server.store / "ac").iterdir()]
    assert {r["sha256"] for r in records} == set(filled.values())
    for record in records:
        blob = server.store / "cas" / record["sha256"]
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == record["sha256"]
        assert blob.stat().st_size == record["size"]


def test_an_empty_checkout_restores_from_the_remote_cache_without_running_anything(
    server: WebDavServer, filled: dict[str, str], tmp_path: Path
) -> None:
    checkout = Checkout(tmp_path, "reader")
    before = len(puts(server))
    result = checkout.build(server.url, "ro")
    assert ran(result) == set()
    assert {Path(p).name for p in restored(result)} == set(filled)
    assert checkout.digests() == filled
    assert summary(result) == {"hits": len(ALL), "misses": 0, "corrupt": 0, "uploaded": 0}
    # Remote hits are kept in the local cache, verified: a second build there needs no server at all.
    assert len(list(checkout.cache.rglob("*.sha256"))) == len(ALL)
    assert len(puts(server)) == before  # read-only


def test_local_hits_of_a_read_write_build_fill_a_remote_cache_that_lacks_them(
    server: WebDavServer, filled: dict[str, str], tmp_path: Path
) -> None:
    checkout = Checkout(tmp_path, "local")
    checkout.build(server.url, "ro")  # now its local cache holds every entry
    shutil.rmtree(checkout.root / "build")
    empty = start_webdav_server(tmp_path / "second-nginx")
    try:
        result = checkout.build(empty.url, "rw")
        assert ran(result) == set() and summary(result)["uploaded"] == len(ALL)
        assert [method for method, _, _ in empty.requests()] == ["HEAD", "PUT", "PUT"] * len(ALL)
        shutil.rmtree(checkout.root / "build")
        result = checkout.build(empty.url, "rw")  # already there: asked, not sent again
        assert [method for method, _, _ in empty.requests()][3 * len(ALL) :] == ["HEAD"] * len(ALL)
    finally:
        empty.stop()
    assert {p.name for p in (empty.store / "cas").iterdir()} == set(filled.values())


def test_a_corrupt_remote_entry_is_rebuilt_never_restored_and_uploaded_again(
    server: WebDavServer, filled: dict[str, str], tmp_path: Path
) -> None:
    blob = server.store / "cas" / filled["zlib-1.3.1.tar.zst"]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))

    # Read-only: detected, rebuilt locally, nothing sent.
    before = len(puts(server))
    reader = Checkout(tmp_path, "reader")
    result = reader.build(server.url, "ro")
    assert ran(result) == {"zlib-1.3.1"}
    [warning] = [line for line in result.stderr.splitlines() if "remote cache" in line]
    assert f"remote cache entry for {DEPS}/zlib-1.3.1.tar.zst is corrupt" in warning
    assert reader.digests() == filled  # the rebuild gives the same bytes the corrupt entry should have had
    assert len(puts(server)) == before

    # Read-write: detected, rebuilt, uploaded again; then the entry serves a fresh checkout.
    writer = Checkout(tmp_path, "writer")
    result = writer.build(server.url, "rw")
    assert ran(result) == {"zlib-1.3.1"}
    assert f"/cas/{filled['zlib-1.3.1.tar.zst']}" in puts(server)[before:]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == filled["zlib-1.3.1.tar.zst"]
    again = Checkout(tmp_path, "again")
    assert ran(again.build(server.url, "ro")) == set()
    assert again.digests() == filled


def test_a_stop_request_during_a_remote_download_stops_at_once_and_leaves_nothing(
    server: WebDavServer, filled: dict[str, str], tmp_path: Path
) -> None:
    slow = start_webdav_server(tmp_path / "slow-nginx", rate_limit="8k")
    try:
        shutil.copytree(server.store, slow.store, dirs_exist_ok=True)
        checkout = Checkout(tmp_path, "stopped")
        process = subprocess.Popen(
            [*scons_command(), "-Q", *checkout.args(slow.url, "ro", "zlib")],
            cwd=checkout.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        staging = checkout.cache / ".remote" / "tmp"
        deadline = time.monotonic() + 300
        while not any(p.stat().st_size for p in staging.glob("*.part")) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        out, err = process.communicate(timeout=60)
        assert time.monotonic() - stopped < 10
    finally:
        slow.stop()
    assert process.returncode == 128 + signal.SIGTERM, out[-2000:] + err[-2000:]
    [line] = [line for line in err.splitlines() if line.strip()]
    # The first download is zlib's first dependency: the glibc sysroot it compiles against.
    first = f"{generated_sysroot_name(NOOPT_TARGET)}.tar.zst"
    assert "interrupted by SIGTERM" in line and first in line and "Traceback" not in err
    entries = [p for p in checkout.cache.glob("[0-9A-F][0-9A-F]/*") if not p.name.endswith(".sha256")]
    assert entries == []  # nothing half-fetched in the local cache
    assert not (checkout.root / DEPS / first).exists() and not (checkout.root / DEPS / "zlib-1.3.1.tar.zst").exists()


def test_an_unreachable_remote_cache_degrades_to_a_local_build_with_one_warning(tmp_path: Path) -> None:
    checkout = Checkout(tmp_path, "offline")
    result = checkout.build(f"http://127.0.0.1:{free_port()}", "rw")
    assert ran(result) == ALL
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, result.stderr
    assert "is unreachable (connection refused); going on without it" in warnings[0]
    assert summary(result)["uploaded"] == 0


def test_a_fresh_checkout_restores_the_whole_noopt_distribution_with_no_action_run(
    project: Path, noopt_dist: Path, tmp_path: Path
) -> None:
    server = start_webdav_server(tmp_path / "nginx")
    try:
        noopt = ("py=3.13", "options=noopt", "tag=test")
        # Fill the remote cache from the session's build (everything is up to date there).
        populate = run_scons(project, *noopt, "--cache-populate", f"remote_cache={server.url}", "remote_cache_mode=rw")
        assert populate.returncode == 0, populate.stdout[-3000:] + populate.stderr[-3000:]
        uploaded = summary(populate)["uploaded"]
        assert uploaded >= 15  # every library, OpenSSL, CPython, three archives, two test reports, sums, provenance

        checkout = Checkout(tmp_path, "fresh")
        before = len(puts(server))
        result = checkout.build(server.url, "ro", *noopt)
        assert ran(result) == set(), result.stdout[-4000:]
        assert summary(result) == {"hits": uploaded, "misses": 0, "corrupt": 0, "uploaded": 0}
        assert len(puts(server)) == before
        dist = Path("dist") / noopt_dist.name
        assert sorted(p.name for p in (checkout.root / dist).iterdir()) == sorted(p.name for p in noopt_dist.iterdir())
        for made in noopt_dist.iterdir():
            assert (checkout.root / dist / made.name).read_bytes() == made.read_bytes(), made.name
    finally:
        server.stop()
