"""The content-addressed download cache, through the fetcher that fills it from a real HTTP server on loopback:
corrupt entries, leftover staging files, and a cache that is full, read-only or someone else's."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import LoopbackServer, child_fetch, make_pin
from hermetic.content_store import STALE_SECONDS, ContentStore
from hermetic.errors import CacheError
from hermetic.fetch import Fetcher, FetchPolicy
from hermetic.pins import Pin

PAYLOAD = os.urandom(300_000)
FAST = FetchPolicy(attempts=3, backoff_seconds=0.01, connect_timeout=2, stall_seconds=5)
DID_NOT_HANG = 30.0  # seconds; every case below would take minutes without its bound


def fetcher(tmp_path: Path) -> Fetcher:
    return Fetcher(ContentStore(tmp_path / "cache"), policy=FAST)


# --- Entries are verified on every use. ------------------------------------------------------------------------


def test_corrupt_cache_entry_is_detected_and_fetched_again(
    tmp_path: Path, http_server: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("good", "a.tgz"),))
    path = fetcher(tmp_path).fetch(pin)
    path.chmod(0o644)
    path.write_bytes(PAYLOAD[:1000] + b"corrupted" + PAYLOAD[1009:])
    again = fetcher(tmp_path).fetch(pin)
    assert again.read_bytes() == PAYLOAD
    assert len(http_server.served.hits) == 2
    assert "corrupt" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["entry", "staging file"])
def test_a_directory_where_a_cached_file_belongs_is_removed_and_the_file_fetched_again(
    tmp_path: Path, http_server: LoopbackServer, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("good", "a.tgz"),))
    store = ContentStore(tmp_path / "cache")
    squatter = store.path_for(pin.sha256) if where == "entry" else store.staging_path(pin.sha256)
    (squatter / "inside").mkdir(parents=True)  # a directory, not empty, as a careless copy leaves one
    (squatter / "inside" / "f").write_bytes(b"x")
    path = fetcher(tmp_path).fetch(pin)
    assert path.read_bytes() == PAYLOAD and path.is_file()
    if where == "entry":
        assert "is corrupt (it is a directory, not a file); removed, fetching again" in capsys.readouterr().err
    assert not store.staging_path(pin.sha256).exists()


# --- Leftovers. ------------------------------------------------------------------------------------------------


def test_stale_staging_files_are_removed_and_fresh_ones_kept(tmp_path: Path, http_server: LoopbackServer) -> None:
    store = ContentStore(tmp_path / "cache")
    staging = tmp_path / "cache" / "tmp"
    staging.mkdir(parents=True)
    day_ago = time.time() - STALE_SECONDS - 60
    old_abandoned = staging / f"{'a' * 64}.part"  # a killed download of a pin nobody fetched since
    old_legacy = staging / "part-x1y2z3"  # left by the fetcher before resumable staging files
    old_in_use = staging / f"{'b' * 64}.part"  # another build is fetching it right now (holds its lock)
    fresh = staging / f"{'c' * 64}.part"  # a recent interrupted download, resumed by the next run
    for path in (old_abandoned, old_legacy, old_in_use, fresh):
        path.write_bytes(b"x" * 100)
    for path in (old_abandoned, old_legacy, old_in_use):
        os.utime(path, (day_ago, day_ago))
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("good", "a.tgz"),))
    holder_ready, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with store.locked("b" * 64):
            holder_ready.set()
            release.wait(DID_NOT_HANG)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    holder_ready.wait(DID_NOT_HANG)
    try:
        Fetcher(store, policy=FAST).fetch(pin)
    finally:
        release.set()
        holder.join()
    assert sorted(p.name for p in staging.iterdir()) == sorted([old_in_use.name, fresh.name])


# --- A full or unwritable cache is named, with the fix. --------------------------------------------------------


def private_mount(directory: Path, options: str) -> list[str]:
    """A wrapper command running its argument with a fresh tmpfs (`options`) on `directory`, seen only by it."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("needs unshare(1) and root to mount a private tmpfs (the test container provides both)")
    script = f'mount -t tmpfs -o {options} tmpfs "{directory}" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


def failed_fetch(cache: Path, pin: Pin, wrap: list[str]) -> str:
    """The line a fetch of `pin` into `cache`, run in a child process under `wrap`, fails with (a CacheError)."""
    child = child_fetch(cache, pin, {}, wrap=wrap)
    _out, err = child.communicate(timeout=DID_NOT_HANG)
    assert child.returncode == CacheError.exit_code, err
    return err.strip()


def test_full_disk_names_the_cache_directory(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("good", "a.tgz"), http_server.url("good", "a.tgz?again")))
    cache = tmp_path / "cache"
    cache.mkdir()
    assert failed_fetch(cache, pin, private_mount(cache, "size=64k")) == (
        f"the download cache {cache}/tmp is full (No space left on device) while fetching {pin.filename}; "
        "free space there, or point cache_root= at a disk with room"
    )
    assert len(http_server.served.hits) == 1  # another URL would not make room


def test_read_only_cache_names_the_cache_directory(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("good", "a.tgz"),))
    cache = tmp_path / "cache"
    cache.mkdir()
    assert failed_fetch(cache, pin, private_mount(cache, "ro")) == (
        f"the download cache {cache}/locks is not writable (Read-only file system) while creating the lock file "
        f"{pin.sha256}.lock; make it writable, or point cache_root= at a writable directory"
    )
    assert http_server.served.hits == []


def test_cache_owned_by_another_user_names_the_cache_directory(http_server: LoopbackServer) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.fail("needs root and setpriv(1) to run the fetch as an unprivileged user")
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("good", "a.tgz"),))
    # Outside pytest's 0700 temporary directory, so that the unprivileged user can reach it.
    top = Path(tempfile.mkdtemp(prefix="fetch-unwritable-"))
    try:
        top.chmod(0o755)
        cache = top / "cache"
        cache.mkdir(mode=0o755)  # owned by root: nobody may create locks/ in it
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        line = failed_fetch(cache, pin, nobody)
    finally:
        shutil.rmtree(top)
    assert line == (
        f"the download cache {cache}/locks is not writable (Permission denied) while creating the lock file "
        f"{pin.sha256}.lock; make it writable, or point cache_root= at a writable directory"
    )
