"""Moving the bytes of one source into a staging file of the download cache.

An HTTP request runs on its own thread (:class:`HttpTransfer`), so the fetching thread can watch it and walk
away at any moment; it resumes a staging file with a Range request and takes only the pinned bytes. A local
file (a distdir, a ``file://`` URL) is copied by :func:`copy_into_staging`. Every failure is one of two kinds:
worth another attempt on the same URL (:class:`TransientFailure`) or not (:class:`PermanentFailure`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import requests
import urllib3.exceptions

from hermetic import cancel, redact
from hermetic.content_store import cache_error, open_in_cache, write_all
from hermetic.pins import Pin

_CHUNK = 1 << 20
# Largest piece taken from the network at once; a read returns whatever has arrived, up to this.
_NET_CHUNK = 64 * 1024


class TransientFailure(Exception):
    """A failure worth retrying on the same URL (reset, truncation, 5xx, a stall after progress)."""


class PermanentFailure(Exception):
    """A failure that retrying the same URL will not fix (404, DNS, wrong bytes, too slow, deadline)."""


class RateWindow:
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


class HttpTransfer(threading.Thread):
    """One HTTP request into a staging file, on its own thread so the fetching thread can watch it and walk
    away from it at any moment (a blocked socket read cannot be interrupted otherwise).

    Once :meth:`abandon` returns, the thread writes nothing more, so the staging file can be reused at once.
    """

    def __init__(
        self,
        session: requests.Session,
        url: str,
        staged: Path,
        pin: Pin,
        *,
        connect_timeout: float,
        stall_seconds: float,
    ) -> None:
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
        self._connect_timeout = connect_timeout
        self._stall_seconds = stall_seconds
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
                        raise PermanentFailure(f"more than the pinned {pin.size} bytes")
                    with self._lock:
                        if self._abandoned:
                            return
                        self._write(out, chunk)
                        self.received += len(chunk)

    def _request(self, headers: dict[str, str]) -> requests.Response:
        # The socket's own timeout only ends a thread left behind; the watching thread judges stalls.
        timeout = (self._connect_timeout, self._stall_seconds + 5)
        try:
            return self._session.get(self.url, stream=True, headers=headers, timeout=timeout)
        except requests.exceptions.ConnectTimeout:
            raise PermanentFailure(f"no connection within {self._connect_timeout:g}s") from None
        except requests.exceptions.ConnectionError as e:
            if _is_name_resolution_failure(e):
                raise PermanentFailure("host not found") from None
            if "Connection refused" in str(e):
                raise PermanentFailure("connection refused") from None
            raise TransientFailure(f"connection failed: {_reason(e)}") from None
        except requests.exceptions.Timeout:
            raise TransientFailure("timed out waiting for an answer") from None
        except requests.exceptions.TooManyRedirects:
            raise PermanentFailure("redirect loop (too many redirects)") from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ValueError) as e:
            raise PermanentFailure(f"{type(e).__name__}: {_reason(e)}") from None

    def _expected_length(self, response: requests.Response, headers: dict[str, str]) -> int:
        """How many bytes this response must bring; sets :attr:`resumed` when it continues the staging file."""
        status = response.status_code
        if status in (404, 410, 403, 401):
            raise PermanentFailure(f"HTTP {status}")
        if status >= 500 or status == 429:
            raise TransientFailure(f"HTTP {status}")
        if status not in (200, 206) or (status == 206 and "Range" not in headers):
            raise PermanentFailure(f"HTTP {status}")
        if status == 206:
            content_range = response.headers.get("Content-Range", f"bytes {self.have}-")
            if not content_range.startswith(f"bytes {self.have}-"):
                raise PermanentFailure(f"asked for bytes from {self.have}, got {content_range}")
        self.resumed = status == 206
        if not self.resumed:
            self.have = 0
        expected = self.pin.size - self.have
        announced = response.headers.get("Content-Length")
        if announced is not None and announced.isascii() and announced.isdigit() and int(announced) != expected:
            raise PermanentFailure(f"server announces {announced} bytes, pinned size is {self.pin.size}")
        return expected

    @contextlib.contextmanager
    def _open_staging(self) -> Iterator[BinaryIO]:
        with contextlib.ExitStack() as stack:
            with self._lock:  # not after abandon(): opening with "wb" would truncate what the next attempt resumes
                if self._abandoned:
                    raise TransientFailure("abandoned")
                mode = "ab" if self.resumed else "wb"
                out = stack.enter_context(open_in_cache(self.staged, mode, f"fetching {self.pin.filename}"))
            yield out

    def _read(self, response: requests.Response) -> bytes:
        try:
            return response.raw.read1(_NET_CHUNK, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as e:
            got = self.have + self.received
            raise TransientFailure(f"transfer interrupted after {got} bytes: {_reason(e)}") from None

    def _write(self, out: BinaryIO, chunk: bytes) -> None:
        try:
            write_all(out, chunk)
        except OSError as e:
            raise cache_error(e, self.staged.parent, f"fetching {self.pin.filename}") from None


def copy_into_staging(source: Path, staged: Path, pin: Pin) -> None:
    """Copy a local file into the staging file, telling a full or unwritable cache from an unreadable source."""
    with contextlib.ExitStack() as stack:
        try:
            reader = stack.enter_context(open(source, "rb"))
        except OSError as e:
            raise PermanentFailure(f"cannot read {source}: {e.strerror}") from None
        out = stack.enter_context(open_in_cache(staged, "wb", f"copying {pin.filename}"))
        while True:
            cancel.check(f"copying {pin.filename} from {source}")
            try:
                chunk = reader.read(_CHUNK)
            except OSError as e:
                raise PermanentFailure(f"cannot read {source}: {e.strerror}") from None
            if not chunk:
                return
            try:
                write_all(out, chunk)
            except OSError as e:
                raise cache_error(e, staged.parent, f"copying {pin.filename}") from None


def _is_name_resolution_failure(error: Exception) -> bool:
    text = str(error)
    return (
        "Name or service not known" in text
        or "Temporary failure in name resolution" in text
        or ("NameResolutionError" in text)
    )


def _reason(error: Exception) -> str:
    text = redact.text(str(error))
    return text if len(text) < 120 else text[:117] + "..."
