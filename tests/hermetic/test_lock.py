"""The sources lock and toolchain pins: schema-checked, with one-line errors naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermetic.errors import LockError, ToolchainError
from hermetic.lock import load_lock
from hermetic.toolchain import load_toolchain
from pydist.paths import LOCK_FILE, PINS_SCHEMA, TOOLCHAINS_DIR

ENTRY = """
[[source]]
name = "zlib"
version = "1.3.1"
filename = "zlib-1.3.1.tar.gz"
size = 10
sha256 = "{sha}"
license = "Zlib"
license_file = "LICENSE"
urls = ["debian:pool/main/z/zlib/zlib-1.3.1.tar.gz"]
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sources.lock.toml"
    path.write_text("format = 1\nsource_date_epoch = 1767225600\n" + body)
    return path


def test_the_repository_lock_and_toolchains_load() -> None:
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    assert lock.get("openssl").version == "3.5.7"
    assert {"3.11.2", "3.13.15"} <= set(lock.versions("cpython"))
    for triple in ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "aarch64-apple-darwin"):
        assert load_toolchain(TOOLCHAINS_DIR, triple, PINS_SCHEMA).triple == triple


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (ENTRY.format(sha="0" * 63), "source/0/sha256"),
        (ENTRY.format(sha="0" * 64).replace('license_file = "LICENSE"\n', ""), "'license_file' is a required property"),
        (ENTRY.format(sha="0" * 64).replace("size = 10", 'size = "10"'), "source/0/size"),
        (ENTRY.format(sha="0" * 64).replace("debian:", "ftp://"), "source/0/urls/0"),
        (ENTRY.format(sha="0" * 64) + ENTRY.format(sha="1" * 64), "zlib-1.3.1 is pinned twice"),
        ("[[source]\nname = ", "not valid TOML"),
    ],
)
def test_bad_lock_is_a_one_line_error(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(LockError) as error:
        load_lock(write(tmp_path, body), PINS_SCHEMA)
    message = error.value.one_line()
    assert fragment in message and "sources.lock.toml" in message and "\n" not in message


def test_toolchain_file_for_another_triple_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x86_64-unknown-linux-gnu.toml").write_text(
        (TOOLCHAINS_DIR / "aarch64-unknown-linux-gnu.toml").read_text()
    )
    (tmp_path / "compilers").symlink_to(TOOLCHAINS_DIR / "compilers")
    with pytest.raises(ToolchainError) as error:
        load_toolchain(tmp_path, "x86_64-unknown-linux-gnu", PINS_SCHEMA)
    assert "declares triple 'aarch64-unknown-linux-gnu'" in error.value.one_line()


def test_identity_changes_with_any_package(tmp_path: Path) -> None:
    # The aarch64 target's file pins packages of its own: the compiler runtime and the emulator's guest glibc.
    triple = "aarch64-unknown-linux-gnu"
    original = load_toolchain(TOOLCHAINS_DIR, triple, PINS_SCHEMA, build_host="x86_64-linux")
    text = (TOOLCHAINS_DIR / f"{triple}.toml").read_text()
    guest_sha = text.split("[[guest.package]]", 1)[1].split('sha256 = "', 1)[1][:64]
    (tmp_path / f"{triple}.toml").write_text(text.replace(guest_sha, "f" * 64))
    for pins in ("compilers", "tools", "emulators"):
        (tmp_path / pins).symlink_to(TOOLCHAINS_DIR / pins)
    changed = load_toolchain(tmp_path, triple, PINS_SCHEMA, build_host="x86_64-linux")
    assert changed.identity_digest() != original.identity_digest()
    assert changed.guest is not None and original.guest is not None
    assert changed.guest.id != original.guest.id
    assert changed.compiler is not None and original.compiler is not None
    assert changed.compiler.packages.id == original.compiler.packages.id
