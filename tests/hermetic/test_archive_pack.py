"""Deterministic packing: the same tree gives the same bytes whatever the order and times files were written in;
first members come first, nothing is left behind, and a packed tree unpacks to itself."""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

import zstandard

from hermetic.archive_extract import extract_tar
from hermetic.archive_pack import pack_tree


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


def test_packed_trees_unpack_to_the_same_tree(tmp_path: Path) -> None:
    source = tmp_path / "tree"
    (source / "lib").mkdir(parents=True)
    (source / "lib" / "libz.so.1").write_bytes(b"\x7fELF")
    (source / "lib" / "libz.so").symlink_to("libz.so.1")
    pack_tree(source, tmp_path / "z.tar.zst", mtime=1767225600)
    extract_tar(tmp_path / "z.tar.zst", tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "lib" / "libz.so") == "libz.so.1"
    assert (tmp_path / "out" / "lib" / "libz.so").read_bytes() == b"\x7fELF"
