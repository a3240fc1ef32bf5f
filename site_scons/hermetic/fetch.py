"""The one fetcher every pinned blob goes through.

Order of lookup: the content-addressed cache (verified on every use), the offline distdirs, the user's
mirrors, then the pin's own URLs (upstream first, Debian archive last). Every download is written to a
temporary file, checked for size and sha256, and only then renamed into the cache, so nothing half-written
is ever visible there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from hermetic import log
from hermetic.errors import FetchError, IntegrityError
from hermetic.pins import Pin

_CHUNK = 1 << 20


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


class _Transient(Exception):
    """A failure worth retrying on the same URL (timeout, reset, truncation, 5xx)."""


class _Permanent(Exception):
    """A failure that retrying the same URL will not fix (404, DNS, wrong bytes)."""


@dataclass(frozen=True)
class FetchPolicy:
    """How hard to try each URL."""

    attempts: int = 4
    backoff_seconds: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


class ContentStore:
    """A content-addressed store of verified files: ``<root>/sha256/<ab>/<digest>``.

    Entries are read-only, written by rename from ``<root>/tmp``, and re-verified when used, so a corrupt
    entry is detected, removed and fetched again.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        """Where the entry for `sha256` lives (whether or not it exists)."""
        return self.root / "sha256" / sha256[:2] / sha256

    @contextlib.contextmanager
    def locked(self, sha256: str) -> Iterator[None]:
        """Serialize work on one entry across processes (two builds sharing the cache)."""
        lock_dir = self.root / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{sha256}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
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
        path.unlink()
        return None

    @contextlib.contextmanager
    def staging_file(self) -> Iterator[Path]:
        """A fresh temporary file inside the store, deleted unless it was committed."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="part-")
        os.close(fd)
        path = Path(name)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def commit(self, staged: Path, pin: Pin) -> Path:
        """Verify `staged` against `pin` and atomically move it into the store."""
        problem = verify_file(staged, pin)
        if problem is not None:
            raise IntegrityError(f"{pin.filename}: {problem}")
        final = self.path_for(pin.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(staged, "rb") as f:
            os.fsync(f.fileno())
        staged.chmod(0o444)
        os.replace(staged, final)
        return final


class Fetcher:
    """Obtains pinned files into a :class:`ContentStore`."""

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
        self.store = store
        self.distdirs = tuple(distdirs)
        self.mirrors = tuple(mirrors)
        self.resolve = resolve
        self.policy = policy
        self.session = session or requests.Session()

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
        with self.store.locked(pin.sha256):
            cached = self.store.lookup(pin)  # another process may have finished it meanwhile
            if cached is not None:
                return cached
            return self._obtain(pin)

    def _obtain(self, pin: Pin) -> Path:
        failures: list[str] = []
        for path in self._distdir_candidates(pin):
            problem = verify_file(path, pin)
            if problem is None:
                with self.store.staging_file() as staged:
                    shutil.copyfile(path, staged)
                    return self.store.commit(staged, pin)
            failures.append(f"{path}: {problem}")
        urls = self.candidate_urls(pin)
        for url in urls:
            started = time.monotonic()
            try:
                with self.store.staging_file() as staged:
                    self._download(url, staged, pin)
                    final = self.store.commit(staged, pin)
            except (_Permanent, _Transient, IntegrityError) as e:
                failures.append(f"{_short(url)}: {e}")
                continue
            elapsed = log.format_duration(time.monotonic() - started)
            log.say(f"  fetched {pin.filename} ({pin.size / 1e6:.1f} MB) from {_host(url)} in {elapsed}")
            return final
        if not urls and not failures:
            failures.append("no URL can be used (no Debian archive in apt configuration?)")
        where = ", ".join(str(d) for d in self.distdirs) or "a directory passed as distdir=DIR"
        raise FetchError(
            f"cannot fetch {pin.filename} ({pin.name} {pin.version}, {pin.size} bytes, sha256 {pin.sha256}): "
            + "; ".join(failures),
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

    def _download(self, url: str, staged: Path, pin: Pin) -> None:
        """Download `url` into `staged`, retrying transient failures with exponential backoff."""
        if url.startswith("file://"):
            source = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
            if not source.is_file():
                raise _Permanent("no such file")
            shutil.copyfile(source, staged)
            self._check_complete(staged, pin)
            return
        last: Exception | None = None
        for attempt in range(self.policy.attempts):
            if attempt:
                time.sleep(self.policy.backoff_seconds * 2 ** (attempt - 1))
            try:
                self._download_once(url, staged, pin)
                return
            except _Transient as e:
                last = e
        raise _Transient(f"{last} (gave up after {self.policy.attempts} attempts)")

    def _download_once(self, url: str, staged: Path, pin: Pin) -> None:
        have = staged.stat().st_size
        headers = {"Range": f"bytes={have}-"} if 0 < have < pin.size else {}
        try:
            response = self.session.get(
                url,
                stream=True,
                headers=headers,
                timeout=(self.policy.connect_timeout, self.policy.read_timeout),
            )
        except requests.exceptions.ConnectionError as e:
            if _is_name_resolution_failure(e):
                raise _Permanent("host not found") from None
            if "Connection refused" in str(e):
                raise _Permanent("connection refused") from None
            raise _Transient(f"connection failed: {_reason(e)}") from None
        except requests.exceptions.Timeout:
            raise _Transient("timed out") from None
        with response:
            if response.status_code in (404, 410, 403, 401):
                raise _Permanent(f"HTTP {response.status_code}")
            if response.status_code >= 500 or response.status_code == 429:
                raise _Transient(f"HTTP {response.status_code}")
            if response.status_code not in (200, 206):
                raise _Permanent(f"HTTP {response.status_code}")
            mode = "ab" if response.status_code == 206 and headers else "wb"
            expected = pin.size - (have if mode == "ab" else 0)
            announced = response.headers.get("Content-Length")
            if announced is not None and announced.isdigit() and int(announced) != expected:
                raise _Permanent(f"server announces {announced} bytes, pinned size is {pin.size}")
            written = 0
            try:
                with open(staged, mode) as out:
                    # Small chunks: what arrived before an interruption is kept and resumed from.
                    for chunk in response.iter_content(64 * 1024):
                        written += len(chunk)
                        if written > expected:
                            raise _Permanent(f"more than the pinned {pin.size} bytes")
                        out.write(chunk)
            except (requests.exceptions.RequestException, OSError) as e:
                raise _Transient(f"transfer interrupted after {written} bytes: {_reason(e)}") from None
        self._check_complete(staged, pin)

    @staticmethod
    def _check_complete(staged: Path, pin: Pin) -> None:
        size = staged.stat().st_size
        if size < pin.size:
            raise _Transient(f"truncated: got {size} of {pin.size} bytes")
        if size > pin.size:
            raise _Permanent(f"wrong size: {size} bytes, pinned {pin.size}")
        actual = sha256_file(staged)
        if actual != pin.sha256:
            staged.write_bytes(b"")
            raise _Permanent(f"sha256 mismatch: got {actual}, pinned {pin.sha256}")


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
