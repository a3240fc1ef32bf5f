"""Reading a distribution archive once, in bounded memory, keeping only what the checks need.

Members are streamed: their first bytes say what they are. ELF and Mach-O files (up to MAX_BINARY_BYTES),
PYTHON.json and the FIPS files are written to disk in chunks for the checks that open files; other text files
are scanned for build paths (whole up to MAX_WHOLE_TEXT_BYTES, in overlapping chunks beyond); objects and
members of static libraries keep a 64-byte header. An archive that expands more than EXPANSION_RATIO times
its size (past EXPANSION_FLOOR_BYTES), holds more than MAX_MEMBERS members or a name longer than
MAX_NAME_BYTES is reported and read no further, like one that cannot be read at all.
"""

from __future__ import annotations

import codecs
import posixpath
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hermetic.archive_read import open_tar
from hermetic.errors import ArchiveTooLargeError, CorruptArchiveError
from pydist import buildpaths
from pydist.options import ALL as OPTIONS
from pydist.targets import all_targets
from pydist.validate.fips import FIPSINSTALL_MODULE
from pydist.validate.report import Report
from pydist.validate.roles import install_relative

MAX_BINARY_BYTES = 256 << 20
MAX_WHOLE_TEXT_BYTES = 16 << 20
EXPANSION_RATIO = 100
EXPANSION_FLOOR_BYTES = 512 << 20
MAX_MEMBERS = 200_000
MAX_NAME_BYTES = 1024
_HEAD = 64 << 10
_CHUNK = 1 << 20
_OVERLAP = 64  # longer than any sandbox path, so a match cut by a chunk boundary is found in the next window

_TRIPLES = "|".join(re.escape(t) for t in all_targets())
_OPTIONS = "|".join(re.escape(o) for o in OPTIONS)
FULL_NAME = re.compile(
    rf"cpython-(?P<version>3\.\d+\.\d+)-(?P<triple>{_TRIPLES})-(?P<options>{_OPTIONS})-(?P<tag>[A-Za-z0-9._]+)\.tar\.zst"
)
INSTALL_ONLY_NAME = re.compile(
    rf"cpython-(?P<version>3\.\d+\.\d+)-(?P<triple>{_TRIPLES})-(?:(?P<flavor>[a-z+]+)-)?"
    r"install_only(?P<stripped>_stripped)?-(?P<tag>[A-Za-z0-9._]+)\.tar\.gz"
)
_ELF_MAGIC = b"\x7fELF"
MACHO_MAGICS = {bytes.fromhex(m) for m in ("feedface", "feedfacf", "cefaedfe", "cffaedfe", "cafebabe", "bebafeca")}


@dataclass
class Unpacked:
    """What was read from an archive: member names, build-path findings, and the files written to disk
    for the checks that need them (binaries, PYTHON.json, the FIPS files)."""

    label: str
    kind: str  # "full" or "install_only"
    root: Path  # the directory holding python/
    name: dict[str, str] = field(default_factory=dict)
    regular: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    binaries: list[str] = field(default_factory=list)
    objects: list[tuple[str, bytes]] = field(default_factory=list)
    text_findings: list[buildpaths.Finding] = field(default_factory=list)
    first_member: str | None = None
    python_json_count: int = 0
    complete: bool = False  # read to its end (otherwise one violation says why, and nothing else is checked)

    def names(self) -> set[str]:
        """Every member, with the directories that contain members."""
        found = set(self.regular) | set(self.symlinks) | self.directories
        return found | {posixpath.dirname(n) for n in found}


class _Stop(Exception):
    """The archive breaks a size limit: it is reported and read no further."""


class _Data:
    """A member's bytes: the first ones already read, the rest still in the archive stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head = head
        self._pending = head
        self._rest = rest

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes, fewer only at the end."""
        parts = []
        while size > 0:
            if self._pending:
                part, self._pending = self._pending[:size], self._pending[size:]
            else:
                part = self._rest.read(min(size, _CHUNK))
                if not part:
                    break
            parts.append(part)
            size -= len(part)
        return b"".join(parts)

    def skip(self, size: int) -> None:
        """Pass over `size` bytes without keeping them."""
        while size > 0 and (part := self.read(min(size, _CHUNK))):
            size -= len(part)

    def chunks(self) -> Iterator[bytes]:
        """What is left, a chunk at a time."""
        while part := self.read(_CHUNK):
            yield part


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return not name.startswith("/") and ".." not in parts and parts[0] == "python"


def _ar_members(data: _Data) -> Iterator[tuple[str, bytes]]:
    """(name, first 64 bytes) of each member of an ar archive, streamed."""
    if data.read(8) != b"!<arch>\n":
        return
    while len(header := data.read(60)) == 60:
        try:
            size = int(header[48:58].decode().strip() or 0)
        except ValueError:
            return  # a damaged header: the members before it were checked
        head = data.read(min(size, 64))
        yield header[:16].decode(errors="replace").strip(), head
        data.skip(size - len(head) + (size & 1))


def _first_sandbox_line(data: _Data) -> int | None:
    """The line of the first sandbox path in a text too large to read whole, scanned in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    carry, line = "", 1
    for chunk in data.chunks():
        window = carry + decoder.decode(chunk)
        match = buildpaths.SANDBOX_PATH.search(window)
        if match and match.end() < len(window):  # at the very end it may go on in the next chunk
            return line + window.count("\n", 0, match.start())
        cut = max(len(window) - _OVERLAP, 0)
        line += window.count("\n", 0, cut)
        carry = window[cut:]
    match = buildpaths.SANDBOX_PATH.search(carry + decoder.decode(b"", final=True))
    return line + carry.count("\n", 0, match.start()) if match else None


def _text_findings(rel: str, data: _Data, size: int) -> list[buildpaths.Finding]:
    if size <= MAX_WHOLE_TEXT_BYTES:
        return buildpaths.check_text(rel, data.read(size))
    if data.head[:4] == _ELF_MAGIC or b"\0" in data.head[:8192]:
        return []
    if buildpaths.INSTALL_PREFIX_SHEBANG.match(data.head):
        return [buildpaths.Finding(rel, "its shebang (the build's install prefix)", False)]
    line = _first_sandbox_line(data)
    return [] if line is None else [buildpaths.Finding(rel, f"line {line}", False)]


def _store(unpacked: Unpacked, name: str, parts: Iterator[bytes], mode: int, report: Report) -> bool:
    """Write a member to disk, chunk by chunk, for the checks that open files."""
    target = unpacked.root / name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            for part in parts:
                out.write(part)
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as e:
        report.add(f"{unpacked.label}:{name}", "archive.conflict", f"collides with another member ({e.strerror})")
        return False
    target.chmod(0o755 if mode & 0o111 else 0o644)
    return True


def _read_member(unpacked: Unpacked, member: tarfile.TarInfo, source: IO[bytes], report: Report) -> None:
    """Check what can be checked on the stream; write to disk only what later checks open as files."""
    name = member.name.rstrip("/")
    unpacked.regular.append(name)
    data = _Data(source.read(_HEAD), source)
    magic, rel = data.head[:4], install_relative(name)
    if name.endswith(".a"):
        unpacked.objects += [(f"{unpacked.label}:{name}({m})", head) for m, head in _ar_members(data)]
        return
    is_binary = magic == _ELF_MAGIC or magic in MACHO_MAGICS
    if name.endswith(".o") and magic not in MACHO_MAGICS:
        unpacked.objects.append((f"{unpacked.label}:{name}", data.head[:64]))
        return
    # Binaries, PYTHON.json, the FIPS files, and the standard library's fipsinstall step (fips.fipsinstall).
    fips_step = re.fullmatch(rf"lib/python3[^/]*/{re.escape(FIPSINSTALL_MODULE)}", rel or "") is not None
    kept = is_binary or name == "python/PYTHON.json" or "/share/ssl/" in f"/{rel or ''}" or fips_step
    limit = MAX_BINARY_BYTES if is_binary else MAX_WHOLE_TEXT_BYTES
    if kept and member.size > limit:
        message = f"is {member.size} bytes, more than the {limit} the validator reads for its checks"
        report.add(f"{unpacked.label}:{name}", "archive.size", message)
        return
    if is_binary:
        if _store(unpacked, name, data.chunks(), member.mode, report):
            unpacked.binaries.append(name)
        return
    if not kept:
        if rel is not None:
            unpacked.text_findings += _text_findings(rel, data, member.size)
        return
    whole = data.read(member.size)
    if rel is not None:
        unpacked.text_findings += buildpaths.check_text(rel, whole)
    _store(unpacked, name, iter([whole]), member.mode, report)


def _read_members(tar: tarfile.TarFile, unpacked: Unpacked, report: Report) -> None:
    label = unpacked.label
    for count, member in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise _Stop(f"has more than {MAX_MEMBERS} members")
        name = member.name.rstrip("/")
        if len(name.encode(errors="surrogateescape")) > MAX_NAME_BYTES:
            raise _Stop(f"has a member name longer than {MAX_NAME_BYTES} bytes ({name[:60]}...)")
        if unpacked.first_member is None:
            unpacked.first_member = name
        if name == "python/PYTHON.json":
            unpacked.python_json_count += 1
        if not _safe_name(name):
            report.add(f"{label}:{name}", "archive.escape", "member is outside python/")
        elif member.isdir():
            unpacked.directories.add(name)
        elif member.issym():
            unpacked.symlinks[name] = member.linkname
        elif member.isfile():
            source = tar.extractfile(member)
            assert source is not None  # a regular member always has data
            _read_member(unpacked, member, source, report)
        else:
            report.add(f"{label}:{name}", "archive.escape", "member is a hard link, device or fifo")


def unpack(path: Path, dest: Path, report: Report) -> Unpacked:
    """Read every member of `path`, report the unsafe ones, and keep what the checks need.

    An archive that cannot be read to its end, or breaks a size limit, gets one violation
    (``archive.unreadable`` or ``archive.size``) and comes back with ``complete`` False.
    """
    label = path.name
    full, install_only = FULL_NAME.fullmatch(label), INSTALL_ONLY_NAME.fullmatch(label)
    match = full or install_only
    if match is None:
        expected = (
            "cpython-{version}-{triple}-{options}-{tag}.tar.zst or "
            "cpython-{version}-{triple}[-{flavor}]-install_only[_stripped]-{tag}.tar.gz"
        )
        report.add(label, "archive.name", f"the name does not match {expected}")
    kind = "full" if full or label.endswith(".tar.zst") else "install_only"
    unpacked = Unpacked(label=label, kind=kind, root=dest, name=match.groupdict() if match else {})
    try:
        with open(path, "rb"):
            size = path.stat().st_size
    except OSError as e:
        report.add(label, "archive.unreadable", f"cannot be opened ({e.strerror})")
        return unpacked
    try:
        with open_tar(path, limit=max(EXPANSION_FLOOR_BYTES, EXPANSION_RATIO * size)) as tar:
            _read_members(tar, unpacked, report)
    except ArchiveTooLargeError:
        report.add(label, "archive.size", f"expands more than {EXPANSION_RATIO} times its size (a decompression bomb?)")
    except _Stop as e:
        report.add(label, "archive.size", str(e))
    except CorruptArchiveError as e:
        report.add(label, "archive.unreadable", e.message.removeprefix(f"{label}: "))
    else:
        unpacked.complete = True
    return unpacked
