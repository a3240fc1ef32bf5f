"""A CacheDir whose entries are verified before use: a corrupt entry is rebuilt, never restored.

SCons copies a cache entry into place without checking it. Here every entry gets a ``.sha256`` sidecar when
it is pushed, and an entry is retrieved only when its bytes still match; otherwise it is removed (with a
warning) and the target is built again, then pushed afresh.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import SCons.CacheDir

from hermetic import log
from hermetic.fetch import sha256_file

SIDECAR = ".sha256"


class VerifiedCacheDir(SCons.CacheDir.CacheDir):  # type: ignore[misc]
    """SCons CacheDir with integrity checks (pass as ``custom_class`` to ``env.CacheDir``)."""

    def retrieve(self, node: Any) -> bool:
        """Retrieve `node` only when its cache entry matches the digest recorded at push time."""
        if not self.is_enabled():
            return False
        _cachedir, cachefile = self.cachepath(node)
        entry = Path(cachefile) if cachefile else None
        if entry is not None and entry.is_file() and not entry.is_symlink():
            sidecar = entry.with_name(entry.name + SIDECAR)
            expected = sidecar.read_text().strip() if sidecar.is_file() else None
            if expected is None or sha256_file(entry) != expected:
                why = "has no recorded digest" if expected is None else "is corrupt"
                log.warn(f"cache entry {entry} for {node} {why}; removed, building it again")
                entry.unlink(missing_ok=True)
                sidecar.unlink(missing_ok=True)
                return False
        return bool(super().retrieve(node))

    def push(self, node: Any) -> Any:
        """Push `node`, then record the digest of the entry (atomically, next to it)."""
        result = super().push(node)
        if self.is_readonly() or not self.is_enabled():
            return result
        _cachedir, cachefile = self.cachepath(node)
        entry = Path(cachefile) if cachefile else None
        if entry is not None and entry.is_file() and not entry.with_name(entry.name + SIDECAR).is_file():
            fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".sidecar-")
            with os.fdopen(fd, "w") as f:
                f.write(sha256_file(entry) + "\n")
            os.replace(tmp, entry.with_name(entry.name + SIDECAR))
        return result
