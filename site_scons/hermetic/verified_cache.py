"""A CacheDir whose entries are verified before use: a corrupt entry is rebuilt, never restored.

SCons copies a cache entry into place without checking it. Here every entry gets a ``.sha256`` sidecar when
it is pushed, and an entry is retrieved only when its bytes still match; otherwise it is removed (with a
warning) and the target is built again, then pushed afresh.

Behind it may sit a shared :class:`~hermetic.remote_cache.RemoteCache` (``VerifiedCacheDir.backed_by``): an
entry missing locally is looked up there, verified, and stored locally before SCons restores it from the
local copy; what this build makes (and, read-write, what it restores from the local cache) is uploaded.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import SCons.Action
import SCons.CacheDir

from hermetic import failpoint, log, scons_glue
from hermetic.content_store import sha256_file
from hermetic.errors import HermeticError
from hermetic.remote_cache import RemoteCache

SIDECAR = ".sha256"
T = TypeVar("T")
# Temporary names in the cache: SCons's own push directory (tempfile's "tmp" + 8 characters), a sidecar being
# written, and an entry coming from the remote cache (named after the process that fetches it).
_PUSH_DIR = re.compile(r"tmp[a-z0-9_]{8}")
_SIDECAR_PART = ".sidecar-"
_REMOTE_PART = re.compile(r"\.remote-(?P<pid>\d+)-\d+-")
# A temporary this old in a shared cache belongs to no running build (a push copies one artifact: seconds).
STALE_SECONDS = 3600


class VerifiedCacheDir(SCons.CacheDir.CacheDir):
    """SCons CacheDir with integrity checks (pass as ``custom_class`` to ``env.CacheDir``)."""

    remote: RemoteCache | None = None

    @classmethod
    def backed_by(cls, remote: RemoteCache | None) -> type[VerifiedCacheDir]:
        """This class with `remote` behind the local cache (SCons instantiates the class itself)."""
        if remote is None:
            return cls
        return type(f"{cls.__name__}WithRemote", (cls,), {"remote": remote})

    def retrieve(self, node: Any) -> bool:
        """Retrieve `node` only when its cache entry matches the digest recorded at push time; an entry
        missing locally comes from the remote cache, when there is one and it has a sound copy."""
        return _reported(node, lambda: self._retrieve(node))

    @classmethod
    def copy_to_cache(cls, env: Any, src: str, dst: str) -> Any:
        """SCons copies a built file into its push directory with this; the file is renamed into place after."""
        result = super().copy_to_cache(env, src, dst)
        failpoint.reached(f"cache push {Path(dst).name}")
        return result

    def push(self, node: Any) -> Any:
        """Push `node`, record the digest of the entry (atomically, next to it), and upload it."""
        return _reported(node, lambda: self._push(node))

    def _retrieve(self, node: Any) -> bool:
        if not self.is_enabled():
            return False
        _cachedir, cachefile = self.cachepath(node)
        entry = Path(cachefile) if cachefile else None
        if entry is None:
            return bool(super().retrieve(node))
        digest = self._verified_digest(entry, node)
        if digest is None:
            self._fetch_remote(entry, node)
        elif self.remote is not None and self._executing() and not self.is_readonly():
            # A local hit the remote may lack (made before it was configured, or by a read-only build).
            self.remote.upload(entry.name, entry, digest, unless_present=True)
        return bool(super().retrieve(node))

    def _push(self, node: Any) -> Any:
        result = super().push(node)
        if self.is_readonly() or not self.is_enabled():
            return result
        _cachedir, cachefile = self.cachepath(node)
        entry = Path(cachefile) if cachefile else None
        if entry is None or not entry.is_file():
            return result
        sidecar = entry.with_name(entry.name + SIDECAR)
        if not sidecar.is_file():
            _write_atomically(sidecar, sha256_file(entry) + "\n")
        if self.remote is not None:
            digest = sidecar.read_text().strip()
            # --cache-populate pushes what is already up to date: upload only what the remote lacks.
            self.remote.upload(entry.name, entry, digest, unless_present=bool(SCons.CacheDir.cache_force))
        return result

    def _verified_digest(self, entry: Path, node: Any) -> str | None:
        """The digest of a sound local entry; a corrupt one (or one without a digest) is removed."""
        if not entry.is_file() or entry.is_symlink():
            return None
        sidecar = entry.with_name(entry.name + SIDECAR)
        expected = sidecar.read_text().strip() if sidecar.is_file() else None
        if expected is not None and sha256_file(entry) == expected:
            return expected
        why = "has no recorded digest" if expected is None else "is corrupt"
        log.warn(f"cache entry {entry} for {node} {why}; removed, building it again")
        entry.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        return None

    def _fetch_remote(self, entry: Path, node: Any) -> None:
        """Bring the remote entry for `entry`'s key into the local cache, its sidecar first (a reader that
        finds the entry always finds its digest)."""
        if self.remote is None or not self._executing():
            return
        staging = entry.parent / f".remote-{os.getpid()}-{threading.get_ident()}-{entry.name}"
        digest = self.remote.fetch(entry.name, staging, str(node))
        if digest is None:
            return
        failpoint.reached(f"cache fetch {entry.name}")
        _write_atomically(entry.with_name(entry.name + SIDECAR), digest + "\n")
        os.replace(staging, entry)

    @staticmethod
    def _executing() -> bool:
        # scons -n asks what would be retrieved; it must not download or upload anything.
        return bool(SCons.Action.execute_actions)


def _reported(node: Any, work: Callable[[], T]) -> T:
    """Run `work`; a HermeticError (a stop request while downloading or uploading) becomes the one-line build
    failure of `node` with the error's exit code, as the glue reports a failed action (128 + N on signal N)."""
    try:
        return work()
    except HermeticError as e:
        raise scons_glue._KeptExitStatus(node=node, errstr=e.one_line(), exitstatus=e.exit_code) from None


def remove_stale_temporaries(cache_dir: Path, now: float | None = None) -> list[Path]:
    """Remove what killed builds left in the shared cache: push directories and sidecars older than
    :data:`STALE_SECONDS`, and remote entries being fetched by a process that no longer exists (or as old).
    Other builds may be writing this cache right now, so nothing recent is touched. Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    for shard in _cache_shards(cache_dir):
        for entry in shard.iterdir():
            if _is_leftover(entry, now):
                with contextlib.suppress(OSError):  # another build removed it first
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                    removed.append(entry)
    return removed


def _cache_shards(cache_dir: Path) -> list[Path]:
    """The cache's subdirectories that hold entries (SCons names them by the first characters of the key)."""
    if not cache_dir.is_dir():
        return []
    return [d for d in cache_dir.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != "config"]


def _is_leftover(entry: Path, now: float) -> bool:
    name = entry.name
    try:
        old = entry.lstat().st_mtime < now - STALE_SECONDS
    except OSError:
        return False
    if _PUSH_DIR.fullmatch(name) and entry.is_dir():
        return old
    if name.startswith(_SIDECAR_PART):
        return old
    remote = _REMOTE_PART.match(name)
    if remote:
        return old or not _alive(int(remote["pid"]))
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_SIDECAR_PART)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
