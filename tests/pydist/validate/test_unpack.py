"""Reading distribution archives in bounded memory, on archives crafted here: decompression bombs, huge and
damaged members, unreadable archives, and symlink chains."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import zstandard

from conftest import REPO_ROOT
from pydist.validate import unpack as unpack_module
from pydist.validate import validate
from pydist.validate.report import Report

FULL_NAME = "cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-test.tar.zst"
MEMORY_LIMIT = 1 << 30


def info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size, member.type, member.linkname, member.mode = size, kind, linkname, 0o644
    return member


Data = bytes | Iterable[bytes] | None  # a member's bytes, or its info.size bytes as a stream of pieces

_ZEROS = bytes(8 << 20)


def zeros(size: int, start: bytes = b"") -> Iterator[bytes]:
    """`size` bytes: `start`, then zeros, produced as they are written (never all in memory)."""
    yield start
    left = size - len(start)
    while left > 0:
        yield _ZEROS[: min(left, len(_ZEROS))]
        left -= len(_ZEROS)


def write_archive(path: Path, members: list[tuple[tarfile.TarInfo, Data]]) -> Path:
    """A zstd tarball written member by member: headers from tarfile, data streamed as given."""
    with open(path, "wb") as raw, zstandard.ZstdCompressor(level=1).stream_writer(raw) as out:
        for member, data in members:
            if isinstance(data, bytes):
                member.size = len(data)
                data = [data]
            out.write(member.tobuf(tarfile.GNU_FORMAT))
            for piece in data or ():
                out.write(piece)
            out.write(bytes(-member.size % tarfile.BLOCKSIZE))
        out.write(bytes(2 * tarfile.BLOCKSIZE))  # the end-of-archive blocks
    return path


def small_distribution() -> list[tuple[tarfile.TarInfo, Data]]:
    return [
        (info("python/PYTHON.json"), b'{"version": "8"}'),
        (info("python/install", kind=tarfile.DIRTYPE), None),
        (info("python/install/bin/python3.13"), b"\x7fELF" + bytes(60)),
        (info("python/install/bin/python3", kind=tarfile.SYMTYPE, linkname="python3.13"), None),
        (info("python/install/bin/python", kind=tarfile.SYMTYPE, linkname="python3.13"), None),
        (info("python/install/lib/python3.13/os.py"), b"import abc\n" * 20_000),
    ]


def run_validator(*args: str, memory_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m pydist validate`` in a child process, its address space capped at `memory_limit`."""

    def cap() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "site_scons")}
    return subprocess.run(
        [sys.executable, "-m", "pydist", "validate", *args],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=cap,
        timeout=600,
        check=False,
    )


def test_a_decompression_bomb_is_a_violation_in_bounded_memory(tmp_path: Path) -> None:
    """About 150 KB that expands to 5 GiB: an "ELF" file of 4 GiB and a text file of 1 GiB, all zeros and
    a's. The validator runs with 1 GiB of address space; before, it read each member whole (MemoryError)."""
    bomb = write_archive(
        tmp_path / FULL_NAME,
        [
            (info("python/PYTHON.json"), b"{}"),
            (info("python/install/lib/libbomb.so", size=4 << 30), zeros(4 << 30, b"\x7fELF")),
            (info("python/install/lib/notes.txt", size=1 << 30), zeros(1 << 30, b"a" * 4096)),
        ],
    )
    assert bomb.stat().st_size < 1 << 20
    result = run_validator(str(bomb), memory_limit=MEMORY_LIMIT)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert f"{FULL_NAME}: [archive.size] expands more than 100 times its size (a decompression bomb?)" in lines
    assert any("libbomb.so: [archive.size] is 4294967296 bytes" in line for line in lines), lines
    assert lines[-1].startswith("FAILED: 1 archive(s)")


def test_the_memory_cap_of_the_bomb_test_bites(tmp_path: Path) -> None:
    """The 1 GiB cap is real: a child that tries to hold 2 GiB under it fails with MemoryError."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    child = subprocess.run(
        [sys.executable, "-c", "b = bytearray(2 << 30)"], capture_output=True, text=True, preexec_fn=cap, check=False
    )
    assert child.returncode != 0 and "MemoryError" in child.stderr


def damaged_distribution(tmp_path: Path, how: str) -> Path:
    archive = write_archive(tmp_path / FULL_NAME, small_distribution())
    data = archive.read_bytes()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "corrupt":
        data = data[:40] + bytes(b ^ 0x5A for b in data[40:80]) + data[80:]
    elif how == "not an archive":
        data = b"<html>404</html>\n"
    archive.write_bytes(data)
    return archive


@pytest.mark.parametrize(
    ("how", "cause"),
    [("truncated", "truncated"), ("corrupt", "corrupt zstd data"), ("not an archive", "not a tar archive")],
)
def test_an_unreadable_archive_is_exactly_one_violation(tmp_path: Path, how: str, cause: str) -> None:
    report = validate([damaged_distribution(tmp_path, how)])
    assert [(v.file, v.rule) for v in report.violations] == [(FULL_NAME, "archive.unreadable")]
    assert report.violations[0].message.startswith(cause), report.violations[0].message


def test_the_same_archive_intact_is_read_to_its_end(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / FULL_NAME, small_distribution())
    unpacked = unpack_module.unpack(archive, tmp_path / "work", Report())
    assert unpacked.complete and unpacked.binaries == ["python/install/bin/python3.13"]
    assert (tmp_path / "work" / "python" / "install" / "bin" / "python3.13").read_bytes()[:4] == b"\x7fELF"


def test_the_fipsinstall_step_is_kept_for_the_fips_rules_and_other_modules_are_not(tmp_path: Path) -> None:
    step = b"def main() -> int:\n    return 0\n"
    members = [*small_distribution(), (info("python/install/lib/python3.13/pystandalone_fips.py"), step)]
    archive = write_archive(tmp_path / FULL_NAME, members)
    unpack_module.unpack(archive, tmp_path / "work", Report())
    stdlib = tmp_path / "work" / "python" / "install" / "lib" / "python3.13"
    assert (stdlib / "pystandalone_fips.py").read_bytes() == step
    assert not (stdlib / "os.py").exists()


def big_text(size: int, needle: bytes, at: int) -> bytes:
    """`size` bytes of short lines with `needle` written over them at byte `at`."""
    filler = (b"x" * 63 + b"\n") * (size // 64 + 1)
    return filler[:at] + needle + filler[at + len(needle) : size]


@pytest.mark.parametrize("offset", [-5, -10, 0, 1000])
def test_large_text_is_scanned_in_chunks_across_boundaries(tmp_path: Path, offset: int) -> None:
    """A 17 MiB script with a build path cut by the 1 MiB read boundary is still found, on its line."""
    at = (3 << 20) + offset  # the text is read in chunks of 1 MiB
    text = big_text(17 << 20, b"/build/src/setup", at)
    members = [*small_distribution(), (info("python/install/bin/tool"), text)]
    report = validate([write_archive(tmp_path / FULL_NAME, members)])
    expected_line = text.count(b"\n", 0, at) + 1
    found = [v for v in report.violations if v.rule == "archive.build-paths"]
    assert [(v.file, v.message) for v in found] == [
        (f"{FULL_NAME}:python/install/bin/tool", f"line {expected_line} mentions a sandbox build path")
    ]


def test_chunk_scanning_does_not_take_a_longer_name_for_a_build_path(tmp_path: Path) -> None:
    """ "/build/srcx" is not a sandbox path, even when a chunk ends right after "/build/src"."""
    boundary = 2 << 20
    text = big_text(17 << 20, b"/build/srcx", boundary - len(b"/build/src"))
    members = [*small_distribution(), (info("python/install/share/notes.txt"), text)]
    report = validate([write_archive(tmp_path / FULL_NAME, members)])
    assert [v for v in report.violations if v.rule == "archive.build-paths"] == []


def test_symlinks_are_followed_through_the_archive(tmp_path: Path) -> None:
    chain = "python/install/d0/d1/l"
    members = [
        *small_distribution(),
        (info("python/install/d0/d1", kind=tarfile.DIRTYPE), None),
        (info(chain, kind=tarfile.SYMTYPE, linkname="../.."), None),  # python/install: inside
        (info("python/install/e", kind=tarfile.SYMTYPE, linkname="d0/d1/l/../.."), None),  # lexically "d0"
        (info("python/install/ok", kind=tarfile.SYMTYPE, linkname="d0/d1/l/bin/python3.13"), None),
        (info("python/install/loop", kind=tarfile.SYMTYPE, linkname="loop"), None),
    ]
    report = validate([write_archive(tmp_path / FULL_NAME, members)])
    found = {v.file.split(":", 1)[1]: v.message for v in report.violations if v.rule == "archive.symlink"}
    assert found == {
        "python/install/e": "points to d0/d1/l/../.., outside python/",
        "python/install/loop": "points to loop, which goes through more than 40 symlinks (a loop?)",
    }


@pytest.mark.parametrize(
    ("limit", "value", "members", "message"),
    [
        ("MAX_MEMBERS", 5, 10, "has more than 5 members"),
        ("MAX_NAME_BYTES", 30, 1, "has a member name longer than 30 bytes"),
    ],
)
def test_archives_beyond_the_structural_limits_are_one_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str, value: int, members: int, message: str
) -> None:
    monkeypatch.setattr(unpack_module, limit, value)
    many = [(info(f"python/install/share/a-file-with-a-long-name-{i}.txt"), b"x") for i in range(members)]
    report = validate([write_archive(tmp_path / FULL_NAME, [(info("python/PYTHON.json"), b"{}"), *many])])
    assert [(v.rule, v.message[: len(message)]) for v in report.violations] == [("archive.size", message)]


def test_a_file_used_as_a_directory_is_a_violation(tmp_path: Path) -> None:
    members = [
        *small_distribution(),
        (info("python/install/share/ssl/openssl.cnf"), b"# config\n"),
        (info("python/install/share/ssl/openssl.cnf/fips.so"), b"\x7fELF" + bytes(60)),
    ]
    report = validate([write_archive(tmp_path / FULL_NAME, members)])
    conflicts = [v for v in report.violations if v.rule == "archive.conflict"]
    assert [v.file for v in conflicts] == [f"{FULL_NAME}:python/install/share/ssl/openssl.cnf/fips.so"]
