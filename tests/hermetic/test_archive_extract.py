"""Safe extraction, on real tar files crafted here, a real .deb, zip files and a real pinned source.

Every hostile archive is unpacked into ``<tmp>/a/b/c/d/dest``, so five ``..`` from the destination reach
``<tmp>``, where a 0700 sentinel directory holds a file: after each attempt, everything outside the
destination must be exactly as before (content, mode, mtime, link count), and nothing inside it may lead out.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import stat
import subprocess
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from conftest import REPO_ROOT
from crafted_archives import Member, directory, hardlink, make_deb, regular, special, symlink, tar_bytes, write_tar
from hermetic.archive_extract import extract_deb, extract_tar, extract_zip
from hermetic.errors import ArchiveTooLargeError, CorruptArchiveError, UnsafeArchiveError
from pydist.settings import default_cache_root

# ---------------------------------------------------------------------------------------------- the host around it


def host_state(root: Path, skip: Path) -> dict[str, tuple[object, ...]]:
    """Every path under `root` but `skip`: type, mode, mtime, link count, and content or link target."""
    state: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                detail: object = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                detail = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                detail = None
            state[str(path)] = (st.st_mode, st.st_mtime_ns, st.st_nlink, detail)
    return state


def assert_stays_inside(dest: Path) -> None:
    """Nothing in `dest` is a device, and every link in it resolves inside it."""
    root = dest.resolve()
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            mode = path.lstat().st_mode
            assert stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode), path
            if stat.S_ISLNK(mode):
                assert path.resolve().is_relative_to(root), f"{path} -> {os.readlink(path)} leads out"


@dataclass
class Host:
    """A destination five levels below `top`, and a 0700 sentinel directory with a file beside it."""

    top: Path
    dest: Path
    sentinel: Path

    def snapshot(self) -> dict[str, tuple[object, ...]]:
        return host_state(self.top, skip=self.dest)

    def assert_refused(self, unpack: Callable[[], None], label: str, reason: str) -> None:
        """`unpack` fails with one line naming `label` and giving `reason`, and nothing outside `dest` changed."""
        before = self.snapshot()
        with pytest.raises(UnsafeArchiveError) as error:
            unpack()
        line = error.value.one_line()
        assert line.startswith(f"{label}: ") and reason in line and "\n" not in line, line
        assert self.snapshot() == before


@pytest.fixture
def host(tmp_path: Path) -> Host:
    dest = tmp_path / "a" / "b" / "c" / "d" / "dest"
    dest.mkdir(parents=True)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir(mode=0o700)
    (sentinel / "secret.txt").write_text("the host's own file\n")
    (sentinel / "secret.txt").chmod(0o600)
    old = time.time() - 86400
    os.utime(sentinel / "secret.txt", (old, old))
    os.utime(sentinel, (old, old))
    (tmp_path / "archives").mkdir()
    return Host(top=tmp_path, dest=dest, sentinel=sentinel)


# The chain from issue 8: "l" is the destination itself (harmless alone); "e" climbs five more levels from
# there, which the lexical form ("d0") hides.
CHAIN = [
    *(directory("/".join(f"d{i}" for i in range(n + 1))) for n in range(5)),
    symlink("d0/d1/d2/d3/d4/l", "../../../../.."),
    symlink("e", "d0/d1/d2/d3/d4/l/../../../../.."),
]

HOSTILE: dict[str, tuple[list[Member], str]] = {
    "hard link through a symlink chain (issue 8)": (
        [*CHAIN, hardlink("h", "e/sentinel/secret.txt")],
        "is not a regular file unpacked earlier",
    ),
    "symlink chain through an in-tree link": (CHAIN, "symlink 'e' -> 'd0/d1/d2/d3/d4/l/../../../../..' leads out"),
    "directory member through a link (chmod, utime)": (
        [*CHAIN, directory("e/sentinel", mode=0o777, mtime=0)],
        "goes through the symlink 'e'",
    ),
    "directory member naming a link to the 0700 sentinel (chmod, utime)": (
        [*CHAIN[:6], symlink("s", "d0/d1/d2/d3/d4/l/../../../../../sentinel"), directory("s", mode=0o777, mtime=0)],
        "directory 's' would replace a symlink of the same name",
    ),
    "file written through a link": ([*CHAIN, regular("e/sentinel/planted.txt")], "goes through the symlink 'e'"),
    "file written through a link's link": (
        [symlink("up", ".."), symlink("up/up2", ".."), regular("up/up2/escaped.txt")],
        "goes through the symlink 'up'",
    ),
    "absolute member name": ([regular("/tmp/evil.txt")], "has an absolute path"),
    "'..' in a member name": ([regular("pkg/../../../../../sentinel/evil.txt")], "escapes its directory (..)"),
    "symlink with '..' out": ([symlink("pkg/out", "../../../../../../sentinel")], "leads out of the tree"),
    "symlink to an absolute path": ([symlink("pkg/abs", "/etc/passwd")], "points to absolute path '/etc/passwd'"),
    "symlink with an empty target": ([symlink("pkg/empty", "")], "has an empty target"),
    "hard link with '..'": ([hardlink("h", "../../../../../sentinel/secret.txt")], "points outside the archive"),
    "hard link to an absolute path": ([hardlink("h", "/etc/passwd")], "points outside the archive"),
    "hard link to a symlink": ([symlink("s", "d"), hardlink("h", "s")], "is not a regular file unpacked earlier"),
    "hard link to a file that was replaced by a symlink": (
        [regular("f"), symlink("f", "."), hardlink("h", "f")],
        "is not a regular file unpacked earlier",
    ),
    "character device": ([special("dev/null", tarfile.CHRTYPE)], "is a character device"),
    "block device": ([special("dev/sda", tarfile.BLKTYPE)], "is a block device"),
    "fifo": ([special("fifo", tarfile.FIFOTYPE)], "is a fifo"),
    "unknown member type": ([special("odd", b"Z")], "of unsupported type"),
    "file, then a symlink of the same name, then a member under it": (
        [regular("p"), symlink("p", "../../../../../sentinel"), regular("p/planted.txt")],
        "goes through the symlink 'p'",
    ),
    "file, then a harmless symlink of the same name, then a member under it": (
        [directory("inner"), regular("p"), symlink("p", "inner"), regular("p/planted.txt")],
        "goes through the symlink 'p'",
    ),
    "directory replaced by a symlink, then a member under it": (
        [directory("q"), regular("q/ok.txt"), symlink("q", "../../../../../sentinel"), regular("q/planted.txt")],
        "would replace the directory 'q'",
    ),
    "symlink, then a directory of the same name": (
        [symlink("r", "../../../../../sentinel"), directory("r", mode=0o777, mtime=0)],
        "would replace a symlink of the same name",
    ),
    "symlink loop": ([symlink("a", "b"), symlink("b", "a")], "more than 40 symlinks"),
    "exponential symlink chain": (
        [symlink("l0", "."), *(symlink(f"l{i}", f"l{i - 1}/l{i - 1}") for i in range(1, 40))],
        "more than 40 symlinks",
    ),
    "long symlink chain": (
        [*(symlink(f"c{i}", f"c{i + 1}") for i in range(100)), regular("c100")],
        "more than 40 symlinks",
    ),
    # PAX/GNU long names carry any length; the file system takes 255 bytes per name (ENAMETOOLONG otherwise).
    "a file name longer than the file system allows": (
        [regular(f"pkg/{'n' * 256}.c")],
        "has a name part of 258 bytes, longer than a file system allows (255)",
    ),
    "a directory name longer than the file system allows, deep inside": (
        [directory(f"pkg/src/{'d' * 300}"), regular(f"pkg/src/{'d' * 300}/x.c")],
        "has a name part of 300 bytes",
    ),
    "a multibyte name of 128 characters and 256 bytes": ([regular(f"pkg/{'é' * 128}")], "name part of 256 bytes"),
    "a hard link to a name too long": ([regular("f"), hardlink("h", "x" * 256)], "points outside the archive"),
    "a symlink target longer than PATH_MAX": ([symlink("pkg/s", "a/" * 2100)], "has a target longer than 4095"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archives_are_refused_and_the_host_is_untouched(host: Host, case: str) -> None:
    members, reason = HOSTILE[case]
    archive = write_tar(host.top / "archives" / "hostile.tar.gz", members)
    host.assert_refused(lambda: extract_tar(archive, host.dest, label="demo 1.0 source"), "demo 1.0 source", reason)
    assert_stays_inside(host.dest)


def test_issue_8_attack_cannot_reach_the_host_file(host: Host) -> None:
    """The reported attack: a hard link through the chain, then the sandboxed configure appends to it."""
    members = [*CHAIN, hardlink("h", "e/sentinel/secret.txt"), directory("e/sentinel", mode=0o777, mtime=0)]
    archive = write_tar(host.top / "archives" / "attack.tar.gz", members)
    before = host.snapshot()
    with pytest.raises(UnsafeArchiveError):
        extract_tar(archive, host.dest)
    # What configure (which may write anywhere in its source tree) would do next.
    for dirpath, _, filenames in os.walk(host.dest):
        for name in filenames:
            with open(Path(dirpath, name), "a") as f:
                f.write("appended by configure\n")
    assert not (host.dest / "h").exists() and not (host.dest / "e").is_symlink()
    assert host.snapshot() == before
    assert (host.sentinel / "secret.txt").read_text() == "the host's own file\n"
    assert stat.S_IMODE(host.sentinel.stat().st_mode) == 0o700


def test_a_symlink_left_by_an_earlier_archive_is_not_written_through(host: Host) -> None:
    (host.dest / "prev").symlink_to("../../../../../sentinel")
    archive = write_tar(host.top / "archives" / "next.tar.gz", [regular("prev/planted.txt")])
    before = host.snapshot()
    with pytest.raises(UnsafeArchiveError, match="goes through 'prev', which is a symlink"):
        extract_tar(archive, host.dest)
    assert host.snapshot() == before


def test_hard_links_only_reach_files_of_the_same_archive(host: Host) -> None:
    (host.dest / "earlier.txt").write_text("from another archive")
    archive = write_tar(host.top / "archives" / "h.tar.gz", [hardlink("h", "earlier.txt")])
    with pytest.raises(UnsafeArchiveError, match="not a regular file unpacked earlier from this archive"):
        extract_tar(archive, host.dest)


def test_safe_links_duplicates_and_replacements_are_unpacked(host: Host) -> None:
    members = [
        *CHAIN[:6],  # the directories and "l" (the destination root), without the escaping "e"
        regular("pkg/lib/libx.so.1", b"v1", mode=0o755),
        regular("pkg/lib/libx.so.1", b"v2", mode=0o755),  # a later duplicate wins
        symlink("pkg/lib/libx.so", "libx.so.1"),
        symlink("pkg/include", "../d0/d1"),
        symlink("pkg/top", "../d0/d1/d2/d3/d4/l/d0"),  # through "l", still inside
        symlink("pkg/dangling", "not/yet/there"),
        regular("pkg/link-me.txt", b"shared"),
        hardlink("pkg/also.txt", "pkg/link-me.txt"),
        symlink("pkg/was-a-link", "lib"),
        regular("pkg/was-a-link", b"now a file"),  # a file replaces a symlink not yet created
        regular("pkg/was-a-file", b"old"),
        symlink("pkg/was-a-file", "lib/libx.so"),  # a symlink replaces a file
    ]
    archive = write_tar(host.top / "archives" / "ok.tar.gz", members)
    before = host.snapshot()
    extract_tar(archive, host.dest)
    assert host.snapshot() == before
    assert_stays_inside(host.dest)
    pkg = host.dest / "pkg"
    assert (pkg / "lib" / "libx.so").read_bytes() == b"v2"
    assert os.readlink(pkg / "top") == "../d0/d1/d2/d3/d4/l/d0" and (pkg / "top").resolve() == host.dest / "d0"
    assert os.readlink(pkg / "dangling") == "not/yet/there"
    assert (pkg / "also.txt").stat().st_ino == (pkg / "link-me.txt").stat().st_ino
    assert (pkg / "was-a-link").read_bytes() == b"now a file" and not (pkg / "was-a-link").is_symlink()
    assert (pkg / "was-a-file").read_bytes() == b"v2"


def test_auto_strip_modes_and_mtimes_are_kept(tmp_path: Path) -> None:
    members = [
        regular("proj-1.0/configure", b"#!/bin/sh\n", mode=0o775, mtime=1_000_000_000),
        regular("proj-1.0/src/main.c", b"int main(){}", mode=0o600, mtime=1_100_000_000),
        directory("proj-1.0/src", mode=0o700, mtime=1_200_000_000),
        symlink("proj-1.0/main.c", "src/main.c"),
    ]
    archive = write_tar(tmp_path / "p.tar.gz", members)
    extract_tar(archive, tmp_path / "out", strip="auto")
    out = tmp_path / "out"
    assert (out / "configure").stat().st_mtime == 1_000_000_000
    assert stat.S_IMODE((out / "configure").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "src" / "main.c").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "src").stat().st_mode) == 0o755
    assert (out / "src").stat().st_mtime == 1_200_000_000  # set after its contents were written
    assert (out / "main.c").read_bytes() == b"int main(){}"


# ---------------------------------------------------------------------------------------------- sysroot packages


def test_deb_absolute_symlinks_are_made_relative(tmp_path: Path) -> None:
    data = tar_bytes(
        [
            regular("./lib/x86_64-linux-gnu/ld-2.31.so", b"elf"),
            symlink("./lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-2.31.so"),
            # Lexically collapsed before it is made relative, then checked like any other link.
            symlink("./usr/lib/l", "/"),
            symlink("./usr/lib/e", "/usr/lib/l/../../.."),
        ]
    )
    extract_deb(make_deb(tmp_path / "libc6.deb", data), tmp_path / "root")
    link = tmp_path / "root" / "lib64" / "ld-linux-x86-64.so.2"
    assert os.readlink(link) == "../lib/x86_64-linux-gnu/ld-2.31.so"
    assert link.read_bytes() == b"elf"
    assert os.readlink(tmp_path / "root" / "usr" / "lib" / "l") == "../.."
    assert os.readlink(tmp_path / "root" / "usr" / "lib" / "e") == "../.."
    assert_stays_inside(tmp_path / "root")


def test_deb_relative_escape_through_a_relativized_link_is_refused(host: Host) -> None:
    data = tar_bytes([symlink("./usr/l", "/"), symlink("./usr/e", "l/../../../../../..")])
    deb = make_deb(host.top / "archives" / "evil.deb", data)
    before = host.snapshot()
    with pytest.raises(UnsafeArchiveError, match=r"^evil\.deb: symlink './usr/e' -> 'l/../../../../../..' leads out"):
        extract_deb(deb, host.dest)
    assert host.snapshot() == before


def test_a_later_package_cannot_turn_an_earlier_link_outwards(host: Host) -> None:
    """Each link is harmless alone; together (two packages unpacked into one sysroot) "x" leads out."""
    first = make_deb(host.top / "archives" / "first.deb", tar_bytes([symlink("./usr/p/q/x", "y/../..")]))
    second = make_deb(host.top / "archives" / "second.deb", tar_bytes([symlink("./usr/p/q/y", "../..")]))
    extract_deb(first, host.dest)
    before = host.snapshot()
    with pytest.raises(
        UnsafeArchiveError, match=r"^second\.deb: symlink 'usr/p/q/x' -> 'y/\.\./\.\.', unpacked earlier"
    ):
        extract_deb(second, host.dest)
    assert host.snapshot() == before
    assert not (host.dest / "usr" / "p" / "q" / "y").is_symlink()
    assert_stays_inside(host.dest)


# ---------------------------------------------------------------------------------------------- normal archives


def gnu_tar_tree(archive: Path, dest: Path, strip: int) -> Path:
    """The reference: the same archive unpacked by GNU tar."""
    dest.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(dest), f"--strip-components={strip}"], check=True)
    return dest


def tree_summary(root: Path, *, normalize_modes: bool, started: float) -> dict[str, tuple[object, ...]]:
    """Type, content or target, normalized mode, mtime and link count of every path (directories the
    archive did not list are dated when they were made, after `started`)."""
    summary: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                summary[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                mtime = "now" if st.st_mtime >= started else int(st.st_mtime)
                summary[rel] = ("dir", 0o755 if normalize_modes else stat.S_IMODE(st.st_mode), mtime)
            else:
                exe = bool(st.st_mode & 0o111)
                mode = (0o755 if exe else 0o644) if normalize_modes else stat.S_IMODE(st.st_mode)
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                summary[rel] = ("file", digest, mode, round(st.st_mtime, 3), st.st_nlink)
    return summary


def assert_like_gnu_tar(archive: Path, tmp_path: Path, strip: int) -> int:
    started = time.time() - 1
    ours = tmp_path / "ours"
    extract_tar(archive, ours, strip="auto")
    theirs = gnu_tar_tree(archive, tmp_path / "gnu", strip)
    expected = tree_summary(theirs, normalize_modes=True, started=started)
    assert tree_summary(ours, normalize_modes=False, started=started) == expected
    return len(expected)


def realistic_source(path: Path) -> Path:
    """An archive shaped like an upstream source release: one top directory, pax and GNU long names, old-style
    regular members, directories after their contents, links between directories, fractional mtimes."""
    top = "proj-1.2.3"
    long_dir = f"{top}/" + "/".join(["a-rather-long-directory-name"] * 5)
    old_style = regular(f"{top}/old-style.c", b"/* AREGTYPE */")
    old_style.info.type = tarfile.AREGTYPE
    gnu = [
        directory(f"{top}/", mtime=1_700_000_000),
        regular(f"{top}/configure", b"#!/bin/sh\necho configured\n" * 100, mode=0o775),
        regular(f"{top}/README", b"read me\n", mode=0o664),
        regular(f"{top}/src/big.c", bytes(range(256)) * 8192, mode=0o644),
        regular(f"{top}/src/empty.h", b"", mode=0o600),
        directory(f"{top}/src", mode=0o775, mtime=1_600_000_000),
        directory(f"{top}/empty-dir"),
        regular(f"{long_dir}/{'f' * 120}.txt", b"GNU long name", mode=0o644),
        old_style,
    ]
    pax = [
        regular(f"{long_dir}/{'p' * 120}.txt", b"pax long name", mtime=1_700_000_001.25),
        symlink(f"{top}/include", "src"),
        symlink(f"{top}/doc/README", "../README"),
        hardlink(f"{top}/README.copy", f"{top}/README"),
        regular(f"{top}/unicod\u00e9.txt", "\u00e9t\u00e9".encode()),
    ]
    # One stream of both: GNU headers, then pax ones.
    raw = _concatenate(tar_bytes(gnu, tarfile.GNU_FORMAT), tar_bytes(pax, tarfile.PAX_FORMAT))
    path.write_bytes(zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw))
    return path


def _concatenate(first: bytes, second: bytes) -> bytes:
    """Two tar streams as one: `first` without its trailing zero blocks, then `second`."""
    end = len(first)
    while end >= tarfile.BLOCKSIZE and not any(first[end - tarfile.BLOCKSIZE : end]):
        end -= tarfile.BLOCKSIZE
    return first[:end] + second


def test_a_realistic_source_archive_unpacks_like_gnu_tar(tmp_path: Path) -> None:
    count = assert_like_gnu_tar(realistic_source(tmp_path / "proj-1.2.3.tar.zst"), tmp_path, strip=1)
    assert count >= 15


def pinned_source_in_cache() -> Path | None:
    """A pinned source with symlinks from the shared download cache (zstd's, else expat's, else any)."""
    lock = tomllib.loads((REPO_ROOT / "sources.lock.toml").read_text())
    downloads = default_cache_root() / "downloads"
    present = {}
    for source in lock["source"]:
        path = downloads / "sha256" / source["sha256"][:2] / source["sha256"]
        if path.is_file() and path.stat().st_size < 30_000_000:
            present[source["name"]] = path
    return next((present[n] for n in ("zstd", "expat", *sorted(present)) if n in present), None)


def test_a_real_pinned_source_unpacks_like_gnu_tar(tmp_path: Path) -> None:
    """A real upstream tarball when the shared cache has one; otherwise the realistic one built above."""
    archive = pinned_source_in_cache() or realistic_source(tmp_path / "proj-1.2.3.tar.zst")
    assert assert_like_gnu_tar(archive, tmp_path, strip=1) > 10


# ---------------------------------------------------------------------------------------------- zip files


def write_zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    """A zip file with (name, data, unix mode) members, exactly as given (names are not cleaned)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 5, 1, 12, 0, 0))
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


REG = stat.S_IFREG | 0o644
HOSTILE_ZIPS: dict[str, tuple[list[tuple[str, bytes, int]], str]] = {
    "absolute member name": ([("/tmp/evil.txt", b"x", REG)], "has an absolute path"),
    "'..' in a member name": ([("pkg/../../../../../sentinel/evil.txt", b"x", REG)], "escapes its directory"),
    "backslashes": ([("pkg\\..\\..\\evil.txt", b"x", REG)], "is a Windows path"),
    "drive letter": ([("C:/evil.txt", b"x", REG)], "is a Windows path"),
    "symlink": ([("pkg/link", b"../../../../../sentinel", stat.S_IFLNK | 0o777)], "is a symlink"),
    "fifo": ([("pkg/fifo", b"", stat.S_IFIFO | 0o644)], "is a special file"),
    "the same name twice": ([("pkg/a.h", b"one", REG), ("pkg/./a.h", b"two", REG)], "appears twice"),
    "a name longer than the file system allows": ([(f"pkg/{'w' * 256}.h", b"x", REG)], "name part of 258 bytes"),
}


@pytest.mark.parametrize("case", list(HOSTILE_ZIPS))
def test_hostile_zip_files_are_refused_and_the_host_is_untouched(host: Host, case: str) -> None:
    members, reason = HOSTILE_ZIPS[case]
    archive = write_zip(host.top / "archives" / "hostile.whl", [("pkg/ok.h", b"fine", REG), *members])
    host.assert_refused(lambda: extract_zip(archive, host.dest, label="demo.whl"), "demo.whl", reason)
    # Every name is checked before anything is written.
    assert list(host.dest.iterdir()) == []


def test_zip_selection_places_files_and_skips_the_rest(tmp_path: Path) -> None:
    archive = write_zip(
        tmp_path / "demo.whl",
        [
            ("zig/include/any/", b"", stat.S_IFDIR | 0o755),
            ("zig/include/any/stdio.h", b"int printf(const char *, ...);\n", REG),
            ("zig/include/any/sys/types.h", b"typedef long ssize_t;\n", REG),
            ("zig/include/anything-else.h", b"not under the selected directory\n", REG),
            ("zig/darwin/libSystem.tbd", b"--- !tapi-tbd\n", REG),
            ("zig/zig", b"\x7fELF", stat.S_IFREG | 0o755),
            ("zig/bin/tool", b"#!/bin/sh\n", stat.S_IFREG | 0o755),
        ],
    )
    dest = tmp_path / "out"
    extract_zip(archive, dest, select=[("zig/include/any", "usr/include"), ("zig/darwin/libSystem.tbd", "lib/S.tbd")])
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["lib/S.tbd", "usr/include/stdio.h", "usr/include/sys/types.h"]
    assert (dest / "usr/include/sys/types.h").read_bytes() == b"typedef long ssize_t;\n"
    assert stat.S_IMODE((dest / "lib/S.tbd").stat().st_mode) == 0o644
    # The member's time is kept (make decides from it), as for tarballs.
    assert (dest / "lib/S.tbd").stat().st_mtime == calendar.timegm((2024, 5, 1, 12, 0, 0))
    everything = tmp_path / "all"
    extract_zip(archive, everything)
    assert stat.S_IMODE((everything / "zig/bin/tool").stat().st_mode) == 0o755
    assert (everything / "zig/include/anything-else.h").is_file()


def test_zip_bombs_and_damaged_zips(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "bomb.whl", [("zeros", bytes(1 << 20), REG)])
    assert archive.stat().st_size < 10_000
    with pytest.raises(ArchiveTooLargeError, match="expand to 1048576 bytes, more than the 65536 allowed"):
        extract_zip(archive, tmp_path / "out", limit=1 << 16)
    assert not (tmp_path / "out" / "zeros").exists()
    # One flipped byte in the compressed data: the CRC (or the deflate stream) tells.
    data = bytearray(write_zip(tmp_path / "ok.whl", [("a.txt", b"hello world " * 1000, REG)]).read_bytes())
    data[60] ^= 0xFF
    (tmp_path / "damaged.whl").write_bytes(bytes(data))
    with pytest.raises(CorruptArchiveError, match=r"damaged\.whl"):
        extract_zip(tmp_path / "damaged.whl", tmp_path / "out2")
    (tmp_path / "cut.whl").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CorruptArchiveError, match=r"cut\.whl"):
        extract_zip(tmp_path / "cut.whl", tmp_path / "out3")


def test_a_symlink_whose_target_has_an_overlong_name_is_unpacked_as_a_dangling_link(tmp_path: Path) -> None:
    # Nothing can exist at such a name, so the link leads nowhere, inside the tree: harmless, and no crash.
    archive = write_tar(tmp_path / "a.tar.gz", [directory("pkg"), symlink("pkg/s", f"{'x' * 300}/y")])
    extract_tar(archive, tmp_path / "dest")
    assert os.readlink(tmp_path / "dest" / "pkg" / "s") == f"{'x' * 300}/y"
