"""Reading archives: every kind of damage, in every compression, is one line naming the archive; zstd streams of
several frames are read whole, and the expansion cap stops a decompression bomb. The archives are real ones,
crafted here and then damaged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zstandard

from crafted_archives import make_deb, regular, tar_bytes, write_tar
from hermetic.archive_extract import extract_deb, extract_tar
from hermetic.archive_read import open_tar
from hermetic.errors import CorruptArchiveError


def damaged(kind: str, path: Path) -> Path:
    """A real archive of a few members, then damaged the way `kind` says."""
    members = [regular(f"pkg/file{i}.txt", os.urandom(20_000) + b"tail") for i in range(6)]
    suffix = {"zstd": ".tar.zst", "gzip": ".tar.gz", "xz": ".tar.xz"}.get(kind.split()[0], ".tar")
    archive = write_tar(path.with_name(path.name + suffix), members)
    data = bytearray(archive.read_bytes())
    if kind.endswith("truncated"):
        data = data[: len(data) // 2]
    elif kind == "zstd bad frame":
        data[len(data) // 2] ^= 0xFF
    elif kind == "zstd missing checksum":
        data = data[:-2]
    elif kind == "gzip crc":
        data[-6] ^= 0x01  # the CRC32 in the trailer: every byte decompresses, the check fails
    elif kind == "tar cut at a header":
        data = data[: 512 + 20_480]  # the first member complete, nothing after it
    elif kind == "tar damaged header":
        data[512 + 20_480 + 10] ^= 0x20  # a later header's name, so its checksum no longer matches
    elif kind == "not an archive":
        data = bytearray(b"<html>mirror error page</html>\n" * 40)
    elif kind == "empty":
        data = bytearray()
    archive.write_bytes(bytes(data))
    return archive


CORRUPT = [
    "zstd truncated",
    "zstd bad frame",
    "zstd missing checksum",
    "gzip truncated",
    "gzip crc",
    "xz truncated",
    "tar truncated",
    "tar cut at a header",
    "tar damaged header",
    "not an archive",
    "empty",
]


@pytest.mark.parametrize("kind", CORRUPT)
def test_corrupt_archives_are_one_line_naming_the_file(tmp_path: Path, kind: str) -> None:
    archive = damaged(kind, tmp_path / "dep")
    with pytest.raises(CorruptArchiveError) as error:
        extract_tar(archive, tmp_path / "out", label="zlib 1.3.1 artifact")
    line = error.value.one_line()
    assert line.startswith("zlib 1.3.1 artifact: ") and "\n" not in line, line
    assert error.value.exit_code == 9
    with pytest.raises(CorruptArchiveError, match=rf"^{archive.name}: "), open_tar(archive) as tar:
        for _ in tar:
            pass


def test_a_damaged_deb_is_one_line(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "libc6.deb", tar_bytes([regular("./lib/x", os.urandom(50_000))]))
    deb.write_bytes(deb.read_bytes()[:-20_000])
    with pytest.raises(CorruptArchiveError, match=r"^libc6\.deb: truncated"):
        extract_deb(deb, tmp_path / "root")
    with pytest.raises(CorruptArchiveError, match=r"^libc6\.deb: not a Debian package"):
        extract_deb(damaged("not an archive", tmp_path / "x"), tmp_path / "root", label="libc6.deb")


def test_open_tar_reads_multi_frame_zstd_and_limits_expansion(tmp_path: Path) -> None:
    raw = tar_bytes([regular("a.txt", b"a" * 100_000), regular("b.txt", b"b")])
    frames = zstandard.ZstdCompressor().compress(raw[:10_240]) + zstandard.ZstdCompressor().compress(raw[10_240:])
    (tmp_path / "two.tar.zst").write_bytes(frames)
    with open_tar(tmp_path / "two.tar.zst") as tar:
        assert [m.name for m in tar] == ["a.txt", "b.txt"]
    with (
        pytest.raises(CorruptArchiveError, match="expands to more than 50000 bytes"),
        open_tar(tmp_path / "two.tar.zst", limit=50_000) as tar,
    ):
        for _ in tar:
            pass
