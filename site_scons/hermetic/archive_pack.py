"""Deterministic packing of trees: the same tree always gives the same archive bytes.

Members are written sorted by name, owned by 0:0, with one fixed mtime, normalized modes and no pax headers,
compressed with pinned settings (:func:`pinned_settings`, part of every action key); the archive replaces
its output atomically.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Literal

import zstandard

from hermetic import cancel, failpoint, scratch
from hermetic.errors import UnsafeArchiveError

Compression = Literal["zst", "gz", "none"]

# Pinned compression settings: part of what makes an artifact's bytes reproducible.
ZSTD_LEVEL = 10
ZSTD_THREADS = 2
GZIP_LEVEL = 6


def pinned_settings() -> dict[str, object]:
    """The settings that shape packed bytes (part of every action key), library version included."""
    return {
        "format": "gnu",
        "zstd_level": ZSTD_LEVEL,
        "zstd_threads": ZSTD_THREADS,
        "zstd_library": zstandard.ZSTD_VERSION,
        "gzip_level": GZIP_LEVEL,
    }


def _walk(root: Path) -> list[str]:
    """Every path under `root`, relative, sorted bytewise (directories before their contents)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            found.append(name if rel_dir == "." else f"{rel_dir}/{name}")
    return sorted(found, key=lambda p: p.encode())


def _tarinfo(root: Path, rel: str, arcname: str, mtime: int) -> tuple[tarfile.TarInfo, Path | None]:
    path = root / rel
    st = path.lstat()
    info = tarfile.TarInfo(arcname)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
        return info, None
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        return info, None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeArchiveError(f"{path}: cannot archive a device, socket or fifo")
    info.type = tarfile.REGTYPE
    info.size = st.st_size
    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    return info, path


@contextmanager
def _atomic_output(out: Path) -> Iterator[BinaryIO]:
    fd, tmp = scratch.unique_part(out)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(0o644)  # mkstemp creates 0600; archives are meant to be shared
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _compressor(raw: BinaryIO, compression: Compression, mtime: int, zstd_level: int) -> Iterator[BinaryIO]:
    if compression == "zst":
        # A fixed worker count: zstd's multithreaded output does not depend on it, but differs from
        # single-threaded output, so it is never switched off.
        cctx = zstandard.ZstdCompressor(level=zstd_level, threads=ZSTD_THREADS, write_checksum=True)
        with cctx.stream_writer(raw, closefd=False) as writer:
            yield writer
    elif compression == "gz":
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=mtime) as writer:
            yield writer  # type: ignore[misc]
    else:
        yield raw


def pack_tree(
    root: Path,
    out: Path,
    *,
    mtime: int,
    prefix: str = "",
    compression: Compression = "zst",
    first: Sequence[str] = (),
    exclude: Iterable[str] = (),
    zstd_level: int = ZSTD_LEVEL,
) -> None:
    """Write every file under `root` into the tarball `out`, deterministically and atomically.

    Args:
        root: (Path) the tree to archive.
        out: (Path) the archive to write (replaced atomically).
        mtime: (int) the modification time every member gets (SOURCE_DATE_EPOCH).
        prefix: (str) a directory name every member is placed under, e.g. ``python``.
        compression: ("zst" | "gz" | "none") the pinned compression to apply.
        first: (Sequence[str]) relative paths written before all others, in this order.
        exclude: (Iterable[str]) relative paths to leave out.
        zstd_level: (int) the pinned zstd level (intermediate artifacts use ZSTD_LEVEL).
    """
    excluded = set(exclude)
    ordered = [p for p in first if (root / p).exists() or (root / p).is_symlink()]
    ordered += [p for p in _walk(root) if p not in set(ordered) and p not in excluded]
    with (
        _atomic_output(out) as raw,
        _compressor(raw, compression, mtime, zstd_level) as stream,
        tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar,
    ):
        for index, rel in enumerate(ordered):
            cancel.check(f"packing {out.name}")
            if index == len(ordered) // 2:
                failpoint.reached(f"pack {out.name}")
            arcname = f"{prefix}/{rel}" if prefix else rel
            info, path = _tarinfo(root, rel, arcname, mtime)
            if path is None:
                tar.addfile(info)
            else:
                with open(path, "rb") as f:
                    tar.addfile(info, f)
