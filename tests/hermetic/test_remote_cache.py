"""The remote cache against a real nginx with WebDAV PUT on loopback: entries round-trip verified, a corrupt,
truncated or malformed entry is detected and never restored, concurrent writers leave a consistent entry,
read-only mode never PUTs, credentials work and never show, and an unreachable or refusing cache is switched
off with one warning line."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webdav_server import WebDavServer, free_port, start_webdav_server

from hermetic import cancel
from hermetic.errors import CancelledError
from hermetic.remote_cache import RemoteCache, RemotePolicy, url_problem

FAST = RemotePolicy(attempts=2, backoff_seconds=0.05, connect_timeout=2, stall_seconds=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebDavServer]:
    running = start_webdav_server(tmp_path / "nginx")
    try:
        yield running
    finally:
        running.stop()


def cache(url: str, tmp_path: Path, *, writable: bool = True, **options: object) -> RemoteCache:
    return RemoteCache(url, writable=writable, staging=tmp_path / "staging", policy=FAST, **options)  # type: ignore[arg-type]


def key_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry(tmp_path: Path, name: str, size: int, seed: int = 0) -> Path:
    path = tmp_path / "entries" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(f"{name}-{seed}".encode()).digest()
    path.write_bytes((block * (size // len(block) + 1))[:size])
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(tmp_path: Path) -> list[Path]:
    """Files left in the staging store (partial or unclaimed downloads) or next to the destinations."""
    staging = tmp_path / "staging"
    staged = [p for sub in ("tmp", "sha256") for p in (staging / sub).rglob("*") if p.is_file()]
    return staged + [p for p in (tmp_path / "out").glob("*") if p.name != "restored"]


def test_an_entry_round_trips_in_the_bazel_remote_layout(server: WebDavServer, tmp_path: Path) -> None:
    writer = cache(server.url, tmp_path)
    artifact = entry(tmp_path, "openssl.tar.zst", 3_000_000)
    key = key_of("openssl")
    assert writer.upload(key, artifact)
    record = json.loads((server.store / "ac" / key).read_text())
    assert record == {"format": 1, "sha256": sha(artifact), "size": artifact.stat().st_size}
    assert (server.store / "cas" / sha(artifact)).read_bytes() == artifact.read_bytes()
    # The blob is uploaded before the record that names it.
    puts = [path for method, path, _ in server.requests() if method == "PUT"]
    assert puts == [f"/cas/{sha(artifact)}", f"/ac/{key}"]

    reader = cache(server.url, tmp_path, writable=False)
    dest = tmp_path / "out" / "restored"
    assert reader.fetch(key, dest, "build/deps/openssl.tar.zst") == sha(artifact)
    assert dest.read_bytes() == artifact.read_bytes()
    assert reader.fetch(key_of("never built"), tmp_path / "out" / "x", "x") is None
    assert reader.counts() == {"hits": 1, "misses": 1, "corrupt": 0, "uploaded": 0}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "bad record", "record of another size"])
def test_a_corrupt_entry_is_detected_never_restored_and_repaired_by_a_writer(
    server: WebDavServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    artifact = entry(tmp_path, "zlib.tar.zst", 200_000)
    key = key_of("zlib")
    writer = cache(server.url, tmp_path)
    writer.upload(key, artifact)
    blob, record = server.store / "cas" / sha(artifact), server.store / "ac" / key
    data = bytearray(blob.read_bytes())
    if damage == "flipped byte":
        data[len(data) // 2] ^= 0x01
        blob.write_bytes(bytes(data))
    elif damage == "truncated":
        blob.write_bytes(bytes(data[:1000]))
    elif damage == "bad record":
        record.write_text("not json at all")
    else:
        record.write_text(json.dumps({"sha256": sha(artifact), "size": len(data) + 10}))
    capsys.readouterr()

    dest = tmp_path / "out" / "restored"
    assert cache(server.url, tmp_path, writable=False).fetch(key, dest, "build/deps/zlib.tar.zst") is None
    assert not dest.exists() and leftovers(tmp_path) == []
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1 and "remote cache entry for build/deps/zlib.tar.zst is corrupt" in warnings[0]

    # A read-write build that rebuilt it uploads it afresh, and the entry is sound again.
    repairer = cache(server.url, tmp_path)
    assert repairer.upload(key, artifact)
    assert cache(server.url, tmp_path, writable=False).fetch(key, dest, "zlib") == sha(artifact)
    assert dest.read_bytes() == artifact.read_bytes()


def test_a_record_whose_blob_was_evicted_is_a_quiet_miss(
    server: WebDavServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = entry(tmp_path, "bzip2.tar.zst", 50_000)
    cache(server.url, tmp_path).upload(key_of("bzip2"), artifact)
    (server.store / "cas" / sha(artifact)).unlink()
    capsys.readouterr()
    reader = cache(server.url, tmp_path, writable=False)
    assert reader.fetch(key_of("bzip2"), tmp_path / "out" / "restored", "bzip2") is None
    assert capsys.readouterr().err == ""
    assert reader.counts()["misses"] == 1 and reader.enabled


def test_read_only_mode_never_puts(server: WebDavServer, tmp_path: Path) -> None:
    reader = cache(server.url, tmp_path, writable=False)
    artifact = entry(tmp_path, "ncurses.tar.zst", 10_000)
    assert reader.upload(key_of("ncurses"), artifact) is False
    assert reader.upload(key_of("ncurses"), artifact, unless_present=True) is False
    assert reader.fetch(key_of("ncurses"), tmp_path / "out" / "restored", "ncurses") is None
    assert [method for method, _, _ in server.requests()] == ["GET"]


def test_upload_unless_present_asks_first_and_sends_nothing_twice(server: WebDavServer, tmp_path: Path) -> None:
    writer = cache(server.url, tmp_path)
    artifact = entry(tmp_path, "sqlite.tar.zst", 10_000)
    assert writer.upload(key_of("sqlite"), artifact, unless_present=True)
    assert not writer.upload(key_of("sqlite"), artifact, unless_present=True)
    methods = [method for method, _, _ in server.requests()]
    assert methods == ["HEAD", "PUT", "PUT", "HEAD"]


def test_concurrent_writers_and_readers_leave_a_consistent_entry(server: WebDavServer, tmp_path: Path) -> None:
    # Two builds that produced different bytes for the same key (the worst case), each writing twice,
    # while readers fetch: every read is one writer's complete entry, and the final record names a sound blob.
    key = key_of("cpython")
    variants = [entry(tmp_path, f"cpython-{n}.tar.zst", 8_000_000, seed=n) for n in range(2)]
    digests = {sha(v) for v in variants}
    seen: list[str | None] = []
    failures: list[BaseException] = []

    def write(variant: Path) -> None:
        for _ in range(2):
            cache(server.url, tmp_path / f"w-{variant.name}").upload(key, variant)

    def read(number: int) -> None:
        reader = cache(server.url, tmp_path / f"r-{number}", writable=False)
        for attempt in range(6):
            seen.append(reader.fetch(key, tmp_path / f"r-{number}" / f"out-{attempt}", "cpython"))

    def guarded(work: object, *args: object) -> threading.Thread:
        def run() -> None:
            try:
                work(*args)  # type: ignore[operator]
            except BaseException as e:  # reported below
                failures.append(e)

        return threading.Thread(target=run)

    threads = [guarded(write, v) for v in variants] + [guarded(read, n) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert {digest for digest in seen if digest is not None} <= digests
    restored = [p for n in range(3) for p in (tmp_path / f"r-{n}").glob("out-*")]
    assert all(sha(p) in digests for p in restored)
    final = json.loads((server.store / "ac" / key).read_text())
    assert final["sha256"] in digests
    assert sha(server.store / "cas" / final["sha256"]) == final["sha256"]
    assert cache(server.url, tmp_path / "last", writable=False).fetch(key, tmp_path / "last-out", "cpython") in digests


def test_an_unreachable_cache_is_switched_off_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = cache(f"http://127.0.0.1:{free_port()}", tmp_path)
    artifact = entry(tmp_path, "xz.tar.zst", 1000)
    for number in range(5):
        assert remote.fetch(key_of(f"k{number}"), tmp_path / "out" / f"o{number}", f"k{number}") is None
        assert remote.upload(key_of(f"k{number}"), artifact) is False
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1, warnings
    assert "is unreachable" in warnings[0] and "going on without it" in warnings[0]
    assert not remote.enabled


def test_a_failing_cache_is_retried_then_switched_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # nginx answering 500 to everything (a broken backend): bounded retries, then off, one line.
    directory = tmp_path / "broken"
    broken = start_webdav_server(directory)
    try:
        conf = directory / "nginx.conf"
        conf.write_text(conf.read_text().replace("dav_methods PUT;", "return 500;"))
        os.kill(broken.process.pid, signal.SIGHUP)  # reload the configuration
        remote = cache(broken.url, tmp_path)
        for _ in range(50):  # the reload takes a moment
            if broken.requests() and broken.requests()[-1][2] == 500:
                break
            remote.fetch(key_of("probe"), tmp_path / "out" / "p", "probe")
            remote = cache(broken.url, tmp_path)
            capsys.readouterr()
        assert remote.fetch(key_of("a"), tmp_path / "out" / "a", "a") is None
        assert remote.fetch(key_of("b"), tmp_path / "out" / "b", "b") is None
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "HTTP 500" in err[0] and f"after {FAST.attempts} attempts" in err[0]
        tries = [r for r in broken.requests() if r[1] == f"/ac/{key_of('a')}"]
        assert len(tries) == FAST.attempts
        assert not [r for r in broken.requests() if r[1] == f"/ac/{key_of('b')}"]
    finally:
        broken.stop()


def test_credentials_are_sent_and_never_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s3cret-Passw0rd"
    guarded = start_webdav_server(tmp_path / "auth", basic_auth=("ci", secret))
    try:
        remote = cache(guarded.url, tmp_path, credentials=f"ci:{secret}", credentials_variable="$CACHE_CRED")
        artifact = entry(tmp_path, "libffi.tar.zst", 5000)
        assert remote.upload(key_of("libffi"), artifact)
        assert remote.fetch(key_of("libffi"), tmp_path / "out" / "restored", "libffi") == sha(artifact)
        assert secret not in repr(remote)

        wrong = cache(guarded.url, tmp_path, credentials="ci:wrong-password", credentials_variable="$CACHE_CRED")
        assert wrong.fetch(key_of("libffi"), tmp_path / "out" / "again", "libffi") is None
        assert wrong.fetch(key_of("other"), tmp_path / "out" / "other", "other") is None
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "refused access (HTTP 401); check $CACHE_CRED" in err
        assert secret not in err and "wrong-password" not in err
    finally:
        guarded.stop()


def test_a_stop_request_ends_an_upload_and_leaves_nothing(server: WebDavServer, tmp_path: Path) -> None:
    artifact = entry(tmp_path, "tk.tar.zst", 1_000_000)
    cancel.request(signal.SIGTERM)
    try:
        with pytest.raises(CancelledError, match="interrupted by SIGTERM"):
            cache(server.url, tmp_path).upload(key_of("tk"), artifact)
    finally:
        cancel.reset()
    assert not (server.store / "cas").exists() and not (server.store / "ac").exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://cache.example:9092", None),
        ("http://127.0.0.1:8080/prefix/", None),
        ("ftp://cache.example", "has scheme ftp:, not http: or https:"),
        ("cache.example", "has scheme (none):, not http: or https:"),
        ("https://", "has no host"),
        ("https://ci:secret@cache.example", "holds credentials, which would show in logs and process lists"),
        ("https://cache.example/?token=x", "has a query or fragment"),
        ("https://cache.example:99999", "has a bad port (Port out of range 0-65535)"),
    ],
)
def test_url_problems(url: str, problem: str | None) -> None:
    assert url_problem(url) == problem


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """A server that accepts a PUT, then reads its body at a trickle (512 bytes every 0.2 s); its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            with conn:
                while not done.wait(0.2):
                    with contextlib.suppress(OSError):
                        conn.recv(512)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(5)
        listener.close()


def test_an_upload_to_a_server_that_stops_reading_is_bounded(
    trickling_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The upload gives up after its stall limit on each attempt, and the cache is switched off with one line
    # instead of holding the build.
    policy = RemotePolicy(attempts=2, backoff_seconds=0.05, connect_timeout=2, stall_seconds=1)
    remote = RemoteCache(trickling_server, writable=True, staging=tmp_path / "s", policy=policy)
    artifact = entry(tmp_path, "big.tar.zst", 64_000_000)
    started = time.monotonic()
    assert remote.upload(key_of("big"), artifact) is False
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "keeps failing" in err[0] and "gave up uploading big.tar.zst after 2 attempts" in err[0]
    assert not remote.enabled


def test_a_stop_request_ends_an_upload_blocked_on_a_stalled_server(trickling_server: str, tmp_path: Path) -> None:
    policy = RemotePolicy(attempts=2, stall_seconds=60)  # the stall limit alone would wait a minute
    remote = RemoteCache(trickling_server, writable=True, staging=tmp_path / "s", policy=policy)
    artifact = entry(tmp_path, "big.tar.zst", 64_000_000)
    timer = threading.Timer(1.0, cancel.request, (signal.SIGTERM,))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(CancelledError, match=r"interrupted by SIGTERM while uploading big\.tar\.zst"):
            remote.upload(key_of("big"), artifact)
    finally:
        timer.cancel()
        cancel.reset()
    assert time.monotonic() - started < 5
