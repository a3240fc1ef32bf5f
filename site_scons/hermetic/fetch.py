"""The one fetcher every pinned blob goes through.

Order of lookup: the content-addressed cache (:mod:`hermetic.content_store`, verified on every use), the
offline distdirs, the user's mirrors, then the pin's own URLs (upstream first, Debian archive last). Every
download is assembled in the entry's staging file (:mod:`hermetic.transfer`) and only stored once its size
and sha256 match; an interrupted download is resumed from its staging file by the next run (HTTP Range).

Every URL is bounded (:class:`FetchPolicy`): a total deadline, a minimum transfer rate and a stall limit,
after which the next URL is tried. A stop request (:mod:`hermetic.cancel`) ends a fetch within a fraction of
a second, keeping what arrived for the next run.
"""

from __future__ import annotations

import contextlib
import string
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from hermetic import cancel, log, redact, retry
from hermetic.content_store import ContentStore, cache_error, remove_entry, sha256_file, verify_file
from hermetic.errors import ConfigError, FetchError, IntegrityError
from hermetic.pins import Pin
from hermetic.transfer import HttpTransfer, PermanentFailure, RateWindow, TransientFailure, copy_into_staging

# Fields a ``mirrors=`` template may use, e.g. ``https://mirror.example/{sha256}``.
MIRROR_FIELDS = ("sha256", "filename", "name")
_MIRROR_SCHEMES = ("http", "https", "file")


def mirror_template_problem(template: str) -> str | None:
    """None if `template` is a usable ``mirrors=`` entry, else what is wrong with it (one phrase)."""
    if not template.isprintable() or any(c.isspace() for c in template):
        return "is not a URL: it holds a space or a control character (percent-encode it, e.g. %20)"
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
    try:
        parts = urllib.parse.urlparse(url)
        _ = parts.port  # parsing the port is the check: a bad one raises
    except ValueError as e:
        return f"is not a URL ({e})"
    if parts.scheme not in _MIRROR_SCHEMES:
        return f"has scheme {parts.scheme or '(none)'}:, not one of {', '.join(_MIRROR_SCHEMES)}"
    if parts.scheme != "file" and not parts.netloc:
        return "has no host"
    return None


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
        self._active: dict[int, tuple[Pin, str, HttpTransfer | None]] = {}
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

    def _show(self, pin: Pin, url: str | None, transfer: HttpTransfer | None) -> None:
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
                    copy_into_staging(path, staged, pin)
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
            if staged.exists() and (not staged.is_file() or staged.stat().st_size > pin.size):
                remove_entry(staged)  # too long to resume, or a directory where the download belongs
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
            except (PermanentFailure, TransientFailure, IntegrityError) as e:
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
                raise PermanentFailure("no such file")
            self._show(pin, url, None)
            copy_into_staging(source, staged, pin)
            self._check_complete(staged, pin, resumed=False)
            return
        last: Exception | None = None
        doing = f"fetching {pin.filename} from {_short(url)}"
        for _attempt in retry.attempts(self.policy.attempts, self.policy.backoff_seconds, doing, deadline=deadline):
            if time.monotonic() >= deadline:
                limit = log.format_duration(self.policy.deadline(pin.size))
                raise PermanentFailure(f"{last}; then its deadline of {limit} passed")
            try:
                self._download_once(url, staged, pin, deadline)
                return
            except TransientFailure as e:
                last = e
        raise TransientFailure(f"{last} (gave up after {self.policy.attempts} attempts)")

    def _download_once(self, url: str, staged: Path, pin: Pin, deadline: float) -> None:
        policy = self.policy
        transfer = HttpTransfer(
            self.session, url, staged, pin, connect_timeout=policy.connect_timeout, stall_seconds=policy.stall_seconds
        )
        self._show(pin, url, transfer)
        transfer.start()
        try:
            self._watch(transfer, url, pin, deadline)
        finally:
            transfer.abandon()
        if transfer.error is not None:
            raise transfer.error
        self._check_complete(staged, pin, resumed=transfer.resumed)

    def _watch(self, transfer: HttpTransfer, url: str, pin: Pin, deadline: float) -> None:
        """Wait for `transfer`, ending it early on a stop request, its URL's deadline, a stall or a low rate."""
        try:
            self._watch_until_done(transfer, url, pin, deadline)
        except (PermanentFailure, TransientFailure):
            self._slow_hosts.add(_host(url))
            raise

    def _watch_until_done(self, transfer: HttpTransfer, url: str, pin: Pin, deadline: float) -> None:
        policy = self.policy
        rate = RateWindow(policy.rate_window_seconds, transfer.began)
        while True:
            transfer.join(cancel.POLL_SECONDS)
            if not transfer.is_alive():
                return
            cancel.check(f"fetching {pin.filename} from {_short(url)}")
            now = time.monotonic()
            got = f"{transfer.have + transfer.received} of {pin.size} bytes"
            if now >= deadline:
                limit = log.format_duration(policy.deadline(pin.size))
                raise PermanentFailure(f"not complete within its deadline of {limit} ({got})")
            silent = now - transfer.last_progress
            if silent >= policy.stall_seconds:
                # A server that sent something may do better on a resumed request; one that sent nothing will not.
                stalled = TransientFailure if transfer.received else PermanentFailure
                raise stalled(f"stalled: nothing received for {log.format_duration(silent)} ({got})")
            average = rate.add(now, transfer.received)
            if now - transfer.began >= policy.rate_grace_seconds and average < policy.min_rate:
                raise PermanentFailure(
                    f"too slow: {_rate(average)} over the last {log.format_duration(rate.span(now))}, "
                    f"below the minimum {_rate(policy.min_rate)} ({got})"
                )

    @staticmethod
    def _check_complete(staged: Path, pin: Pin, *, resumed: bool) -> None:
        size = staged.stat().st_size
        if size < pin.size:
            raise TransientFailure(f"truncated: got {size} of {pin.size} bytes")
        if size > pin.size:
            raise PermanentFailure(f"wrong size: {size} bytes, pinned {pin.size}")
        actual = sha256_file(staged)
        if actual != pin.sha256:
            staged.write_bytes(b"")
            if resumed:  # the bytes kept from before may be what is wrong: start again from nothing
                raise TransientFailure(f"sha256 mismatch after resuming: got {actual}, pinned {pin.sha256}")
            raise PermanentFailure(f"sha256 mismatch: got {actual}, pinned {pin.sha256}")


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


def _host(url: str) -> str:
    return redact.host(url)


def _short(url: str) -> str:
    shown = redact.url(url)
    return shown if len(shown) < 100 else shown[:60] + "..." + shown[-30:]
