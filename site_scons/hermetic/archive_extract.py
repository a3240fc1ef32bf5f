"""Safe extraction of tarballs, .deb and zip files (wheels): every archive is treated as hostile.

Extraction refuses absolute names, ``..``, devices and fifos, never creates, links, chmods or re-dates
anything through a symlink (each path is walked from the destination with O_NOFOLLOW), creates symlinks last
and only when they resolve inside the destination, and hard-links only to files the same archive wrote. A
truncated or damaged archive is one CorruptArchiveError naming it (:mod:`hermetic.archive_read`). Python's
tarfile only parses headers and data here; its extraction (and its filters) is not used.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, Literal

from hermetic import cancel
from hermetic.archive_read import CORRUPT_HINT, open_tar, read_tar
from hermetic.errors import ArchiveTooLargeError, CorruptArchiveError, UnsafeArchiveError

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINK_HOPS = 40  # as Linux's MAXSYMLINKS
_OPEN_DIRECTORIES = 64
# The longest symlink target Linux stores (PATH_MAX less the terminating NUL).
_TARGET_MAX = 4095
# The longest file name (one path component, in bytes) Linux file systems take (ext4, xfs, btrfs, tmpfs: NAME_MAX).
NAME_MAX = 255
_UNSAFE_HINT = "refusing to unpack it: check where this archive comes from"
_SPECIAL = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a fifo",
}

EntryKind = Literal["dir", "link", "other", "missing"]


class LinkResolutionError(Exception):
    """A symlink leads out of its tree, or through too many links to follow (the message says which)."""


class SymlinkLoopError(LinkResolutionError):
    """A symlink goes through more links than the kernel follows (a loop, or a chain growing exponentially)."""


def resolve_in_tree(path: str, entry: Callable[[str], tuple[EntryKind, str]]) -> str:
    """Where `path` (relative to a tree's root) leads once every symlink inside the tree is followed.

    `entry(rel)` says what is at `rel` (whose parents are directories): ``("link", target)``, ``("dir", "")``,
    ``("other", "")`` or ``("missing", "")``. What lies below a missing path or a file is taken by name, as
    the directories someone may create there later. Raises LinkResolutionError for a path that goes above
    the root or through an absolute link target, and for more than 40 links on the way (a loop).
    """
    parts: list[str] = []
    by_name = 0  # how many of the last `parts` do not exist as directories
    pending = list(reversed(path.split("/")))
    hops = 0
    while pending:
        component = pending.pop()
        if component in ("", "."):
            continue
        if component == "..":
            if not parts:
                raise LinkResolutionError("leads out of the tree")
            parts.pop()
            by_name = max(by_name - 1, 0)
            continue
        kind, target = ("missing", "") if by_name else entry("/".join([*parts, component]))
        if kind == "link":
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise SymlinkLoopError(f"goes through more than {_MAX_LINK_HOPS} symlinks (a loop?)")
            if target.startswith("/"):
                raise LinkResolutionError(f"goes through {'/'.join([*parts, component])!r} -> {target!r}")
            pending.extend(reversed(target.split("/")))
            continue
        parts.append(component)
        by_name += kind != "dir"
    return "/".join(parts)


def _member_path(name: str, strip: int, archive: str) -> str | None:
    """The safe relative path of a member after stripping `strip` leading components (None: skip it)."""
    if name.startswith("/"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path", hint=_UNSAFE_HINT)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} escapes its directory (..)", hint=_UNSAFE_HINT)
    too_long = next((p for p in parts if len(os.fsencode(p)) > NAME_MAX), None)
    if too_long is not None:
        raise UnsafeArchiveError(
            f"{archive}: member {_shown(name)} has a name part of {len(os.fsencode(too_long))} bytes, "
            f"longer than a file system allows ({NAME_MAX})",
            hint=_UNSAFE_HINT,
        )
    parts = parts[strip:]
    return "/".join(parts) if parts else None


def _shown(name: str) -> str:
    """A member name for a message: quoted, and shortened when it would not fit on a line."""
    if len(name) <= 120:
        return repr(name)
    return f"{name[:60]!r}...{name[-40:]!r} ({len(name)} characters)"


def _single_top_dir(names: Iterable[str]) -> bool:
    tops = {n.lstrip("./").split("/", 1)[0] for n in names if n.lstrip("./")}
    return len(tops) == 1


class _Extraction:
    """One archive unpacked into a directory without ever following a symlink.

    Every path is reached from the destination one directory at a time with O_NOFOLLOW, so no member is
    created, linked, chmod'ed or re-dated through a link, whatever came before it. Symlinks are created
    last, after each was resolved against the finished tree (its own links included) and found inside
    it; until then a member under a symlink's name is refused. Hard links may only name regular files this
    archive wrote, reached through directories alone and still the same inode.
    """

    def __init__(self, dest: Path, label: str, fix_absolute_links: bool) -> None:
        self.dest = dest
        self.label = label
        self.fix_absolute_links = fix_absolute_links
        with os.scandir(dest) as entries:
            self.shared = next(entries, None) is not None  # other archives were unpacked here
        self.root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dir_fds: OrderedDict[str, int] = OrderedDict()
        self.files: dict[str, tuple[int, int]] = {}  # regular files written: path -> (device, inode)
        self.symlinks: dict[str, tuple[str, str, float]] = {}  # to create: path -> (target, member name, mtime)
        self.dir_times: dict[str, int] = {}

    def close(self) -> None:
        """Release every directory descriptor."""
        for fd in self.dir_fds.values():
            os.close(fd)
        self.dir_fds.clear()
        os.close(self.root_fd)

    def refuse(self, message: str) -> UnsafeArchiveError:
        """The error for a member that cannot be unpacked safely."""
        return UnsafeArchiveError(f"{self.label}: {message}", hint=_UNSAFE_HINT)

    # -- walking

    def directory_fd(self, rel: str, member: str, *, create: bool) -> int:
        """A descriptor of directory `rel`, reached one component at a time without following links.

        Missing directories are created when `create`; the descriptor belongs to a small cache (valid
        until the next call)."""
        if not rel:
            return self.root_fd
        parts = rel.split("/")
        depth, fd = len(parts), self.root_fd
        while depth:  # start from the deepest directory already open
            cached = "/".join(parts[:depth])
            if cached in self.dir_fds:
                self.dir_fds.move_to_end(cached)
                fd = self.dir_fds[cached]
                break
            depth -= 1
        for index in range(depth, len(parts)):
            fd = self._step(fd, "/".join(parts[: index + 1]), member, create=create)
        return fd

    def _step(self, parent_fd: int, rel: str, member: str, *, create: bool) -> int:
        name = rel.rpartition("/")[2]
        if rel in self.symlinks:
            raise self.refuse(f"member {member!r} goes through the symlink {rel!r} (an archive may not)")
        try:
            fd = os.open(name, _DIRECTORY, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise self.refuse(f"member {member!r} needs {rel!r}, which this archive did not create") from None
            os.mkdir(name, 0o755, dir_fd=parent_fd)
            fd = os.open(name, _DIRECTORY, dir_fd=parent_fd)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            found = "a symlink" if stat.S_ISLNK(os.lstat(name, dir_fd=parent_fd).st_mode) else "not a directory"
            raise self.refuse(f"member {member!r} goes through {rel!r}, which is {found}") from None
        self.dir_fds[rel] = fd
        if len(self.dir_fds) > _OPEN_DIRECTORIES:
            os.close(self.dir_fds.popitem(last=False)[1])
        return fd

    def parent(self, rel: str, member: str, *, create: bool = True) -> tuple[int, str]:
        """The descriptor of `rel`'s directory and `rel`'s last component."""
        directory, _, name = rel.rpartition("/")
        return self.directory_fd(directory, member, create=create), name

    def clear(self, parent_fd: int, name: str, rel: str, member: str) -> None:
        """Remove a file or link at `rel` (the archive replaces it); a directory is never replaced."""
        try:
            mode = os.lstat(name, dir_fd=parent_fd).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            raise self.refuse(f"member {member!r} would replace the directory {rel!r}")
        os.unlink(name, dir_fd=parent_fd)
        self.files.pop(rel, None)

    # -- members

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo, strip: int) -> None:
        """Unpack one member (symlinks are only recorded, see finish())."""
        rel = _member_path(member.name, strip, self.label)
        if rel is None:
            return
        if member.isdir():
            self.directory(rel, member)
        elif member.isreg():
            source = tar.extractfile(member)
            assert source is not None  # a regular member always has data
            self.regular(rel, member, source)
        elif member.issym():
            self.symlink(rel, member)
        elif member.islnk():
            self.hard_link(rel, member, strip)
        else:
            kind = _SPECIAL.get(member.type, f"of unsupported type {member.type!r}")
            raise self.refuse(f"member {member.name!r} is {kind}")

    def directory(self, rel: str, member: tarfile.TarInfo) -> None:
        """Create (or keep) a directory, mode 0755; its mtime is set once everything is in place."""
        if rel in self.symlinks:
            raise self.refuse(f"directory {member.name!r} would replace a symlink of the same name")
        os.fchmod(self.directory_fd(rel, member.name, create=True), 0o755)
        self.dir_times[rel] = int(member.mtime)  # whole seconds, as before (directory times are not compared)

    def regular(self, rel: str, member: tarfile.TarInfo, source: IO[bytes]) -> None:
        """Write a new file (never into an existing one), mode 0755 or 0644, with the member's mtime."""
        parent_fd, name = self.parent(rel, member.name)
        self.clear(parent_fd, name, rel, member.name)
        self.symlinks.pop(rel, None)
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent_fd)
        with open(fd, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
            out.flush()
            os.fchmod(fd, 0o755 if member.mode & 0o111 else 0o644)
            # The archive's mtimes are kept: make decides what to regenerate from them.
            os.utime(fd, (member.mtime, member.mtime))
            written = os.fstat(fd)
        self.files[rel] = (written.st_dev, written.st_ino)

    def symlink(self, rel: str, member: tarfile.TarInfo) -> None:
        """Record a symlink to create at the end, its absolute target made relative for sysroots."""
        target = member.linkname
        if not target:
            raise self.refuse(f"symlink {member.name!r} has an empty target")
        if len(os.fsencode(target)) > _TARGET_MAX:
            raise self.refuse(f"symlink {_shown(member.name)} has a target longer than {_TARGET_MAX} bytes")
        if target.startswith("/"):
            if not self.fix_absolute_links:
                raise self.refuse(f"symlink {member.name!r} points to absolute path {target!r}")
            target = posixpath.relpath(posixpath.normpath(target), "/" + posixpath.dirname(rel))
        parent_fd, name = self.parent(rel, member.name)
        self.clear(parent_fd, name, rel, member.name)
        self.symlinks.pop(rel, None)
        self.symlinks[rel] = (target, member.name, member.mtime)

    def hard_link(self, rel: str, member: tarfile.TarInfo, strip: int) -> None:
        """Link to a regular file this archive wrote, reached without links and still the same file."""
        problem = f"hard link {member.name!r} -> {member.linkname!r}"
        try:
            target = _member_path(member.linkname, strip, self.label)
        except UnsafeArchiveError:
            raise self.refuse(f"{problem} points outside the archive") from None
        if target is None or target not in self.files:
            raise self.refuse(f"{problem}: the target is not a regular file unpacked earlier from this archive")
        if target == rel:
            return
        source_fd, source_name = self.parent(target, member.name, create=False)
        source_fd = os.dup(source_fd)  # the next walk may evict it from the cache
        try:
            found = os.lstat(source_name, dir_fd=source_fd)
            if not stat.S_ISREG(found.st_mode) or (found.st_dev, found.st_ino) != self.files[target]:
                raise self.refuse(f"{problem}: the target is no longer the file this archive unpacked")
            parent_fd, name = self.parent(rel, member.name)
            self.clear(parent_fd, name, rel, member.name)
            self.symlinks.pop(rel, None)
            os.link(source_name, name, src_dir_fd=source_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
        finally:
            os.close(source_fd)
        self.files[rel] = self.files[target]

    # -- the end

    def entry(self, rel: str) -> tuple[EntryKind, str]:
        """What the finished tree holds at `rel` (whose parents are directories): see resolve_in_tree()."""
        if rel in self.symlinks:
            return "link", self.symlinks[rel][0]
        try:
            mode = os.lstat(rel, dir_fd=self.root_fd).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return "missing", ""
        except OSError as e:
            if e.errno != errno.ENAMETOOLONG:
                raise
            return "missing", ""  # a link target's overlong name: nothing can be there
        if stat.S_ISLNK(mode):
            return "link", os.readlink(rel, dir_fd=self.root_fd)
        return ("dir" if stat.S_ISDIR(mode) else "other"), ""

    def earlier_links(self) -> Iterator[tuple[str, str]]:
        """(path, target) of the symlinks other archives left in the destination."""
        for dirpath, dirnames, filenames in os.walk(self.dest):  # does not descend into symlinks
            for name in dirnames + filenames:
                path = Path(dirpath, name)
                if path.is_symlink():
                    yield str(path.relative_to(self.dest)), os.readlink(path)

    def finish(self) -> None:
        """Check every symlink against the finished tree, create them, then set directory mtimes.

        Links other archives left here are checked again: what this one adds may change where they lead."""
        checks = {rel: f"symlink {member!r} -> {target!r}" for rel, (target, member, _) in self.symlinks.items()}
        if self.shared:
            for rel, target in self.earlier_links():
                checks.setdefault(rel, f"symlink {rel!r} -> {target!r}, unpacked earlier, with this archive")
        for rel, what in checks.items():
            try:
                resolve_in_tree(rel, self.entry)
            except LinkResolutionError as e:
                raise self.refuse(f"{what} {e}") from None
        for rel, (target, member, mtime) in self.symlinks.items():
            parent_fd, name = self.parent(rel, member)
            os.symlink(target, name, dir_fd=parent_fd)
            os.utime(name, (mtime, mtime), dir_fd=parent_fd, follow_symlinks=False)
        for rel, mtime in self.dir_times.items():
            os.utime(self.directory_fd(rel, rel, create=False), (mtime, mtime))


def extract_tar(
    archive: Path,
    dest: Path,
    *,
    strip: int | Literal["auto"] = 0,
    fix_absolute_links: bool = False,
    fileobj: BinaryIO | None = None,
    label: str | None = None,
) -> None:
    """Unpack a tarball into `dest`, refusing members that escape it (see _Extraction).

    Args:
        archive: (Path) the tarball (read unless `fileobj` is given; its compression is told from its bytes).
        dest: (Path) the directory to fill; created if missing.
        strip: (int | "auto") leading path components to drop; "auto" drops the single top-level
            directory when there is one.
        fix_absolute_links: (bool) rewrite absolute symlink targets relative to `dest` (sysroots
            built from packages) instead of refusing them; the result is checked like any other.
        fileobj: (BinaryIO | None) read the (possibly compressed) tar stream from here instead.
        label: (str | None) the name used in error messages (defaults to the archive's name).

    Raises:
        UnsafeArchiveError: a member is absolute, climbs out with "..", is a device or fifo, goes through
            a symlink, or is a link leading out of `dest` or to something this archive did not write.
        CorruptArchiveError: the archive is truncated or damaged.
    """
    label = label or archive.name
    if strip == "auto":
        with open_tar(archive, label=label) as tar:
            strip = 1 if _single_top_dir(m.name for m in tar) else 0
    dest.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        raw = fileobj if fileobj is not None else stack.enter_context(open(archive, "rb"))
        tar = stack.enter_context(read_tar(raw, label, None))
        extraction = _Extraction(dest, label, fix_absolute_links)
        stack.callback(extraction.close)
        for member in tar:
            cancel.check(f"unpacking {label}")
            extraction.add(tar, member, strip)
        extraction.finish()


class _Slice:
    """`size` bytes of a file from its current position (a member of an ar archive)."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw = raw
        self._left = size

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of the slice."""
        size = self._left if size < 0 else min(size, self._left)
        data = self._raw.read(size)
        self._left -= len(data)
        return data


def extract_deb(deb: Path, dest: Path, *, label: str | None = None) -> None:
    """Unpack the data part of a Debian package into `dest`, relativizing absolute symlinks."""
    label = label or deb.name
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise CorruptArchiveError(f"{label}: not a Debian package (bad ar magic)", hint=CORRUPT_HINT)
        while header := f.read(60):
            try:
                name = header[:16].decode().strip().rstrip("/")
                size = int(header[48:58].decode().strip())
            except ValueError:
                size = -1
            if size < 0:
                raise CorruptArchiveError(f"{label}: damaged ar member header", hint=CORRUPT_HINT)
            if name.startswith("data.tar"):
                data = _Slice(f, size)
                extract_tar(deb, dest, fix_absolute_links=True, fileobj=data, label=label)  # type: ignore[arg-type]
                return
            f.seek(size + (size & 1), os.SEEK_CUR)
    raise CorruptArchiveError(f"{label}: no data.tar member (not a Debian binary package?)", hint=CORRUPT_HINT)


# What a selection of a zip file may expand to: far above any wheel a toolchain uses, far below a zip bomb.
ZIP_LIMIT = 4 << 30


def extract_zip(
    archive: Path,
    dest: Path,
    *,
    select: Sequence[tuple[str, str]] = (),
    label: str | None = None,
    limit: int = ZIP_LIMIT,
) -> None:
    """Unpack (parts of) a zip file, such as a wheel, into `dest` with the rules of :func:`extract_tar`.

    Args:
        archive: (Path) the zip file.
        dest: (Path) the directory to fill; created if missing.
        select: ((member path, destination) pairs) take only the member at, or the tree under, each member
            path, and put it at the destination (relative to `dest`); empty: every member where it is.
        label: (str | None) the name used in error messages (defaults to the archive's name).
        limit: (int) the most bytes the selected members may expand to.

    Raises:
        UnsafeArchiveError: a member name is absolute, climbs out with "..", uses backslashes, appears twice,
            or is a symlink or another special file (a wheel holds only files and directories).
        ArchiveTooLargeError: the selected members would expand to more than `limit` bytes.
        CorruptArchiveError: the file is not a zip, or a member is damaged (CRC, truncated data).
    """
    label = label or archive.name
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            chosen = _zip_selection(zf.infolist(), select, label)
            total = sum(info.file_size for info, _rel in chosen)
            if total > limit:
                raise ArchiveTooLargeError(
                    f"{label}: the selected members expand to {total} bytes, more than the {limit} allowed",
                    hint=_UNSAFE_HINT,
                )
            extraction = _Extraction(dest, label, fix_absolute_links=False)
            try:
                for info, rel in chosen:
                    cancel.check(f"unpacking {label}")
                    member = _zip_tarinfo(info, rel)
                    if info.is_dir():
                        extraction.directory(rel, member)
                    else:
                        with zf.open(info) as source:
                            extraction.regular(rel, member, source)
                extraction.finish()
            finally:
                extraction.close()
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise CorruptArchiveError(f"{label}: {e}", hint=CORRUPT_HINT) from None


def _zip_selection(
    infos: list[zipfile.ZipInfo], select: Sequence[tuple[str, str]], label: str
) -> list[tuple[zipfile.ZipInfo, str]]:
    """The members to unpack with their destination paths, every name checked before anything is written."""
    seen: set[str] = set()
    chosen = []
    for info in infos:
        name = info.filename
        if "\\" in name or re.match(r"[A-Za-z]:", name):
            raise UnsafeArchiveError(f"{label}: member {name!r} is a Windows path", hint=_UNSAFE_HINT)
        rel = _member_path(name, 0, label)
        if rel is None:
            continue
        if rel in seen:
            raise UnsafeArchiveError(f"{label}: member {name!r} appears twice", hint=_UNSAFE_HINT)
        seen.add(rel)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "a symlink" if kind == stat.S_IFLNK else f"a special file (mode {kind:#o})"
            raise UnsafeArchiveError(f"{label}: member {name!r} is {what}", hint=_UNSAFE_HINT)
        target = _zip_destination(rel, select)
        if target is not None:
            chosen.append((info, target))
    return chosen


def _zip_destination(rel: str, select: Sequence[tuple[str, str]]) -> str | None:
    """Where member `rel` goes under the selection (None: not selected)."""
    if not select:
        return rel
    for prefix, destination in select:
        prefix, destination = prefix.strip("/"), destination.strip("/")
        if rel == prefix:
            return destination
        if rel.startswith(prefix + "/"):
            return f"{destination}/{rel[len(prefix) + 1 :]}".lstrip("/")
    return None


def _zip_tarinfo(info: zipfile.ZipInfo, rel: str) -> tarfile.TarInfo:
    """The member as the tar extraction code describes one (name, size, mode, mtime)."""
    member = tarfile.TarInfo(rel)
    member.size = info.file_size
    member.mode = (info.external_attr >> 16) & 0o777 or 0o644
    member.mtime = int(calendar.timegm((*info.date_time, 0, 0, 0)))
    return member
