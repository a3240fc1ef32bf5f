"""The content-addressed download cache: verified files named by their sha256, shared by every checkout.

Every entry is written to a staging file named after its sha256, checked for size and sha256, and only then
renamed into the store, so nothing half-written is ever visible there; a staging file nobody resumes is
removed after a day. One lock file per entry serializes builds that share the cache. A failed write names
the cache directory and what fixes it (:func:`cache_error`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from hermetic import cancel, log
from hermetic.errors import CacheError, IntegrityError
from hermetic.pins import Pin

_CHUNK = 1 << 20

# Staging files nobody resumed for this long are removed (their pin was bumped, or nobody builds it any more).
STALE_SECONDS = 24 * 3600

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
    """None if `path` is a regular file with the pin's size and sha256, else a short description of the mismatch."""
    kind = _not_a_file(path)
    if kind is not None:
        return f"it is {kind}, not a file"
    size = path.stat().st_size
    if size != pin.size:
        return f"size {size} bytes, expected {pin.size}"
    actual = sha256_file(path)
    if actual != pin.sha256:
        return f"sha256 {actual}, expected {pin.sha256}"
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


def _not_a_file(path: Path) -> str | None:
    """None for a regular file (or a symlink to one), else what `path` is instead."""
    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return None
    return "a directory" if stat.S_ISDIR(mode) else "a special file"


def remove_entry(path: Path) -> None:
    """Remove whatever stands at `path`, file or directory (a cache entry someone replaced by a directory)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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
        try:
            remove_entry(path)
        except OSError as e:
            raise cache_error(e, path.parent, f"removing the corrupt entry for {pin.filename}") from None
        log.warn(f"cache entry {path} for {pin.filename} is corrupt ({problem}); removed, fetching again")
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


@contextlib.contextmanager
def open_in_cache(path: Path, mode: str, doing: str) -> Iterator[BinaryIO]:
    """Open a file of the cache for writing, unbuffered so that once a write returns its bytes are in the file;
    a failure to open it is a CacheError naming its directory."""
    with contextlib.ExitStack() as stack:
        try:
            # Unbuffered binary modes ("wb", "ab") open a FileIO: a binary stream.
            out = cast(BinaryIO, stack.enter_context(open(path, mode, buffering=0)))
        except OSError as e:
            raise cache_error(e, path.parent, doing) from None
        yield out


def write_all(out: BinaryIO, data: bytes) -> None:
    """Write all of `data` to an unbuffered file (one write may store only part of it)."""
    view = memoryview(data)
    while view:
        written = out.write(view)
        if not written:
            raise OSError(errno.EIO, "a write stored nothing")
        view = view[written:]
