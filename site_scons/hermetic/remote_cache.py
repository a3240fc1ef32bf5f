"""A shared build cache over HTTP, behind the local verified CacheDir.

Layout (bazel-remote's HTTP API: GET, HEAD and PUT on ``/ac/<key>`` and ``/cas/<sha256>``):

- ``/cas/<sha256>``: the bytes of a cache entry, named by their own digest;
- ``/ac/<key>``: a small JSON record ``{"sha256": ..., "size": ...}`` naming the CAS blob of the entry whose
  SCons cache key is ``<key>`` (the build signature: it hashes inputs, so it is an action-cache key).

A writer uploads the blob before the record, so a record never names a blob that was not there. Every read
is verified: the blob is fetched by :class:`hermetic.fetch.Fetcher` with the record's size and digest as its
pin (deadline, minimum rate, stall limit, retries, resume, stop requests), so a corrupt or truncated blob is
detected and never restored; the target is built instead and, in read-write mode, uploaded afresh.

A cache that cannot be reached (or refuses us, or keeps failing) is switched off for the rest of the build
with one warning line; the build goes on locally. Read-only mode never sends a PUT. Credentials come from
the caller (an environment variable), never from the URL, and are never printed.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import requests

from hermetic import cancel, log, redact, retry
from hermetic.content_store import ContentStore, sha256_file
from hermetic.errors import FetchError, HermeticError
from hermetic.fetch import Fetcher, FetchPolicy
from hermetic.pins import Pin

RECORD_FORMAT = 1
_MAX_RECORD_BYTES = 4096
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class RemotePolicy:
    """How hard to try the remote cache before going on without it.

    Small requests (records, HEAD) get ``attempts`` tries with exponential backoff from ``backoff_seconds``;
    each waits ``connect_timeout`` for a connection and ``stall_seconds`` for an answer. Blob transfers get
    the same limits plus a total deadline of ``deadline_floor_seconds`` + size / ``min_rate``.
    """

    attempts: int = 3
    backoff_seconds: float = 0.5
    connect_timeout: float = 5.0
    stall_seconds: float = 20.0
    min_rate: float = 256 * 1024
    deadline_floor_seconds: float = 60.0

    def fetch_policy(self) -> FetchPolicy:
        """The same limits for blob downloads through the fetcher."""
        return FetchPolicy(
            attempts=self.attempts,
            backoff_seconds=self.backoff_seconds,
            connect_timeout=self.connect_timeout,
            stall_seconds=self.stall_seconds,
            min_rate=self.min_rate,
            rate_window_seconds=self.stall_seconds,
            rate_grace_seconds=self.stall_seconds,
            deadline_floor_seconds=self.deadline_floor_seconds,
        )

    def deadline(self, size: int) -> float:
        """Seconds one transfer of `size` bytes may take in all."""
        return self.deadline_floor_seconds + size / self.min_rate


def url_problem(url: str) -> str | None:
    """None if `url` can be a remote cache's base URL, else what is wrong with it (one phrase)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"has scheme {parts.scheme or '(none)'}:, not http: or https:"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "holds credentials, which would show in logs and process lists"
    if parts.query or parts.fragment:
        return "has a query or fragment"
    try:
        _ = parts.port
    except ValueError as e:
        return f"has a bad port ({e})"
    return None


class _Unusable(Exception):
    """The remote cache cannot serve this build (unreachable, refusing us, or failing): stop using it."""


class _Transient(Exception):
    """A failure worth another attempt (connection reset, timeout, HTTP 5xx or 429)."""


class RemoteCache:
    """Entries of a shared HTTP cache, verified on read; thread-safe (SCons retrieves from several threads).

    Args:
        url: (str) base URL; ``<url>/ac/<key>`` and ``<url>/cas/<sha256>`` are used.
        writable: (bool) whether this build uploads (read-write) or only reads (read-only).
        staging: (Path) a directory on the local cache's file system where downloads are assembled.
        credentials: (str | None) ``user:password`` (HTTP basic) or a bare token (``Authorization: Bearer``).
        credentials_variable: (str) the environment variable they come from, named in messages.
        policy: (RemotePolicy) timeouts and retries.
    """

    def __init__(
        self,
        url: str,
        *,
        writable: bool,
        staging: Path,
        credentials: str | None = None,
        credentials_variable: str = "the credentials variable",
        policy: RemotePolicy = RemotePolicy(),
    ) -> None:
        self.url = url.rstrip("/")
        self.writable = writable
        self.staging = staging
        self.policy = policy
        self._credentials = credentials
        self._credentials_variable = credentials_variable
        self._local = threading.local()
        self._lock = threading.Lock()
        self._enabled = True
        self._counts = {"hits": 0, "misses": 0, "corrupt": 0, "uploaded": 0}

    def __repr__(self) -> str:
        mode = "read-write" if self.writable else "read-only"
        return f"RemoteCache({redact.url(self.url)}, {mode}, {'with' if self._credentials else 'no'} credentials)"

    @property
    def enabled(self) -> bool:
        """False once the cache was found unusable in this build."""
        return self._enabled

    def counts(self) -> dict[str, int]:
        """Hits, misses, corrupt entries seen and uploads so far."""
        with self._lock:
            return dict(self._counts)

    def summary(self) -> str:
        """One line for the end of the build."""
        c = self.counts()
        state = "" if self.enabled else " (switched off during the build)"
        mode = "read-write" if self.writable else "read-only"
        return (
            f"remote cache {self.url} ({mode}){state}: {c['hits']} hits, {c['misses']} misses, "
            f"{c['corrupt']} corrupt, {c['uploaded']} uploaded"
        )

    # -- reading ----------------------------------------------------------------------------------------

    def fetch(self, key: str, dest: Path, label: str) -> str | None:
        """Place the verified entry for `key` at `dest` (atomically, by rename) and return its sha256; None
        when there is none.

        A corrupt entry (a malformed record, or a blob whose size or sha256 differ from the record) is
        reported with one warning naming `label` and is a miss.
        """
        if not self.enabled:
            return None
        try:
            record = self._record(key)
            if record is None:
                self._count("misses")
                return None
            sha256, size = record
            blob = self._fetch_blob(sha256, size, Path(label).name)
        except _Unusable as e:
            self._switch_off(str(e))
            return None
        except _CorruptEntry as e:
            self._count("corrupt")
            log.warn(f"remote cache entry for {label} is corrupt ({e}); not restored, building it again")
            return None
        if blob is None:  # the record outlived its blob (a cache that evicts blobs)
            self._count("misses")
            return None
        _move_into_place(blob, dest)
        self._count("hits")
        return sha256

    def _record(self, key: str) -> tuple[str, int] | None:
        response = self._request("GET", self._ac_url(key), doing=f"reading the record of {key[:16]}")
        if response.status_code == 404:
            return None
        body = response.content[: _MAX_RECORD_BYTES + 1]
        try:
            record = json.loads(body) if len(body) <= _MAX_RECORD_BYTES else {}  # too long: no fields
            sha256, size = record["sha256"], record["size"]
            valid = isinstance(sha256, str) and len(sha256) == 64 and isinstance(size, int) and size >= 0
            int(sha256, 16)
        except (ValueError, TypeError, KeyError):
            valid = False
        if not valid:
            raise _CorruptEntry(f"its record /ac/{key} is not a valid record")
        return sha256.lower(), size

    def _fetch_blob(self, sha256: str, size: int, filename: str) -> Path | None:
        pin = Pin(
            name=filename,
            version=sha256[:12],
            filename=filename,
            size=size,
            sha256=sha256,
            urls=(self._cas_url(sha256),),
        )
        try:
            return self._fetcher().fetch(pin)
        except FetchError as e:
            failure = _classify_fetch_failure(e)
        if failure is None:
            return None
        raise failure

    # -- writing ----------------------------------------------------------------------------------------

    def upload(self, key: str, entry: Path, sha256: str | None = None, *, unless_present: bool = False) -> bool:
        """Upload `entry` as the entry for `key` (its blob, then its record); True if anything was sent.

        Read-only mode never uploads. ``unless_present`` first asks (HEAD) whether the key is known, for
        entries this build did not make itself (restored from the local cache, or ``--cache-populate``).
        """
        if not self.writable or not self.enabled:
            return False
        digest = sha256 or sha256_file(entry)
        size = entry.stat().st_size
        try:
            if unless_present and self._exists(self._ac_url(key)):
                return False
            self._put_file(self._cas_url(digest), entry, size)
            record = json.dumps({"format": RECORD_FORMAT, "sha256": digest, "size": size}, sort_keys=True)
            self._put_bytes(self._ac_url(key), record.encode() + b"\n")
        except (_Unusable, _SlowUpload) as e:
            self._switch_off(str(e))
            return False
        self._count("uploaded")
        return True

    def _exists(self, url: str) -> bool:
        return self._request("HEAD", url, doing="asking whether an entry exists").status_code == 200

    def _put_bytes(self, url: str, data: bytes) -> None:
        self._request("PUT", url, doing="uploading a record", data=data)

    def _put_file(self, url: str, path: Path, size: int) -> None:
        deadline = time.monotonic() + self.policy.deadline(size)
        session = self._session()
        last: _Transient | None = None
        tries = 0
        doing = f"uploading {path.name} (remote cache)"
        for attempt in retry.attempts(self.policy.attempts, self.policy.backoff_seconds, doing):
            if time.monotonic() >= deadline:
                break
            try:
                _watched(lambda: self._send_file(session, url, path, size, deadline), f"uploading {path.name}")
                return
            except _Transient as e:
                last = e
                tries = attempt + 1
        why = last or "its deadline passed"
        raise _Unusable(f"keeps failing ({why}; gave up uploading {path.name} after {tries} attempts)")

    def _send_file(self, session: requests.Session, url: str, path: Path, size: int, deadline: float) -> None:
        with open(path, "rb") as f:
            body = _Upload(f, size, deadline, self.policy, f"uploading {path.name} to the remote cache")
            self._request_once("PUT", url, body, session)

    # -- HTTP -------------------------------------------------------------------------------------------

    def _request(self, method: str, url: str, *, doing: str, data: bytes | None = None) -> requests.Response:
        """One small request with bounded retries; 200/201/204 (and 404 for GET and HEAD) come back, anything
        else raises _Unusable."""
        last: _Transient | None = None
        for _attempt in retry.attempts(self.policy.attempts, self.policy.backoff_seconds, f"{doing} (remote cache)"):
            try:
                return self._request_once(method, url, data)
            except _Transient as e:
                last = e
        raise _Unusable(f"keeps failing ({last}; {doing}; gave up after {self.policy.attempts} attempts)")

    def _request_once(
        self, method: str, url: str, data: bytes | _Upload | None, session: requests.Session | None = None
    ) -> requests.Response:
        headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
        if isinstance(data, _Upload):
            headers["Content-Length"] = str(len(data))
        timeout = (self.policy.connect_timeout, self.policy.stall_seconds)
        try:
            response = (session or self._session()).request(method, url, data=data, headers=headers, timeout=timeout)
        except HermeticError:
            raise  # a stop request (or a too slow upload) while sending the body
        except requests.exceptions.ConnectTimeout:
            raise _Unusable(f"is unreachable (no connection within {self.policy.connect_timeout:g}s)") from None
        except requests.exceptions.ConnectionError as e:
            cause = _cause(e)
            if isinstance(cause, HermeticError):
                raise cause from None
            if "Connection refused" in str(e):
                raise _Unusable("is unreachable (connection refused)") from None
            if "Name or service not known" in str(e) or "resolution" in str(e).lower():
                raise _Unusable("is unreachable (host not found)") from None
            raise _Transient(f"connection failed: {_reason(e)}") from None
        except requests.exceptions.Timeout:
            raise _Transient(f"no answer within {self.policy.stall_seconds:g}s") from None
        except requests.exceptions.RequestException as e:
            raise _Unusable(f"failed ({type(e).__name__}: {_reason(e)})") from None
        status = response.status_code
        if status in (200, 201, 204) or (status == 404 and method in ("GET", "HEAD")):
            return response
        if status >= 500 or status == 429:
            raise _Transient(f"HTTP {status}")
        if status in (401, 403):
            raise _Unusable(f"refused access (HTTP {status}); check {self._credentials_variable}")
        raise _Unusable(f"answered HTTP {status} to {method} {urllib.parse.urlsplit(url).path}")

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            credentials = self._credentials
            if credentials and ":" in credentials:
                user, _, password = credentials.partition(":")
                session.auth = (user, password)
            elif credentials:
                session.headers["Authorization"] = f"Bearer {credentials}"
            self._local.session = session
        return session

    def _fetcher(self) -> Fetcher:
        fetcher = getattr(self._local, "fetcher", None)
        if fetcher is None:
            fetcher = Fetcher(ContentStore(self.staging), policy=self.policy.fetch_policy(), session=self._session())
            self._local.fetcher = fetcher
        return fetcher

    def _ac_url(self, key: str) -> str:
        return f"{self.url}/ac/{key}"

    def _cas_url(self, sha256: str) -> str:
        return f"{self.url}/cas/{sha256}"

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _switch_off(self, reason: str) -> None:
        with self._lock:
            if not self._enabled:
                return
            self._enabled = False
        log.warn(f"remote cache {self.url} {reason}; going on without it (local cache and local builds)")


class _CorruptEntry(Exception):
    """The remote entry exists but is not what its record says."""


def _watched(work: Callable[[], None], doing: str) -> None:
    """Run `work` on its own thread and wait for it, raising what it raised; a stop request ends the wait at
    once (a send blocked on a stalled server cannot be interrupted otherwise; the thread, a daemon, is left
    to its socket timeout)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as e:  # handed to the waiting thread
            failure.append(e)

    thread = threading.Thread(target=run, name=doing, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(cancel.POLL_SECONDS)
        cancel.check(f"{doing} (remote cache)")
    if failure:
        raise failure[0]


class _Upload:
    """A file body for PUT that honours stop requests, the transfer's deadline and the minimum rate."""

    def __init__(self, source: BinaryIO, size: int, deadline: float, policy: RemotePolicy, doing: str) -> None:
        self._source = source
        self._size = size
        self._deadline = deadline
        self._policy = policy
        self._doing = doing
        self._began = time.monotonic()
        self._sent = 0

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes:
        """The next piece of the file (urllib3 calls this until it returns nothing)."""
        cancel.check(self._doing)
        now = time.monotonic()
        if now >= self._deadline:
            raise _SlowUpload(f"not sent within its deadline ({self._sent} of {self._size} bytes)")
        elapsed = now - self._began
        if elapsed >= self._policy.stall_seconds and self._sent / elapsed < self._policy.min_rate:
            raise _SlowUpload(f"too slow: {self._sent / elapsed / 1024:.0f} KiB/s, below the minimum")
        chunk = self._source.read(_CHUNK if amount is None or amount < 0 else min(amount, _CHUNK))
        self._sent += len(chunk)
        return chunk


class _SlowUpload(HermeticError):
    """An upload that would not finish in time; turned into _Unusable by the caller."""


def _classify_fetch_failure(error: FetchError) -> Exception | None:
    """What a failed blob download means for the cache: an evicted blob (None: a miss), a corrupt blob (wrong
    size or digest: report, rebuild), or a cache that fails (switch it off). The fetcher says which in its
    message (the reasons of hermetic.fetch and hermetic.transfer: "HTTP 404", "sha256 mismatch", "wrong size",
    "server announces ...")."""
    text = error.message
    if "HTTP 404" in text or "HTTP 410" in text:
        return None
    for sign in ("sha256 mismatch", "wrong size", "server announces", "more than the pinned", "truncated"):
        if sign in text:
            return _CorruptEntry(text.split(": ", 1)[-1][:200])
    return _Unusable(f"failed while fetching a blob ({text[:200]})")


def _move_into_place(blob: Path, dest: Path) -> None:
    """Rename the verified blob to `dest` (same file system); another build may have moved it already."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(blob, dest)
    except FileNotFoundError:
        if not dest.is_file():
            raise


def _cause(error: BaseException) -> BaseException | None:
    """The innermost exception behind a requests error (urllib3 wraps what a body's read() raised)."""
    seen = error
    while seen.__context__ is not None and seen.__context__ is not seen:
        seen = seen.__context__
    return seen if seen is not error else None


def _reason(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 160 else text[:157] + "..."
