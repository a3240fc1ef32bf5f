"""The pinned qemu-user runs a program built for aarch64 with the pinned clang and arm64 sysroot, in the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermetic.debian import archives_from_apt
from hermetic.fetch import ContentStore, Fetcher
from hermetic.pins import Pin, load_toml
from hermetic.sandbox import Bubblewrap, Mount
from hermetic.toolchain import PackageSet, load_toolchain, materialize, materialize_toolchain
from pydist.paths import PINS_SCHEMA, TOOLCHAINS_DIR
from pydist.settings import default_cache_root

pytestmark = [pytest.mark.integration, pytest.mark.network]

EMULATOR_PIN = TOOLCHAINS_DIR / "emulators" / "qemu-user-debian12-x86_64.toml"
PROGRAM = r"""
#include <stdio.h>
#include <sys/utsname.h>
int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    printf("%s %s\n", u.machine, argc > 1 ? argv[1] : "");
    return 0;
}
"""


def test_the_pin_file_matches_the_schema() -> None:
    data = load_toml(EMULATOR_PIN, PINS_SCHEMA, "emulator")
    assert data["programs"] == {"aarch64": "qemu-aarch64-static"}
    assert [p["name"] for p in data["package"]] == ["qemu-user-static"]


def test_runs_an_aarch64_program_linked_against_the_pinned_sysroot(tmp_path: Path) -> None:
    cache = default_cache_root()
    fetcher = Fetcher(ContentStore(cache / "downloads"), resolve=archives_from_apt().resolve)
    pins = load_toml(EMULATOR_PIN, PINS_SCHEMA, "emulator")
    emulator = materialize(
        PackageSet(kind="emulator", packages=tuple(Pin.from_mapping(p) for p in pins["package"])),
        fetcher,
        cache / "toolchains",
    )
    toolchain = materialize_toolchain(
        load_toolchain(TOOLCHAINS_DIR, "aarch64-unknown-linux-gnu", PINS_SCHEMA), fetcher, cache / "toolchains"
    )
    qemu = f"/emulator/{pins['bin_dir']}/{pins['programs']['aarch64']}"
    (tmp_path / "hello.c").write_text(PROGRAM)
    script = (
        "aarch64-linux-gnu-clang -O2 -fuse-ld=lld hello.c -o hello\n"
        "llvm-readelf -h hello | grep -q AArch64\n"
        "if ./hello 2>/dev/null; then echo 'ran without the emulator'; exit 1; fi\n"
        f"{qemu} -L /sysroot ./hello explicit > explicit.txt\n"
        f"QEMU_LD_PREFIX=/sysroot {qemu} ./hello prefix > prefix.txt\n"
    )
    scratch = tmp_path / ".sandbox"
    scratch.mkdir()
    mounts = [
        Mount(tmp_path, "/build/out", True),
        Mount(toolchain.compiler, "/toolchain"),
        Mount(toolchain.sysroot, "/sysroot"),
        Mount(emulator, "/emulator"),
    ]
    env = {"PATH": "/toolchain/bin:/usr/bin:/bin", "LC_ALL": "C", "HOME": "/tmp"}
    rc = Bubblewrap(scratch).run(
        ["/bin/sh", "-ec", script], mounts=mounts, env=env, cwd="/build/out", log_file=scratch / "log"
    )
    assert rc == 0, (scratch / "log").read_text()
    assert (tmp_path / "explicit.txt").read_text() == "aarch64 explicit\n"
    assert (tmp_path / "prefix.txt").read_text() == "aarch64 prefix\n"
