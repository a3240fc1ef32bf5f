"""Archives crafted in tests: tar members of every kind, tarballs in each compression, and Debian packages."""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard


@dataclass
class Member:
    """A tar member to write, with its data for regular files."""

    info: tarfile.TarInfo
    data: bytes = b""


def regular(name: str, data: bytes = b"x", mode: int = 0o644, mtime: float = 1_000_000_000) -> Member:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.size = mode, mtime, len(data)
    return Member(info, data)


def directory(name: str, mode: int = 0o755, mtime: float = 1_000_000_000) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, mtime
    return Member(info)


def symlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    return Member(info)


def hardlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return Member(info)


def special(name: str, kind: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = kind, 1, 3
    return Member(info)


def tar_bytes(members: list[Member], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for member in members:
            tar.addfile(member.info, io.BytesIO(member.data) if member.info.isreg() else None)
    return buf.getvalue()


def write_tar(path: Path, members: list[Member], fmt: int = tarfile.GNU_FORMAT) -> Path:
    """A .tar.gz, .tar.xz, .tar.zst or .tar of `members`."""
    raw = tar_bytes(members, fmt)
    if path.name.endswith(".gz"):
        with tarfile.open(path, "w:gz", format=fmt) as tar:
            for member in members:
                tar.addfile(member.info, io.BytesIO(member.data) if member.info.isreg() else None)
    elif path.name.endswith(".xz"):
        path.write_bytes(subprocess.run(["xz", "-c"], input=raw, capture_output=True, check=True).stdout)
    elif path.name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(raw))
    else:
        path.write_bytes(raw)
    return path


def make_deb(path: Path, data_tar: bytes) -> Path:
    """A real ar-format .deb with a zstd data member."""

    def member(name: str, payload: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(payload):<10}`\n".encode()
        return header + payload + (b"\n" if len(payload) % 2 else b"")

    compressed = zstandard.ZstdCompressor().compress(data_tar)
    path.write_bytes(b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("data.tar.zst", compressed))
    return path
