"""Archives in and out: safe extraction of tarballs and .deb files, deterministic packing of trees.

Extraction refuses any member that would land outside the destination (absolute names, ``..``, links
pointing out of the tree, device files). Packing writes members sorted by name, owned by 0:0, with one fixed
mtime, normalized modes and no pax headers, so the same tree always gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Literal

import zstandard

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


# ---------------------------------------------------------------------------------------------- reading


@contextmanager
def open_tar(path: Path) -> Iterator[tarfile.TarFile]:
    """Open a tarball for one sequential pass (.tar.zst through zstandard, anything else by tarfile)."""
    if path.name.endswith((".zst", ".zstd")):
        with (
            open(path, "rb") as raw,
            zstandard.ZstdDecompressor().stream_reader(raw) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            yield tar
    else:
        with tarfile.open(path, mode="r|*") as tar:
            yield tar


@contextmanager
def _open_stream(fileobj: BinaryIO) -> Iterator[tarfile.TarFile]:
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        yield tar


def _member_path(name: str, strip: int, archive: str) -> str | None:
    """The safe relative path of a member after stripping `strip` leading components (None: skip it)."""
    if name.startswith("/"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path", hint="refusing to unpack")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} escapes its directory", hint="refusing to unpack")
    parts = parts[strip:]
    return "/".join(parts) if parts else None


def _link_target(member_rel: str, target: str, archive: str, *, fix_absolute: bool) -> str:
    """Validate (and, for sysroots, relativize) a symlink target so it stays inside the tree."""
    if target.startswith("/"):
        if not fix_absolute:
            raise UnsafeArchiveError(
                f"{archive}: symlink {member_rel!r} points to absolute path {target!r}",
                hint="refusing to unpack",
            )
        target = posixpath.relpath(posixpath.normpath(target), "/" + posixpath.dirname(member_rel))
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member_rel), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(
            f"{archive}: symlink {member_rel!r} -> {target!r} escapes its directory",
            hint="refusing to unpack",
        )
    return target


def _single_top_dir(names: Iterable[str]) -> bool:
    tops = {n.lstrip("./").split("/", 1)[0] for n in names if n.lstrip("./")}
    return len(tops) == 1


def extract_tar(
    archive: Path,
    dest: Path,
    *,
    strip: int | Literal["auto"] = 0,
    fix_absolute_links: bool = False,
    fileobj: BinaryIO | None = None,
    label: str | None = None,
) -> None:
    """Unpack a tarball into `dest`, refusing members that escape it.

    Args:
        archive: (Path) the tarball (its suffix selects the decompressor).
        dest: (Path) the directory to fill; created if missing.
        strip: (int | "auto") leading path components to drop; "auto" drops the single top-level
            directory when there is one.
        fix_absolute_links: (bool) rewrite absolute symlink targets relative to `dest` (sysroots
            built from packages) instead of refusing them.
        fileobj: (BinaryIO | None) read the tar stream from here instead of opening `archive`.
        label: (str | None) the name used in error messages (defaults to the archive's name).
    """
    label = label or archive.name
    if strip == "auto":
        with open_tar(archive) as tar:
            strip = 1 if _single_top_dir(m.name for m in tar) else 0
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    dir_times: list[tuple[Path, int]] = []
    with _open_stream(fileobj) if fileobj is not None else open_tar(archive) as tar:
        for member in tar:
            rel = _member_path(member.name, strip, label)
            if rel is None:
                continue
            out = root / rel
            parent = out.parent
            parent.mkdir(parents=True, exist_ok=True)
            resolved_parent = str(parent.resolve())
            if resolved_parent != str(root) and not resolved_parent.startswith(str(root) + os.sep):
                raise UnsafeArchiveError(f"{label}: member {member.name!r} escapes its directory via a symlink")
            if member.isdir():
                out.mkdir(exist_ok=True)
                out.chmod(0o755)
                dir_times.append((out, int(member.mtime)))
            elif member.isreg():
                _replace(out)
                source = tar.extractfile(member)
                assert source is not None
                with open(out, "wb") as f:
                    shutil.copyfileobj(source, f, 1 << 20)
                out.chmod(0o755 if member.mode & 0o111 else 0o644)
                # The archive's mtimes are kept: make decides what to regenerate from them.
                os.utime(out, (member.mtime, member.mtime))
            elif member.issym():
                target = _link_target(rel, member.linkname, label, fix_absolute=fix_absolute_links)
                physical = os.path.normpath(os.path.join(parent.resolve(), target))
                if physical != str(root) and not physical.startswith(str(root) + os.sep):
                    raise UnsafeArchiveError(f"{label}: symlink {member.name!r} leads out of its directory")
                _replace(out)
                os.symlink(target, out)
                os.utime(out, (member.mtime, member.mtime), follow_symlinks=False)
            elif member.islnk():
                link_rel = _member_path(member.linkname, strip, label)
                if link_rel is None or not (root / link_rel).exists():
                    raise UnsafeArchiveError(f"{label}: hard link {member.name!r} has no target inside the archive")
                _replace(out)
                os.link(root / link_rel, out)
            else:
                raise UnsafeArchiveError(f"{label}: member {member.name!r} is a device or fifo", hint="refusing it")
    for directory, mtime in reversed(dir_times):
        os.utime(directory, (mtime, mtime))


def _replace(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()


def extract_deb(deb: Path, dest: Path) -> None:
    """Unpack the data part of a Debian package into `dest`, relativizing absolute symlinks."""
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise UnsafeArchiveError(f"{deb.name}: not a Debian package (bad ar magic)")
        while header := f.read(60):
            if len(header) < 60:
                break
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            if name.startswith("data.tar"):
                payload = f.read(size)
                stream: BinaryIO
                if name.endswith(".zst"):
                    stream = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload))
                else:
                    stream = io.BytesIO(payload)
                extract_tar(deb, dest, fix_absolute_links=True, fileobj=stream, label=deb.name)
                return
            f.seek(size + (size & 1), os.SEEK_CUR)
    raise UnsafeArchiveError(f"{deb.name}: no data.tar member")


# ---------------------------------------------------------------------------------------------- writing


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
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
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
            yield writer  # type: ignore[misc]
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
        for rel in ordered:
            arcname = f"{prefix}/{rel}" if prefix else rel
            info, path = _tarinfo(root, rel, arcname, mtime)
            if path is None:
                tar.addfile(info)
            else:
                with open(path, "rb") as f:
                    tar.addfile(info, f)
