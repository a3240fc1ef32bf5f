"""The pinned qemu-user runs a program built for aarch64 with the pinned clang and the generated arm64 sysroot, in
the sandbox, with the target's guest libraries (a real glibc) as the program's root."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import generated_sysroot
from hermetic.content_store import ContentStore
from hermetic.debian import archives_from_apt
from hermetic.fetch import Fetcher
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


def test_runs_an_aarch64_program_linked_against_the_generated_sysroot(tmp_path: Path) -> None:
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
        f"{qemu} -L /guest ./hello explicit > explicit.txt\n"
        f"QEMU_LD_PREFIX=/guest {qemu} ./hello prefix > prefix.txt\n"
    )
    scratch = tmp_path / ".sandbox"
    scratch.mkdir()
    mounts = [
        Mount(tmp_path, "/build/out", True),
        Mount(toolchain.compiler, "/toolchain"),
        Mount(generated_sysroot("aarch64-unknown-linux-gnu"), "/sysroot"),
        Mount(toolchain.guest, "/guest"),
        Mount(emulator, "/emulator"),
    ]
    env = {"PATH": "/toolchain/bin:/usr/bin:/bin", "LC_ALL": "C", "HOME": "/tmp"}
    rc = Bubblewrap(scratch).run(
        ["/bin/sh", "-ec", script], mounts=mounts, env=env, cwd="/build/out", log_file=scratch / "log"
    )
    assert rc == 0, (scratch / "log").read_text()
    assert (tmp_path / "explicit.txt").read_text() == "aarch64 explicit\n"
    assert (tmp_path / "prefix.txt").read_text() == "aarch64 prefix\n"


# A program that runs itself again through exec, as Python runs sys.executable: the child is an aarch64 ELF file
# started by the kernel, which only an emulator registered for the whole sandbox can run.
REEXEC = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    if (argc > 1) { printf("child on %s\n", u.machine); return 0; }
    printf("parent on %s\n", u.machine);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { execl(argv[0], argv[0], "child", (char *)0); return 127; }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
"""


def test_the_runner_sandbox_runs_foreign_programs_and_their_children_transparently(tmp_path: Path) -> None:
    from hermetic.sandbox import Emulator

    cache = default_cache_root()
    fetcher = Fetcher(ContentStore(cache / "downloads"), resolve=archives_from_apt().resolve)
    pins = load_toolchain(TOOLCHAINS_DIR, "aarch64-unknown-linux-gnu", PINS_SCHEMA, build_host="x86_64-linux")
    toolchain = materialize_toolchain(pins, fetcher, cache / "toolchains")
    assert set(toolchain.emulators) == {"aarch64"}
    (tmp_path / "reexec.c").write_text(REEXEC)
    mounts = [
        Mount(tmp_path, "/build/out", True),
        Mount(toolchain.compiler, "/toolchain"),
        Mount(generated_sysroot("aarch64-unknown-linux-gnu"), "/sysroot"),
        Mount(toolchain.guest, "/guest"),
    ]
    env = {"PATH": "/toolchain/bin:/usr/bin:/bin", "LC_ALL": "C", "HOME": "/tmp"}
    host_binfmt = sorted(p.name for p in Path("/proc/sys/fs/binfmt_misc").glob("*"))

    def run(script: str, emulators: list[Emulator]) -> tuple[int, str]:
        scratch = tmp_path / f".sandbox-{len(emulators)}"
        scratch.mkdir(exist_ok=True)
        log = scratch / "log"
        log.write_text("")
        rc = Bubblewrap(scratch, emulators).run(
            ["/bin/sh", "-c", script], mounts=mounts, env=env, cwd="/build/out", log_file=log
        )
        return rc, log.read_text()

    rc, output = run("aarch64-linux-gnu-clang -O2 -fuse-ld=lld reexec.c -o reexec && ./reexec", [])
    assert rc != 0 and "parent on" not in output  # without the emulator the kernel cannot run it
    rc, output = run("./reexec", [Emulator("aarch64", toolchain.emulators["aarch64"], "/guest", 183)])
    assert rc == 0, output
    assert output.splitlines()[-2:] == ["parent on aarch64", "child on aarch64"]
    # A foreign program started with an empty environment (no QEMU_LD_PREFIX) still finds its loader.
    rc, output = run("env -i ./reexec", [Emulator("aarch64", toolchain.emulators["aarch64"], "/guest", 183)])
    assert rc == 0, output
    assert output.splitlines()[-2:] == ["parent on aarch64", "child on aarch64"]
    # The registration lived in the sandbox's own binfmt_misc instance: the host's is as it was.
    assert sorted(p.name for p in Path("/proc/sys/fs/binfmt_misc").glob("*")) == host_binfmt
