"""A CacheDir whose entries are verified before use: a corrupt entry is rebuilt, never restored.

SCons copies a cache entry into place without checking it. Here every entry gets a ``.sha256`` sidecar when
it is pushed, and an entry is retrieved only when its bytes still match; otherwise it is removed (with a
warning) and the target is built again, then pushed afresh.

Behind it may sit a shared :class:`~hermetic.remote_cache.RemoteCache` (``VerifiedCacheDir.backed_by``): an
entry missing locally is looked up there, verified, and stored locally before SCons restores it from the
local copy; what this build makes (and, read-write, what it restores from the local cache) is uploaded.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import SCons.Action
import SCons.CacheDir

from hermetic import log, scons_glue
from hermetic.content_store import sha256_file
from hermetic.errors import HermeticError
from hermetic.remote_cache import RemoteCache

SIDECAR = ".sha256"
T = TypeVar("T")


class VerifiedCacheDir(SCons.CacheDir.CacheDir):  # type: ignore[misc]
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


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sidecar-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
