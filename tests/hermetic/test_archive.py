"""Safe extraction and deterministic packing, on real tar files and a real .deb."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from hermetic.archive import extract_deb, extract_tar, pack_tree
from hermetic.errors import UnsafeArchiveError


def write_tar(path: Path, members: list[tarfile.TarInfo], payloads: dict[str, bytes] | None = None) -> Path:
    payloads = payloads or {}
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = payloads.get(info.name)
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def regular(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (regular("pkg/../../evil.txt"), "escapes its directory"),
        (regular("/etc/evil.txt"), "absolute path"),
        (symlink("pkg/link", "../../outside"), "escapes its directory"),
        (symlink("pkg/abs", "/etc/passwd"), "absolute path"),
    ],
)
def test_members_escaping_the_destination_are_refused(tmp_path: Path, member: tarfile.TarInfo, reason: str) -> None:
    archive = write_tar(tmp_path / "bad.tar.gz", [regular("pkg/ok.txt"), member], {"pkg/ok.txt": b"ok"})
    with pytest.raises(UnsafeArchiveError) as error:
        extract_tar(archive, tmp_path / "out")
    assert reason in error.value.one_line()
    assert not (tmp_path / "evil.txt").exists()


def test_write_through_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    # Each link looks harmless on its own ("pkg/up" is the tree root, "pkg/up/up2" lexically "pkg"), but
    # together they lead out of the destination; the file written through them must be refused.
    archive = write_tar(
        tmp_path / "bad.tar.gz",
        [symlink("pkg/up", ".."), symlink("pkg/up/up2", ".."), regular("pkg/up/up2/escaped.txt")],
        {"pkg/up/up2/escaped.txt": b"x"},
    )
    with pytest.raises(UnsafeArchiveError) as error:
        extract_tar(archive, tmp_path / "out" / "deeper")
    assert "leads out of its directory" in error.value.one_line()
    assert not (tmp_path / "out" / "escaped.txt").exists()


def test_auto_strip_and_mtimes_are_kept(tmp_path: Path) -> None:
    a = regular("proj-1.0/configure")
    a.mode = 0o755
    a.mtime = 1_000_000_000
    b = regular("proj-1.0/src/main.c")
    b.mtime = 1_100_000_000
    archive = write_tar(tmp_path / "p.tar.gz", [a, b], {a.name: b"#!/bin/sh\n", b.name: b"int main(){}"})
    extract_tar(archive, tmp_path / "out", strip="auto")
    assert (tmp_path / "out" / "configure").stat().st_mtime == 1_000_000_000
    assert os.access(tmp_path / "out" / "configure", os.X_OK)
    assert (tmp_path / "out" / "src" / "main.c").read_bytes() == b"int main(){}"


def make_deb(path: Path, data_tar: bytes) -> Path:
    """A real ar-format .deb with a zstd data member."""

    def member(name: str, payload: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(payload):<10}`\n".encode()
        return header + payload + (b"\n" if len(payload) % 2 else b"")

    compressed = zstandard.ZstdCompressor().compress(data_tar)
    path.write_bytes(b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("data.tar.zst", compressed))
    return path


def test_deb_absolute_symlinks_are_made_relative(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        lib = tarfile.TarInfo("./lib/x86_64-linux-gnu/ld-2.31.so")
        lib.size = 3
        tar.addfile(lib, io.BytesIO(b"elf"))
        tar.addfile(symlink("./lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-2.31.so"))
    extract_deb(make_deb(tmp_path / "libc6.deb", buf.getvalue()), tmp_path / "root")
    link = tmp_path / "root" / "lib64" / "ld-linux-x86-64.so.2"
    assert os.readlink(link) == "../lib/x86_64-linux-gnu/ld-2.31.so"
    assert link.read_bytes() == b"elf"


def test_packing_is_deterministic(tmp_path: Path) -> None:
    def populate(root: Path, order: list[str]) -> None:
        for name in order:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)
            time.sleep(0.01)
        (root / "bin").mkdir(exist_ok=True)
        (root / "bin" / "tool").write_text("#!/bin/sh\n")
        (root / "bin" / "tool").chmod(0o700)
        (root / "bin" / "alias").symlink_to("tool")

    names = ["b/z.txt", "a.txt", "b/a.txt", "c/d/e.txt"]
    populate(tmp_path / "one", names)
    populate(tmp_path / "two", list(reversed(names)))
    os.utime(tmp_path / "two" / "a.txt", (5, 5))
    pack_tree(tmp_path / "one", tmp_path / "one.tar.zst", mtime=1767225600)
    pack_tree(tmp_path / "two", tmp_path / "two.tar.zst", mtime=1767225600)
    assert (tmp_path / "one.tar.zst").read_bytes() == (tmp_path / "two.tar.zst").read_bytes()

    with (
        open(tmp_path / "one.tar.zst", "rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        members = list(tar)
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 1767225600)}
    modes = {m.name: m.mode for m in members}
    assert modes["bin/tool"] == 0o755 and modes["a.txt"] == 0o644
    assert all(not m.pax_headers for m in members)


def test_packing_puts_first_members_first_and_is_atomic(tmp_path: Path) -> None:
    (tmp_path / "tree" / "install").mkdir(parents=True)
    (tmp_path / "tree" / "install" / "x").write_text("x")
    (tmp_path / "tree" / "PYTHON.json").write_text("{}")
    out = tmp_path / "dist" / "a.tar.gz"
    pack_tree(tmp_path / "tree", out, mtime=0, prefix="python", compression="gz", first=["PYTHON.json"])
    with tarfile.open(out) as tar:
        assert tar.getnames()[0] == "python/PYTHON.json"
    assert [p.name for p in out.parent.iterdir()] == ["a.tar.gz"]  # no temporary file left behind
