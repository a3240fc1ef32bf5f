"""The one fetcher every pinned blob goes through.

Order of lookup: the content-addressed cache (verified on every use), the offline distdirs, the user's
mirrors, then the pin's own URLs (upstream first, Debian archive last). Every download is written to a
staging file named after the pin's sha256, checked for size and sha256, and only then renamed into the
cache, so nothing half-written is ever visible there; an interrupted download is resumed from its staging
file by the next run (HTTP Range), and staging files nobody resumes are removed after a day.

Every URL is bounded (:class:`FetchPolicy`): a total deadline, a minimum transfer rate and a stall limit,
after which the next URL is tried. A stop request (:mod:`hermetic.cancel`) ends a fetch within a fraction of
a second, keeping what arrived for the next run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import string
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import requests
import urllib3.exceptions

from hermetic import cancel, log
from hermetic.errors import CacheError, ConfigError, FetchError, IntegrityError
from hermetic.pins import Pin

_CHUNK = 1 << 20
# Largest piece taken from the network at once; a read returns whatever has arrived, up to this.
_NET_CHUNK = 64 * 1024

# Staging files nobody resumed for this long are removed (their pin was bumped, or nobody builds it any more).
STALE_SECONDS = 24 * 3600

# Fields a ``mirrors=`` template may use, e.g. ``https://mirror.example/{sha256}``.
MIRROR_FIELDS = ("sha256", "filename", "name")
_MIRROR_SCHEMES = ("http", "https", "file")

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, pin: Pin) -> str | None:
    """None if `path` has the pin's size and sha256, else a short description of the mismatch."""
    size = path.stat().st_size
    if size != pin.size:
        return f"size {size} bytes, expected {pin.size}"
    actual = sha256_file(path)
    if actual != pin.sha256:
        return f"sha256 {actual}, expected {pin.sha256}"
    return None


def mirror_template_problem(template: str) -> str | None:
    """None if `template` is a usable ``mirrors=`` entry, else what is wrong with it (one phrase)."""
    try:
        fields = [field for _text, field, _spec, _conv in string.Formatter().parse(template) if field is not None]
    except ValueError as e:
        return f"is not a valid template ({e})"
    for field in fields:
        if field not in MIRROR_FIELDS:
            return f"has an unknown field {{{field}}}"
    if not {"sha256", "filename"} & set(fields):
        return "names no file: it needs {sha256} or {filename}"
    try:
        url = template.format(**{field: "x" for field in MIRROR_FIELDS})
    except (ValueError, KeyError, IndexError, AttributeError) as e:
        return f"is not a valid template ({e})"
    parts = urllib.parse.urlparse(url)
    if parts.scheme not in _MIRROR_SCHEMES:
        return f"has scheme {parts.scheme or '(none)'}:, not one of {', '.join(_MIRROR_SCHEMES)}"
    if parts.scheme != "file" and not parts.netloc:
        return "has no host"
    return None


def cache_error(error: OSError, directory: Path, doing: str) -> CacheError:
    """The one-line error for a failed write into the cache: full, not writable, or another I/O error."""
    reason = error.strerror or str(error)
    if error.errno in _DISK_FULL:
        return CacheError(
            f"the download cache {directory} is full ({reason}) while {doing}",
            hint="free space there, or point cache_root= at a disk with room",
        )
    if error.errno in _NOT_WRITABLE:
        return CacheError(
            f"the download cache {directory} is not writable ({reason}) while {doing}",
            hint="make it writable, or point cache_root= at a writable directory",
        )
    return CacheError(
        f"cannot write to the download cache {directory} ({reason}) while {doing}",
        hint="check that disk, or point cache_root= at another directory",
    )


class _Transient(Exception):
    """A failure worth retrying on the same URL (reset, truncation, 5xx, a stall after progress)."""


class _Permanent(Exception):
    """A failure that retrying the same URL will not fix (404, DNS, wrong bytes, too slow, deadline)."""


@dataclass(frozen=True)
class FetchPolicy:
    """How hard to try each URL, and when to give up on it and try the next one.

    A URL is abandoned when its total time (every attempt and pause) passes :meth:`deadline`, when nothing
    arrives for ``stall_seconds`` (headers or body), or when, after ``rate_grace_seconds``, the bytes received
    over the last ``rate_window_seconds`` average less than ``min_rate`` bytes per second. Transient failures
    (a dropped connection, HTTP 5xx, a stall after some progress) are retried up to ``attempts`` times with
    exponential backoff, resuming where the previous attempt stopped.
    """

    attempts: int = 4
    backoff_seconds: float = 1.0
    connect_timeout: float = 10.0
    stall_seconds: float = 20.0
    min_rate: float = 16 * 1024
    rate_window_seconds: float = 30.0
    rate_grace_seconds: float = 30.0
    deadline_floor_seconds: float = 120.0

    def deadline(self, size: int) -> float:
        """Seconds one URL may take in all for a file of `size` bytes: a floor plus the time at the minimum rate."""
        return self.deadline_floor_seconds + size / self.min_rate


@dataclass(frozen=True)
class FetchProgress:
    """One fetch under way: (str) file name, (str) URL ("" while waiting for another build fetching the same
    file), (int) bytes so far and (int) bytes in all."""

    filename: str
    url: str
    received: int
    size: int

    def describe(self) -> str:
        """E.g. ``openssl-3.5.7.tar.gz from host.example: 12.3 of 52.1 MB``."""
        if not self.url:
            return f"{self.filename}: waiting for another build that is fetching it"
        return f"{self.filename} from {_host(self.url)}: {_amount(self.received, self.size)}"


class ContentStore:
    """A content-addressed store of verified files: ``<root>/sha256/<ab>/<digest>``.

    Entries are read-only, written by rename from ``<root>/tmp/<digest>.part`` (the staging file of a
    download, kept when it is interrupted so the next run resumes it), and re-verified when used, so a
    corrupt entry is detected, removed and fetched again. ``<root>/locks`` holds one lock file per entry.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._swept = False

    def path_for(self, sha256: str) -> Path:
        """Where the entry for `sha256` lives (whether or not it exists)."""
        return self.root / "sha256" / sha256[:2] / sha256

    def staging_path(self, sha256: str) -> Path:
        """Where a download of `sha256` is assembled; only touch it while holding :meth:`locked` for it."""
        return self.root / "tmp" / f"{sha256}.part"

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Serialize work on one entry across processes (two builds sharing the cache); a stop request ends
        the wait."""
        lock_dir = self.root / "locks"
        with contextlib.ExitStack() as stack:
            try:
                lock_dir.mkdir(parents=True, exist_ok=True)
                handle = stack.enter_context(open(lock_dir / f"{key}.lock", "a"))
            except OSError as e:
                raise cache_error(e, lock_dir, f"creating the lock file {key}.lock") from None
            while not _try_lock(handle):
                cancel.check(f"waiting for another build to finish with {key}")
                time.sleep(cancel.POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def lookup(self, pin: Pin) -> Path | None:
        """The verified entry for `pin`, or None; a corrupt entry is removed with a warning."""
        path = self.path_for(pin.sha256)
        if not path.exists():
            return None
        problem = verify_file(path, pin)
        if problem is None:
            return path
        log.warn(f"cache entry {path} for {pin.filename} is corrupt ({problem}); removed, fetching again")
        try:
            path.unlink()
        except OSError as e:
            raise cache_error(e, path.parent, f"removing the corrupt entry for {pin.filename}") from None
        return None

    def commit(self, staged: Path, pin: Pin) -> Path:
        """Verify `staged` against `pin` and atomically move it into the store."""
        problem = verify_file(staged, pin)
        if problem is not None:
            raise IntegrityError(f"{pin.filename}: {problem}")
        final = self.path_for(pin.sha256)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(staged, "rb") as f:
                os.fsync(f.fileno())
            staged.chmod(0o444)
            os.replace(staged, final)
        except OSError as e:
            raise cache_error(e, final.parent, f"storing {pin.filename}") from None
        return final

    def sweep_staging(self) -> None:
        """Remove leftovers in ``tmp/`` that nobody will resume: files untouched for :data:`STALE_SECONDS`
        whose entry is not locked (being fetched) right now. Best effort, once per store object."""
        if self._swept:
            return
        self._swept = True
        with contextlib.suppress(OSError):
            for path in list((self.root / "tmp").iterdir()):
                with contextlib.suppress(OSError):
                    self._remove_if_stale(path)

    def _remove_if_stale(self, path: Path) -> None:
        if not _stale(path):
            return
        if not path.name.endswith(".part"):
            path.unlink()  # left by an older fetcher (``part-*``): no lock tells, only its age
            return
        # Removed while holding its lock, so no build can be resuming it at that moment.
        with open(self.root / "locks" / f"{path.name.removesuffix('.part')}.lock", "a") as handle:
            if not _try_lock(handle):
                return
            try:
                if _stale(path):
                    path.unlink()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _stale(path: Path) -> bool:
    return path.stat().st_mtime < time.time() - STALE_SECONDS


def _try_lock(handle: IO[Any]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Fetcher:
    """Obtains pinned files into a :class:`ContentStore`.

    :meth:`status` tells what it is doing right now (file, host, bytes so far of the total), for a
    heartbeat line; :meth:`progress` gives the same as records. Both are safe to call from any thread.
    """

    def __init__(
        self,
        store: ContentStore,
        *,
        distdirs: Sequence[Path] = (),
        mirrors: Sequence[str] = (),
        resolve: Callable[[str], list[str]] = lambda url: [url],
        policy: FetchPolicy = FetchPolicy(),
        session: requests.Session | None = None,
    ) -> None:
        for template in mirrors:
            problem = mirror_template_problem(template)
            if problem is not None:
                raise ConfigError(f"mirror {template} {problem}", hint=f"valid fields: {_field_list()}")
        self.store = store
        self.distdirs = tuple(distdirs)
        self.mirrors = tuple(mirrors)
        self.resolve = resolve
        self.policy = policy
        self.session = session or requests.Session()
        self._active: dict[int, tuple[Pin, str, _Transfer | None]] = {}
        self._active_lock = threading.Lock()
        # Hosts that stalled, crawled or ran out of time in this process: tried last for the files that follow.
        self._slow_hosts: set[str] = set()

    def candidate_urls(self, pin: Pin) -> list[str]:
        """Every URL to try for `pin`, in order: user mirrors, then the pin's URLs expanded."""
        urls: list[str] = []
        for template in self.mirrors:
            urls.append(template.format(sha256=pin.sha256, filename=pin.filename, name=pin.name))
        for url in pin.urls:
            urls.extend(self.resolve(url))
        return list(dict.fromkeys(urls))

    def fetch(self, pin: Pin) -> Path:
        """Return the path of a verified copy of `pin`, downloading it if needed."""
        cached = self.store.lookup(pin)
        if cached is not None:
            return cached
        self._show(pin, "", None)
        try:
            with self.store.locked(pin.sha256):
                cached = self.store.lookup(pin)  # another process may have finished it meanwhile
                if cached is not None:
                    return cached
                self.store.sweep_staging()
                return self._obtain(pin)
        finally:
            self._show(pin, None, None)

    def progress(self) -> list[FetchProgress]:
        """The fetches under way (one per thread fetching), with the bytes received so far."""
        with self._active_lock:
            active = list(self._active.values())
        return [
            FetchProgress(pin.filename, url, transfer.have + transfer.received if transfer else 0, pin.size)
            for pin, url, transfer in active
        ]

    def status(self) -> str:
        """What is being fetched right now, e.g. ``x.tar.gz from host.example: 3.1 of 27.0 MB``; "" when idle."""
        return "; ".join(p.describe() for p in self.progress())

    def _show(self, pin: Pin, url: str | None, transfer: _Transfer | None) -> None:
        with self._active_lock:
            if url is None:
                self._active.pop(threading.get_ident(), None)
            else:
                self._active[threading.get_ident()] = (pin, url, transfer)

    def _obtain(self, pin: Pin) -> Path:
        staged = self._prepare_staging(pin)
        if staged.exists() and verify_file(staged, pin) is None:
            return self.store.commit(staged, pin)  # a previous run got every byte but stopped before storing
        failures: list[str] = []
        try:
            for path in self._distdir_candidates(pin):
                problem = verify_file(path, pin)
                if problem is None:
                    self._show(pin, f"file://{path}", None)
                    _copy_into(path, staged, pin)
                    return self.store.commit(staged, pin)
                failures.append(f"{path}: {problem}")
            final = self._download_any(pin, staged, failures)
            if final is not None:
                return final
        finally:
            with contextlib.suppress(OSError):
                if staged.stat().st_size == 0:
                    staged.unlink()  # nothing to resume
        raise self._failure(pin, staged, failures)

    def _prepare_staging(self, pin: Pin) -> Path:
        staged = self.store.staging_path(pin.sha256)
        try:
            staged.parent.mkdir(parents=True, exist_ok=True)
            if staged.exists() and staged.stat().st_size > pin.size:
                staged.unlink()
        except OSError as e:
            raise cache_error(e, staged.parent, f"preparing to fetch {pin.filename}") from None
        return staged

    def _download_any(self, pin: Pin, staged: Path, failures: list[str]) -> Path | None:
        urls = sorted(self.candidate_urls(pin), key=lambda url: _host(url) in self._slow_hosts)
        for index, url in enumerate(urls):
            cancel.check(f"fetching {pin.filename}")
            started = time.monotonic()
            try:
                self._download(url, staged, pin, deadline=started + self.policy.deadline(pin.size))
                final = self.store.commit(staged, pin)
            except (_Permanent, _Transient, IntegrityError) as e:
                failures.append(f"{_short(url)}: {e}")
                if index + 1 < len(urls):
                    log.warn(f"{pin.filename}: {_short(url)} failed ({e}); trying {_host(urls[index + 1])}")
                continue
            elapsed = log.format_duration(time.monotonic() - started)
            log.say(f"  fetched {pin.filename} ({pin.size / 1e6:.1f} MB) from {_host(url)} in {elapsed}")
            return final
        if not urls and not failures:
            failures.append("no URL can be used (no Debian archive in apt configuration?)")
        return None

    def _failure(self, pin: Pin, staged: Path, failures: list[str]) -> FetchError:
        kept = staged.stat().st_size if staged.exists() else 0
        resumable = f"; {kept} of {pin.size} bytes kept in {staged} and resumed next time" if kept else ""
        where = ", ".join(str(d) for d in self.distdirs) or "a directory passed as distdir=DIR"
        return FetchError(
            f"cannot fetch {pin.filename} ({pin.name} {pin.version}, {pin.size} bytes, sha256 {pin.sha256}): "
            + "; ".join(failures)
            + resumable,
            hint=f"download it elsewhere and put it in {where}",
        )

    def _distdir_candidates(self, pin: Pin) -> list[Path]:
        names = [pin.filename, pin.sha256]
        for url in pin.urls:
            names.append(url.rsplit("/", 1)[-1])
        found = []
        for directory in self.distdirs:
            for name in dict.fromkeys(names):
                path = directory / name
                if path.is_file():
                    found.append(path)
        return found

    def _download(self, url: str, staged: Path, pin: Pin, deadline: float) -> None:
        """Download `url` into `staged`, retrying transient failures with exponential backoff until `deadline`."""
        if url.startswith("file://"):
            source = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
            if not source.is_file():
                raise _Permanent("no such file")
            self._show(pin, url, None)
            _copy_into(source, staged, pin)
            self._check_complete(staged, pin, resumed=False)
            return
        last: Exception | None = None
        for attempt in range(self.policy.attempts):
            if attempt:
                pause = self.policy.backoff_seconds * 2 ** (attempt - 1)
                cancel.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                cancel.check(f"fetching {pin.filename} from {url}")
            if time.monotonic() >= deadline:
                limit = log.format_duration(self.policy.deadline(pin.size))
                raise _Permanent(f"{last}; then its deadline of {limit} passed")
            try:
                self._download_once(url, staged, pin, deadline)
                return
            except _Transient as e:
                last = e
        raise _Transient(f"{last} (gave up after {self.policy.attempts} attempts)")

    def _download_once(self, url: str, staged: Path, pin: Pin, deadline: float) -> None:
        transfer = _Transfer(self.session, url, staged, pin, self.policy)
        self._show(pin, url, transfer)
        transfer.start()
        try:
            self._watch(transfer, url, pin, deadline)
        finally:
            transfer.abandon()
        if transfer.error is not None:
            raise transfer.error
        self._check_complete(staged, pin, resumed=transfer.resumed)

    def _watch(self, transfer: _Transfer, url: str, pin: Pin, deadline: float) -> None:
        """Wait for `transfer`, ending it early on a stop request, its URL's deadline, a stall or a low rate."""
        try:
            self._watch_until_done(transfer, url, pin, deadline)
        except (_Permanent, _Transient):
            self._slow_hosts.add(_host(url))
            raise

    def _watch_until_done(self, transfer: _Transfer, url: str, pin: Pin, deadline: float) -> None:
        policy = self.policy
        rate = _RateWindow(policy.rate_window_seconds, transfer.began)
        while True:
            transfer.join(cancel.POLL_SECONDS)
            if not transfer.is_alive():
                return
            cancel.check(f"fetching {pin.filename} from {url}")
            now = time.monotonic()
            got = f"{transfer.have + transfer.received} of {pin.size} bytes"
            if now >= deadline:
                limit = log.format_duration(policy.deadline(pin.size))
                raise _Permanent(f"not complete within its deadline of {limit} ({got})")
            silent = now - transfer.last_progress
            if silent >= policy.stall_seconds:
                # A server that sent something may do better on a resumed request; one that sent nothing will not.
                stalled = _Transient if transfer.received else _Permanent
                raise stalled(f"stalled: nothing received for {log.format_duration(silent)} ({got})")
            average = rate.add(now, transfer.received)
            if now - transfer.began >= policy.rate_grace_seconds and average < policy.min_rate:
                raise _Permanent(
                    f"too slow: {_rate(average)} over the last {log.format_duration(rate.span(now))}, "
                    f"below the minimum {_rate(policy.min_rate)} ({got})"
                )

    @staticmethod
    def _check_complete(staged: Path, pin: Pin, *, resumed: bool) -> None:
        size = staged.stat().st_size
        if size < pin.size:
            raise _Transient(f"truncated: got {size} of {pin.size} bytes")
        if size > pin.size:
            raise _Permanent(f"wrong size: {size} bytes, pinned {pin.size}")
        actual = sha256_file(staged)
        if actual != pin.sha256:
            staged.write_bytes(b"")
            if resumed:  # the bytes kept from before may be what is wrong: start again from nothing
                raise _Transient(f"sha256 mismatch after resuming: got {actual}, pinned {pin.sha256}")
            raise _Permanent(f"sha256 mismatch: got {actual}, pinned {pin.sha256}")


class _RateWindow:
    """The average transfer rate over a sliding window of recent samples."""

    def __init__(self, window: float, began: float) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque([(began, 0)])

    def add(self, now: float, received: int) -> float:
        """Record that `received` bytes had arrived at `now`; return bytes per second over the window."""
        self._samples.append((now, received))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self._window:
            self._samples.popleft()
        start, base = self._samples[0]
        return (received - base) / max(now - start, 1e-6)

    def span(self, now: float) -> float:
        """How many seconds the current average covers."""
        return now - self._samples[0][0]


class _Transfer(threading.Thread):
    """One HTTP request into a staging file, on its own thread so the fetching thread can watch it and walk
    away from it at any moment (a blocked socket read cannot be interrupted otherwise).

    Once :meth:`abandon` returns, the thread writes nothing more, so the staging file can be reused at once.
    """

    def __init__(self, session: requests.Session, url: str, staged: Path, pin: Pin, policy: FetchPolicy) -> None:
        super().__init__(name=f"fetch {pin.filename}", daemon=True)
        self.url = url
        self.staged = staged
        self.pin = pin
        self.began = self.last_progress = time.monotonic()
        self.have = staged.stat().st_size if staged.exists() else 0
        self.received = 0
        self.resumed = False
        self.error: Exception | None = None
        self._session = session
        self._policy = policy
        self._abandoned = False
        self._response: requests.Response | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        """Do the request; any failure is kept in :attr:`error` for the watching thread."""
        try:
            self._receive()
        except Exception as e:  # handed over to the fetching thread, which decides what it means
            self.error = e

    def abandon(self) -> None:
        """Stop writing, and wake the thread if it is blocked on the network."""
        with self._lock:
            self._abandoned = True
            response = self._response
        if response is not None:
            # Ends a read blocked on the socket at once; it may already be closed or back in the pool.
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                response.raw.shutdown()

    def _receive(self) -> None:
        pin = self.pin
        headers = {"Accept-Encoding": "identity"}  # the pinned bytes, never a recompressed form of them
        if 0 < self.have < pin.size:
            headers["Range"] = f"bytes={self.have}-"
        response = self._request(headers)
        with response:
            with self._lock:
                if self._abandoned:
                    return
                self._response = response
            expected = self._expected_length(response, headers)
            with self._open_staging() as out:
                while chunk := self._read(response):
                    self.last_progress = time.monotonic()
                    if self.received + len(chunk) > expected:
                        raise _Permanent(f"more than the pinned {pin.size} bytes")
                    with self._lock:
                        if self._abandoned:
                            return
                        self._write(out, chunk)
                        self.received += len(chunk)

    def _request(self, headers: dict[str, str]) -> requests.Response:
        # The socket's own timeout only ends a thread left behind; the watching thread judges stalls.
        timeout = (self._policy.connect_timeout, self._policy.stall_seconds + 5)
        try:
            return self._session.get(self.url, stream=True, headers=headers, timeout=timeout)
        except requests.exceptions.ConnectTimeout:
            raise _Permanent(f"no connection within {self._policy.connect_timeout:g}s") from None
        except requests.exceptions.ConnectionError as e:
            if _is_name_resolution_failure(e):
                raise _Permanent("host not found") from None
            if "Connection refused" in str(e):
                raise _Permanent("connection refused") from None
            raise _Transient(f"connection failed: {_reason(e)}") from None
        except requests.exceptions.Timeout:
            raise _Transient("timed out waiting for an answer") from None
        except requests.exceptions.TooManyRedirects:
            raise _Permanent("redirect loop (too many redirects)") from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ValueError) as e:
            raise _Permanent(f"{type(e).__name__}: {_reason(e)}") from None

    def _expected_length(self, response: requests.Response, headers: dict[str, str]) -> int:
        """How many bytes this response must bring; sets :attr:`resumed` when it continues the staging file."""
        status = response.status_code
        if status in (404, 410, 403, 401):
            raise _Permanent(f"HTTP {status}")
        if status >= 500 or status == 429:
            raise _Transient(f"HTTP {status}")
        if status not in (200, 206) or (status == 206 and "Range" not in headers):
            raise _Permanent(f"HTTP {status}")
        if status == 206:
            content_range = response.headers.get("Content-Range", f"bytes {self.have}-")
            if not content_range.startswith(f"bytes {self.have}-"):
                raise _Permanent(f"asked for bytes from {self.have}, got {content_range}")
        self.resumed = status == 206
        if not self.resumed:
            self.have = 0
        expected = self.pin.size - self.have
        announced = response.headers.get("Content-Length")
        if announced is not None and announced.isascii() and announced.isdigit() and int(announced) != expected:
            raise _Permanent(f"server announces {announced} bytes, pinned size is {self.pin.size}")
        return expected

    @contextlib.contextmanager
    def _open_staging(self) -> Iterator[BinaryIO]:
        with contextlib.ExitStack() as stack:
            with self._lock:  # not after abandon(): opening with "wb" would truncate what the next attempt resumes
                if self._abandoned:
                    raise _Transient("abandoned")
                mode = "ab" if self.resumed else "wb"
                out = stack.enter_context(_open_in_cache(self.staged, mode, f"fetching {self.pin.filename}"))
            yield out

    def _read(self, response: requests.Response) -> bytes:
        try:
            return response.raw.read1(_NET_CHUNK, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as e:
            got = self.have + self.received
            raise _Transient(f"transfer interrupted after {got} bytes: {_reason(e)}") from None

    def _write(self, out: BinaryIO, chunk: bytes) -> None:
        try:
            _write_all(out, chunk)
        except OSError as e:
            raise cache_error(e, self.staged.parent, f"fetching {self.pin.filename}") from None


@contextlib.contextmanager
def _open_in_cache(path: Path, mode: str, doing: str) -> Iterator[BinaryIO]:
    """Open a file of the cache for writing, unbuffered so that once a write returns its bytes are in the file;
    a failure to open it is a CacheError naming its directory."""
    with contextlib.ExitStack() as stack:
        try:
            out = stack.enter_context(open(path, mode, buffering=0))
        except OSError as e:
            raise cache_error(e, path.parent, doing) from None
        yield out


def _write_all(out: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = out.write(view)
        if not written:
            raise OSError(errno.EIO, "a write stored nothing")
        view = view[written:]


def _copy_into(source: Path, staged: Path, pin: Pin) -> None:
    """Copy a local file into the staging file, telling a full or unwritable cache from an unreadable source."""
    with contextlib.ExitStack() as stack:
        try:
            reader = stack.enter_context(open(source, "rb"))
        except OSError as e:
            raise _Permanent(f"cannot read {source}: {e.strerror}") from None
        out = stack.enter_context(_open_in_cache(staged, "wb", f"copying {pin.filename}"))
        while True:
            cancel.check(f"copying {pin.filename} from {source}")
            try:
                chunk = reader.read(_CHUNK)
            except OSError as e:
                raise _Permanent(f"cannot read {source}: {e.strerror}") from None
            if not chunk:
                return
            try:
                _write_all(out, chunk)
            except OSError as e:
                raise cache_error(e, staged.parent, f"copying {pin.filename}") from None


def _field_list() -> str:
    return ", ".join(f"{{{field}}}" for field in MIRROR_FIELDS)


def _amount(received: int, size: int) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{received / scale:.1f} of {size / scale:.1f} {unit}"
    return f"{received} of {size} bytes"


def _rate(bytes_per_second: float) -> str:
    if bytes_per_second < 1024:
        return f"{bytes_per_second:.0f} B/s"
    return f"{bytes_per_second / 1024:.1f} KiB/s"


def _is_name_resolution_failure(error: Exception) -> bool:
    text = str(error)
    return (
        "Name or service not known" in text
        or "Temporary failure in name resolution" in text
        or ("NameResolutionError" in text)
    )


def _reason(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 120 else text[:117] + "..."


def _host(url: str) -> str:
    return urllib.parse.urlparse(url).netloc or url


def _short(url: str) -> str:
    return url if len(url) < 100 else url[:60] + "..." + url[-30:]
