"""Reading archives: a tarball (plain, gzip, xz, bzip2 or zstd, told from its first bytes) opened for one
sequential pass, its decompressed size optionally capped.

A truncated or damaged archive is one CorruptArchiveError naming it: a compressed stream that stops inside a
frame, a bad checksum, or tar data that ends without its end-of-archive block (tarfile alone takes a missing
or damaged header for the end). Reading every member verifies the archive to its end.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

import zstandard

from hermetic.errors import ArchiveTooLargeError, CorruptArchiveError

_CHUNK = 1 << 16
# zstd can expand one input byte about 32768 times: feeding it small pieces bounds what one step produces.
_ZSTD_INPUT = 1 << 10
# The last bytes handed to tarfile are kept to check the block where it saw the archive end.
_TAIL = 1 << 16
# The hint of every CorruptArchiveError: what to do about a damaged archive.
CORRUPT_HINT = "the file is damaged or incomplete: fetch or build it again"


class _Prefixed:
    """A stream whose first bytes were already read (to sniff the compression) and are put back."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative)."""
        if not self._head:
            return self._raw.read(size)
        if size < 0:
            data, self._head = self._head + self._raw.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data


class _ZstdFrames:
    """Decompressed zstd frames that notice a stream stopping inside a frame (zstandard's own readers
    return a short stream instead)."""

    def __init__(self, raw: _Prefixed) -> None:
        self._raw = raw
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._in_frame = False
        self._buffer = b""
        self._offset = 0
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        """Up to `size` decompressed bytes (all that is left when negative)."""
        while (size < 0 or len(self._buffer) - self._offset < size) and not self._eof:
            self._fill()
        end = len(self._buffer) if size < 0 else self._offset + size
        data = self._buffer[self._offset : end]
        self._offset += len(data)
        return data

    def _fill(self) -> None:
        data = self._raw.read(_ZSTD_INPUT)
        if not data:
            if self._in_frame:
                raise EOFError("the zstd stream ends inside a frame")
            self._eof = True
            return
        produced = []
        while data:
            if self._frame.eof:
                self._frame = zstandard.ZstdDecompressor().decompressobj()
            produced.append(self._frame.decompress(data))
            self._in_frame = not self._frame.eof
            data = self._frame.unused_data if self._frame.eof else b""
        self._buffer = self._buffer[self._offset :] + b"".join(produced)
        self._offset = 0


def _decompressor(raw: BinaryIO) -> tuple[str, BinaryIO | _Prefixed | _ZstdFrames]:
    """The compression of `raw`, told from its first bytes, and a reader of its decompressed bytes."""
    head = raw.read(6)
    prefixed = _Prefixed(head, raw)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd", _ZstdFrames(prefixed)
    if head.startswith(b"\x1f\x8b"):
        return "gzip", cast(BinaryIO, gzip.GzipFile(fileobj=cast(BinaryIO, prefixed), mode="rb"))
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz", cast(BinaryIO, lzma.LZMAFile(cast(BinaryIO, prefixed)))
    if head.startswith(b"BZh"):
        return "bzip2", cast(BinaryIO, bz2.BZ2File(cast(BinaryIO, prefixed)))
    return "tar", prefixed


class _ArchiveStream:
    """The decompressed bytes of an archive. Any failure to read them is a CorruptArchiveError naming the
    archive; an optional limit stops a decompression bomb; the last bytes read are kept for the check of
    the end-of-archive block."""

    def __init__(self, raw: BinaryIO, label: str, limit: int | None) -> None:
        self.label = label
        self._limit = limit
        self.position = 0
        self._recent: deque[bytes] = deque()  # the last reads, at least _TAIL bytes once there are that many
        self._recent_size = 0
        with self._reading():
            self.compression, self._inner = _decompressor(raw)

    def read(self, size: int = -1) -> bytes:
        """Up to `size` decompressed bytes."""
        with self._reading():
            data = self._inner.read(size)
        self.position += len(data)
        if self._limit is not None and self.position > self._limit:
            raise ArchiveTooLargeError(
                f"{self.label}: expands to more than {self._limit} bytes (a decompression bomb?)",
                hint="refusing to read further",
            )
        self._recent.append(data)
        self._recent_size += len(data)
        while self._recent_size - len(self._recent[0]) >= _TAIL:
            self._recent_size -= len(self._recent.popleft())
        return data

    def drain(self) -> None:
        """Read to the end, so the compression's own checks (checksums, end markers) run."""
        while self.read(_CHUNK):
            pass

    def zero_block_at(self, offset: int) -> bool:
        """Whether the 512 bytes at `offset` (recently read) are all zero: tar's end-of-archive block."""
        start = offset - (self.position - self._recent_size)
        block = b"".join(self._recent)[max(start, 0) : start + tarfile.BLOCKSIZE]
        return start >= 0 and len(block) == tarfile.BLOCKSIZE and not any(block)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except EOFError as e:
            raise CorruptArchiveError(f"{self.label}: truncated ({e})", hint=CORRUPT_HINT) from None
        except (gzip.BadGzipFile, zlib.error, lzma.LZMAError, zstandard.ZstdError, ValueError) as e:
            kind = getattr(self, "compression", "compressed")
            raise CorruptArchiveError(f"{self.label}: corrupt {kind} data ({e})", hint=CORRUPT_HINT) from None
        except OSError as e:
            raise CorruptArchiveError(f"{self.label}: cannot be read ({e})", hint=CORRUPT_HINT) from None


class _TarStream(tarfile.TarFile):
    """A tarfile reader that, when the members run out, checks the archive really ended there (tarfile
    takes a missing or damaged header for the end) and reads the rest so the compression is verified."""

    def __init__(self, *args: object, archive_stream: _ArchiveStream, **kwargs: object) -> None:
        self.archive_stream = archive_stream
        self.ended = False
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def next(self) -> tarfile.TarInfo | None:
        """The next member, or None at a verified end of the archive."""
        member = super().next()
        # A stream is read once: keeping every header (tarfile does, for random access) only costs memory.
        self.members.clear()  # type: ignore[attr-defined]
        if member is None and not self.ended:
            self.ended = True
            if not self.archive_stream.zero_block_at(self.offset):
                raise CorruptArchiveError(
                    f"{self.archive_stream.label}: truncated or damaged tar data at byte {self.offset}",
                    hint=CORRUPT_HINT,
                )
            self.archive_stream.drain()
        return member


def _tar_problem(error: tarfile.TarError) -> str:
    text = str(error)
    if text == "unexpected end of data":
        return "truncated (the tar data ends inside a member)"
    if text == "empty file":
        return "empty, not a tar archive"
    return f"not a tar archive or damaged ({text})"


@contextmanager
def _tar_errors(label: str) -> Iterator[None]:
    """Report tarfile's own errors as a CorruptArchiveError naming the archive."""
    try:
        yield
    except tarfile.TarError as e:
        raise CorruptArchiveError(f"{label}: {_tar_problem(e)}", hint=CORRUPT_HINT) from None


@contextmanager
def read_tar(raw: BinaryIO, label: str, limit: int | None) -> Iterator[tarfile.TarFile]:
    """The tarball read from `raw` (see :func:`open_tar`), for a stream that is not a file of its own."""
    stream = _ArchiveStream(raw, label, limit)
    with _tar_errors(label):
        tar = _TarStream.open(fileobj=stream, mode="r|", archive_stream=stream)  # type: ignore[call-overload]
        yield tar


@contextmanager
def open_tar(path: Path, *, label: str | None = None, limit: int | None = None) -> Iterator[tarfile.TarFile]:
    """Open a tarball (plain, gzip, xz, bzip2 or zstd, told from its first bytes) for one sequential pass.

    A damaged or truncated archive raises CorruptArchiveError naming `label` (default: the file's name);
    reading every member verifies the archive to its end. `limit` caps the decompressed bytes read
    (ArchiveTooLargeError past it).
    """
    with open(path, "rb") as raw, read_tar(raw, label or path.name, limit) as tar:
        yield tar
