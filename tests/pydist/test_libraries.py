"""The library recipes' artifacts are reproducible: every static archive (``.a``) in every library artifact has
zero member timestamps and owners 0:0, so rebuilding at another time or as another user gives the same bytes.

Real artifacts: the libraries (and OpenSSL) built, or restored from the cache, in the session's copy of the
repository; and real ``llvm-ar`` archives made with the pinned toolchain to show the check catches a
timestamped archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Toolchain, run_scons
from hermetic.archive_read import open_tar
from pydist.libraries import RECIPES

pytestmark = pytest.mark.integration

DEPS = Path("build/x86_64-unknown-linux-gnu/deps")
_MAGIC = b"!<arch>\n"


@dataclass(frozen=True)
class ArMember:
    """The header fields of one ``ar`` member that can carry build-time facts."""

    name: str
    mtime: str
    uid: str
    gid: str


def ar_members(data: bytes) -> list[ArMember]:
    """Every member header of a System V/GNU ``ar`` archive (symbol and name tables included)."""
    assert data[:8] == _MAGIC, "not an ar archive"
    members, pos = [], 8
    while pos < len(data):
        header = data[pos : pos + 60]
        assert len(header) == 60 and header[58:60] == b"`\n", f"bad ar header at offset {pos}"
        fields = [header[a:b].decode().strip() for a, b in ((0, 16), (16, 28), (28, 34), (34, 40))]
        members.append(ArMember(*fields))
        size = int(header[48:58])
        pos += 60 + size + (size & 1)
    return members


def nondeterministic_members(data: bytes) -> list[ArMember]:
    """Members with a timestamp or an owner (the GNU name table ``//`` has empty fields: fine)."""
    return [m for m in ar_members(data) if {m.mtime, m.uid, m.gid} - {"0", ""}]


def static_archives(artifact: Path) -> dict[str, bytes]:
    """The ``.a`` files inside a library artifact, by member name."""
    found = {}
    with open_tar(artifact) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".a"):
                source = tar.extractfile(member)
                assert source is not None
                found[member.name] = source.read()
    return found


@pytest.fixture(scope="module")
def library_artifacts(project: Path) -> list[Path]:
    run_scons(project, "libs", check=True)
    artifacts = sorted((project / DEPS).glob("*.tar.zst"))
    assert {a.name.split("-")[0] for a in artifacts} >= {"openssl", *(n.split("-")[0] for n in RECIPES)}
    return artifacts


def test_every_static_archive_has_zero_timestamps_and_owners(library_artifacts: list[Path]) -> None:
    checked = set()
    for artifact in library_artifacts:
        archives = static_archives(artifact)
        assert archives, f"{artifact.name} holds no static library"
        for name, data in archives.items():
            bad = nondeterministic_members(data)
            assert not bad, f"{artifact.name}: {name}: {len(bad)} member(s) with a timestamp or owner, e.g. {bad[0]}"
            checked.add(Path(name).name)
    # The ones that used to carry timestamps (ncurses' configure picks ``ar -curvU``) are among them.
    assert {"libncursesw.a", "libpanelw.a", "libmenuw.a", "libformw.a", "libedit.a", "libcrypto.a"} <= checked


def test_the_check_catches_an_archive_made_with_real_timestamps(toolchain: Toolchain, tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text("int answer = 42;\n")
    toolchain.run(
        tmp_path,
        "x86_64-linux-gnu-clang -c a.c -o a.o && llvm-ar -curvU stamped.a a.o && llvm-ar -curvD clean.a a.o",
    )
    stamped = nondeterministic_members((tmp_path / "stamped.a").read_bytes())
    # U stamps the object and the symbol table with the time of the run.
    assert [m.name for m in stamped] == ["/", "a.o/"] and all(m.mtime != "0" for m in stamped)
    assert nondeterministic_members((tmp_path / "clean.a").read_bytes()) == []


def test_ar_reader_walks_every_member_of_a_real_archive(toolchain: Toolchain, tmp_path: Path) -> None:
    for name in ("one", "two", "a_rather_long_object_file_name_over_sixteen"):
        (tmp_path / f"{name}.c").write_text(f"int {name} = 1;\n")
    toolchain.run(tmp_path, "for f in *.c; do x86_64-linux-gnu-clang -c $f; done && llvm-ar rcs lib.a *.o")
    names = [m.name for m in ar_members((tmp_path / "lib.a").read_bytes())]
    # The symbol table, the long-name table, then the three objects.
    assert names[0] == "/" and names[1] == "//" and len(names) == 5
