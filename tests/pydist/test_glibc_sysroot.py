"""The glibc sysroot generator: its action, and (integration) real sysroots generated from the pinned ziglang wheel in
bubblewrap, then programs and shared objects compiled against them with the pinned clang and run natively (x86_64)
or under the pinned qemu (aarch64) on a real glibc."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TypeVar

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

from conftest import unpack
from hermetic.action import Action, ActionRunner
from hermetic.archive_read import open_tar
from hermetic.errors import ConfigError
from hermetic.lock import load_lock
from hermetic.sandbox import Bubblewrap, Mount
from hermetic.toolchain import Materialized, Toolchain, host_platform, load_toolchain, materialize_toolchain
from pydist import glibc_sysroot
from pydist.elfinfo import glibc_version_key, is_elf, max_glibc_version
from pydist.glibc_sysroot import artifact_name, check_floor, generator_toolchain, sysroot_action
from pydist.macos_evidence import make_fetcher
from pydist.paths import LOCK_FILE, PINS_SCHEMA, TOOLCHAINS_DIR
from pydist.settings import default_cache_root

TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu"}
LOADERS = {"x86_64": "ld-linux-x86-64.so.2", "aarch64": "ld-linux-aarch64.so.1"}
STUBS = ("libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1", "libresolv.so.2")
EPOCH = load_lock(LOCK_FILE, PINS_SCHEMA).source_date_epoch


def target(arch: str, build_host: str = "x86_64-linux") -> Toolchain:
    """The pinned toolchain of the Linux target for `arch`, for `build_host`."""
    return load_toolchain(TOOLCHAINS_DIR, TRIPLES[arch], PINS_SCHEMA, build_host=build_host)


# ----------------------------------------------------------------------------------------------- the action


@pytest.mark.parametrize("arch", sorted(TRIPLES))
def test_the_action_runs_the_script_with_zig_the_compiler_and_no_sysroot(arch: str) -> None:
    action = sysroot_action(target(arch), "2.17", source_date_epoch=EPOCH)
    assert action.name == f"sysroot-glibc-2.17-{arch}" and action.rule == "sysroot"
    assert artifact_name(arch, "2.17") == f"sysroot-glibc-2.17-{arch}.tar.zst"
    [step] = action.steps
    assert step.argv == (
        "/bin/sh",
        "/build/files/make_glibc_sysroot.sh",
        "/tools/zig/ziglang/zig",
        arch,
        "2.17",
        "/build/out/sysroot",
    )
    assert [f.label for f in action.files] == ["site_scons/pydist/in_sandbox/make_glibc_sysroot.sh"]
    identity = action.description()["toolchain"]
    assert [tool["name"] for tool in identity["tools"]] == ["zig"]
    assert identity["tools"][0]["packages"][0]["sha256"].startswith("ea6cc5d87b03")
    # Nothing of the sysroot it replaces, of the emulator or of the target's compile flags.
    assert "sysroot" not in identity and "emulator" not in identity and "guest" not in identity
    assert identity["target"] == {"clang_triple": f"{arch}-linux-gnu", "glibc_floor": "2.17"}
    assert "/tools/zig/bin" in action.full_env()["PATH"].split(":")


def test_the_key_follows_the_floor_and_ignores_the_targets_flags_and_sysroot() -> None:
    x86 = target("x86_64")
    key = sysroot_action(x86, "2.17", source_date_epoch=EPOCH).key()
    assert sysroot_action(x86, "2.28", source_date_epoch=EPOCH).key() != key
    assert sysroot_action(target("aarch64"), "2.17", source_date_epoch=EPOCH).key() != key
    other_flags = dataclasses.replace(x86, target={**x86.target, "cflags": ["-O3"]}, sysroot=None)
    assert sysroot_action(other_flags, "2.17", source_date_epoch=EPOCH).key() == key


@pytest.mark.parametrize("floor", ["2.x", "3.17", "2.017", "2.17.1", " 2.17", ""])
def test_a_floor_that_is_no_glibc_release_is_refused(floor: str) -> None:
    with pytest.raises(ConfigError, match="is not a glibc release"):
        sysroot_action(target("x86_64"), floor, source_date_epoch=EPOCH)
    assert check_floor("2.17") == "2.17"


def test_a_host_without_a_zig_pin_and_a_macos_target_are_refused() -> None:
    # A pin that names no zig for the build host (as before the aarch64 host had one).
    without_zig = dataclasses.replace(target("aarch64"), available_tools={})
    with pytest.raises(ConfigError, match="pins no zig for the build host x86_64-linux"):
        generator_toolchain(without_zig, "2.17")
    native = generator_toolchain(target("aarch64", build_host="aarch64-linux"), "2.17")
    assert [tool.packages.packages[0].filename for tool in native.tools] == [
        "ziglang-0.17.1-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl"
    ]
    macos = load_toolchain(TOOLCHAINS_DIR, "aarch64-apple-darwin", PINS_SCHEMA, build_host="aarch64-macos")
    with pytest.raises(ConfigError, match="no glibc sysroot can be generated"):
        generator_toolchain(macos, "2.17")


def test_the_script_is_shellcheck_clean() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    result = subprocess.run([shellcheck, glibc_sysroot.SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["riscv64", "2.17"], "unsupported architecture 'riscv64'"),
        (["x86_64", "2.17.1"], "glibc floor '2.17.1' is not of the form 2.N"),
    ],
)
def test_the_script_refuses_what_it_cannot_generate(tmp_path: Path, args: list[str], message: str) -> None:
    zig = tmp_path / "zig"
    zig.write_text("#!/bin/sh\nexit 99\n")
    zig.chmod(0o755)
    command = ["/bin/sh", str(glibc_sysroot.SCRIPT), str(zig), *args, str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 1 and message in result.stderr
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------- generated

F = TypeVar("F", bound=Callable[..., object])


def generates(test: F) -> F:
    """Mark a test that generates sysroots: slow, needs PyPI and the Debian archive (a cold cache), and an x86_64
    Linux host (the only one zig is pinned for)."""
    on_x86_64 = pytest.mark.skipif(host_platform() != "x86_64-linux", reason="zig is pinned for x86_64 Linux hosts")
    return pytest.mark.integration(pytest.mark.network(on_x86_64(test)))


@dataclass(frozen=True)
class Generated:
    """One generated sysroot: the action, its artifact unpacked, and the work tree it came from."""

    arch: str
    glibc: str
    action: Action
    artifact: Path
    root: Path
    work: Path

    @property
    def libdir(self) -> Path:
        """usr/lib/<multiarch>."""
        return self.root / "usr" / "lib" / f"{self.arch}-linux-gnu"


Generate = Callable[..., Generated]


@pytest.fixture(scope="module")
def generate(tmp_path_factory: pytest.TempPathFactory) -> Generate:
    """Generate (once per arguments) a sysroot with the real runner, in a work tree of its own."""
    cache = default_cache_root()
    made: dict[tuple[str, str, int], Generated] = {}

    def run(arch: str, glibc: str = "2.17", copy: int = 0) -> Generated:
        if (arch, glibc, copy) not in made:
            work = tmp_path_factory.mktemp(f"gen-{arch}-{glibc}-{copy}")
            runner = ActionRunner(
                fetcher=make_fetcher(cache),
                toolchain_root=cache / "toolchains",
                work_root=work / "work",
                log_root=work / "logs",
                jobs=2,
            )
            action = sysroot_action(target(arch), glibc, source_date_epoch=EPOCH)
            artifact = work / artifact_name(arch, glibc)
            runner.run(action, artifact, [])
            made[arch, glibc, copy] = Generated(arch, glibc, action, artifact, unpack(artifact, work / "root"), work)
        return made[arch, glibc, copy]

    return run


@pytest.fixture(scope="module")
def materialized() -> Callable[[str], Materialized]:
    """The target's own toolchain for this host: its compiler (the aarch64 one with the arm64 compiler runtime),
    the emulator and its guest libraries (a real glibc 2.31, for qemu to run aarch64 programs on)."""
    cache = default_cache_root()
    return lambda arch: materialize_toolchain(target(arch), make_fetcher(cache), cache / "toolchains")


def elf_files(root: Path) -> list[Path]:
    """Every ELF file under `root`, sorted."""
    return sorted(p for p in root.rglob("*") if is_elf(p))


def soname(path: Path) -> str | None:
    """DT_SONAME of a shared object."""
    with open(path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_SONAME":
                        return str(tag.soname)
    return None


def defined_versions(path: Path) -> tuple[set[str], dict[str, set[str]]]:
    """The ``GLIBC_x.y`` version nodes a shared object defines, and each defined dynamic symbol -> its versions."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        nodes: dict[int, str] = {}
        for section in elf.iter_sections():
            if isinstance(section, GNUVerDefSection):
                for verdef, auxiliaries in section.iter_versions():
                    nodes[verdef["vd_ndx"]] = next(iter(auxiliaries)).name
        dynsym = elf.get_section_by_name(".dynsym")
        versym = elf.get_section_by_name(".gnu.version")
        symbols: dict[str, set[str]] = {}
        for index, symbol in enumerate(dynsym.iter_symbols()):
            ndx = versym.get_symbol(index)["ndx"]
            if symbol.name and symbol["st_shndx"] != "SHN_UNDEF" and isinstance(ndx, int):
                symbols.setdefault(symbol.name, set()).add(nodes[ndx & 0x7FFF])  # the high bit: not the default
    return {n for n in nodes.values() if glibc_version_key(n) is not None}, symbols


def newest(versions: set[str]) -> str:
    """The highest of ``GLIBC_x.y`` names."""
    return max(versions, key=lambda v: glibc_version_key(v) or ())


def undefined_versions(path: Path) -> dict[str, str | None]:
    """Each undefined dynamic symbol of `path` -> the version it is bound to (None: unversioned)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        versions: dict[int, str] = {}
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for _verneed, auxiliaries in section.iter_versions():
                    versions.update({aux["vna_other"]: aux.name for aux in auxiliaries})
        dynsym = elf.get_section_by_name(".dynsym")
        versym = elf.get_section_by_name(".gnu.version")
        found: dict[str, str | None] = {}
        for index, symbol in enumerate(dynsym.iter_symbols()):
            if symbol.name and symbol["st_shndx"] == "SHN_UNDEF":
                ndx = versym.get_symbol(index)["ndx"] if versym is not None else None
                found[symbol.name] = versions.get(ndx) if isinstance(ndx, int) else None
    return found


def ar_members(data: bytes) -> list[tuple[str, bytes, bytes]]:
    """(name, header fields mtime+uid+gid+mode, content) of each object in a GNU ``ar`` archive, long names
    resolved through the name table."""
    assert data[:8] == b"!<arch>\n"
    raw, pos = [], 8
    while pos < len(data):
        header = data[pos : pos + 60]
        size = int(header[48:58])
        raw.append((header[:16].decode().rstrip(), header[16:48], data[pos + 60 : pos + 60 + size]))
        pos += 60 + size + (size & 1)
    names = next((content for name, _, content in raw if name == "//"), b"")
    members = []
    for name, fields, content in raw:
        if name in ("/", "//"):  # the symbol table and the long-name table
            continue
        if name[1:].isdigit():  # "/<offset>": a long name, ending in "/\n" in the table
            offset = int(name[1:])
            name = names[offset : names.index(b"/\n", offset)].decode() + "/"
        members.append((name.removesuffix("/"), fields, content))
    return members


def section_names(data: bytes) -> set[str]:
    """The section names of an ELF file's bytes."""
    return {section.name for section in ELFFile(BytesIO(data)).iter_sections()}


@generates
@pytest.mark.parametrize("arch", sorted(TRIPLES))
def test_the_sysroot_has_glibcs_layout(generate: Generate, arch: str) -> None:
    made = generate(arch)
    libdir = made.libdir
    loader = LOADERS[arch]
    expected = {*STUBS, loader, "crt1.o", "Scrt1.o", "crti.o", "crtn.o", "libc_nonshared.a", "libc.so"}
    expected.add("libcrypt.so.1")
    links = {f"{name.split('.so')[0]}.so": name for name in [*STUBS, "libcrypt.so.1"] if name != "libc.so.6"}
    assert {p.name for p in libdir.iterdir()} == expected | set(links)
    for link, stub in links.items():
        assert (libdir / link).readlink() == Path(stub)
    for stub in [*STUBS, "libcrypt.so.1"]:
        assert soname(libdir / stub) == stub
    assert soname(libdir / loader) == loader  # zig calls it libld.so.2; its soname is the loader's
    script = (libdir / "libc.so").read_text()
    triple = f"/usr/lib/{arch}-linux-gnu"
    assert f"GROUP ( {triple}/libc.so.6 {triple}/libc_nonshared.a  AS_NEEDED ( {triple}/{loader} ) )" in script
    features = (made.root / "usr/include/features.h").read_text().splitlines()
    guard = next(i for i, line in enumerate(features) if line.startswith("#define\t_FEATURES_H"))
    assert features[guard + 1] == "#define __GLIBC_MINOR__ 17"
    assert sum(line.startswith("#define __GLIBC_MINOR__") for line in features) == 1
    # glibc's own headers, the architecture's and the kernel's (uapi).
    for header in ("stdio.h", "bits/wordsize.h", "gnu/stubs.h", "linux/random.h", "asm/unistd.h", "asm-generic"):
        assert (made.root / "usr/include" / header).exists(), header
    assert sorted(p.name for p in made.root.iterdir()) == [".hermetic", "usr"]


@generates
@pytest.mark.parametrize("arch", sorted(TRIPLES))
def test_the_stubs_define_nothing_newer_than_the_floor(generate: Generate, arch: str) -> None:
    made = generate(arch)
    nodes: set[str] = set()
    symbols: dict[str, set[str]] = {}
    for name in STUBS:
        stub_nodes, stub_symbols = defined_versions(made.libdir / name)
        nodes |= stub_nodes
        for symbol, versions in stub_symbols.items():
            symbols.setdefault(symbol, set()).update(versions)
    assert newest(nodes) == "GLIBC_2.17"
    bound = set().union(*symbols.values())
    assert newest(bound) == "GLIBC_2.17"
    # aarch64's first glibc release is 2.17: every symbol has that version. x86_64's go back to 2.2.5, and keep
    # their old versions beside newer ones (memcpy changed in 2.14; clock_gettime moved from librt in 2.17).
    if arch == "aarch64":
        assert bound == {"GLIBC_2.17"}
    else:
        assert min(bound, key=lambda v: glibc_version_key(v) or ()) == "GLIBC_2.2.5"
        assert symbols["memcpy"] == {"GLIBC_2.2.5", "GLIBC_2.14"}
        assert "GLIBC_2.17" in symbols["clock_gettime"]
    # Functions of later releases are not there: not as themselves, nor as their newer names.
    assert not {"getrandom", "fcntl64", "stat", "reallocarray", "memfd_create", "gettid"} & set(symbols)
    assert {"__xstat", "fcntl", "pthread_create", "dlopen", "sqrt", "clock_gettime"} <= set(symbols)
    # The crypt library's stub, built by the script: glibc's first version on each architecture.
    _, crypt_symbols = defined_versions(made.libdir / "libcrypt.so.1")
    first = "GLIBC_2.17" if arch == "aarch64" else "GLIBC_2.2.5"
    assert crypt_symbols == {"crypt": {first}, "crypt_r": {first}}
    assert "struct crypt_data" in (made.root / "usr/include/crypt.h").read_text()


@generates
@pytest.mark.parametrize("arch", sorted(TRIPLES))
def test_nothing_names_the_cache_the_host_or_the_time(generate: Generate, arch: str) -> None:
    made = generate(arch)
    host_paths = [str(made.work).encode(), str(default_cache_root()).encode(), str(Path.home()).encode()]
    record = made.root / ".hermetic" / f"{made.action.name}.action.json"
    assert record.is_file()
    for path in sorted(p for p in made.root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        assert not any(host in data for host in host_paths), path
        if path != record:  # the record names the sandbox's paths of its step, on purpose
            assert b"/build/" not in data and b"zig-global-cache" not in data and b"zig-local-cache" not in data, path
    # No debug information and no compiler banner in any object, shared or archived.
    objects = [(str(p), p.read_bytes()) for p in elf_files(made.root)]
    archive = (made.libdir / "libc_nonshared.a").read_bytes()
    members = [(name, content) for name, _, content in ar_members(archive)]
    assert len(objects) == len(STUBS) + 6 and len(members) >= 10  # + the loader, libcrypt and four start files
    for name, data in objects + members:
        sections = section_names(data)
        assert ".comment" not in sections and not {s for s in sections if s.startswith(".debug")}, name
    # Plain member names, no times, owners or modes.
    assert all(re.fullmatch(r"[a-z_]+[a-z0-9_.-]*\.o", name) for name, _, _ in ar_members(archive))
    assert {fields for _, fields, _ in ar_members(archive)} == {
        b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"644".ljust(8)
    }
    with open_tar(made.artifact) as tar:
        assert {member.mtime for member in tar} == {EPOCH}


@generates
def test_two_generations_are_byte_identical(generate: Generate) -> None:
    first, second = generate("x86_64"), generate("x86_64", copy=1)
    assert first.work != second.work and first.action.key() == second.action.key()
    assert first.artifact.read_bytes() == second.artifact.read_bytes()


@generates
def test_the_floor_is_a_parameter(generate: Generate) -> None:
    made = generate("x86_64", "2.28")
    bound = set().union(*(v for name in STUBS for v in defined_versions(made.libdir / name)[1].values()))
    assert newest(bound) == "GLIBC_2.28"
    assert "#define __GLIBC_MINOR__ 28" in (made.root / "usr/include/features.h").read_text().splitlines()
    assert made.artifact.name == "sysroot-glibc-2.28-x86_64.tar.zst"


# --------------------------------------------------------------------------------- compiling against it

PROGRAM = r"""
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void *work(void *arg) { return (void *)(sqrt(*(double *)arg) == 3.0 ? 1 : 0); }

int main(void) {
    struct stat st;
    pthread_t thread;
    void *result;
    double nine = 9.0;
    int flags = fcntl(0, F_GETFD);
    if (stat("/", &st) != 0 || !S_ISDIR(st.st_mode)) return 2;
    if (pthread_create(&thread, NULL, work, &nine) != 0 || pthread_join(thread, &result) != 0) return 3;
    printf("stat ok, fcntl %s, thread %s\n", flags >= 0 ? "ok" : "failed", result ? "ok" : "failed");
    return 0;
}
"""
# A library that uses functions newer than 2.17: getrandom (2.25) through its own prototype, as code that does not
# trust the headers does, and gettid (2.30), which the headers still declare at the floor.
NEWER = r"""
#define _GNU_SOURCE
#include <sys/types.h>
#include <unistd.h>
extern ssize_t getrandom(void *buffer, size_t length, unsigned int flags);
int random_byte(void) { unsigned char b; return getrandom(&b, 1, 0) == 1 ? b : -1; }
int thread_id(void) { return (int)gettid(); }
"""
# A library that needs libc_nonshared.a: at -O0, stat is its wrapper around __xstat.
STAT_LIBRARY = r"""
#include <sys/stat.h>
int is_directory(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISDIR(st.st_mode); }
"""


def sandbox(work: Path, script: str, mounts: list[Mount]) -> subprocess.CompletedProcess[str]:
    """Run `script` in bubblewrap with `work` as /build/out; the result, with its output, whatever its status."""
    scratch = work / ".sandbox"
    scratch.mkdir(parents=True, exist_ok=True)
    log = scratch / "log"
    log.write_text("")
    env = {"PATH": "/toolchain/bin:/usr/bin:/bin", "LC_ALL": "C", "HOME": "/tmp", "TMPDIR": "/tmp"}
    argv = ["/bin/sh", "-ec", script]
    rc = Bubblewrap(scratch).run(
        argv, mounts=[Mount(work, "/build/out", True), *mounts], env=env, cwd="/build/out", log_file=log
    )
    return subprocess.CompletedProcess(argv, rc, log.read_text(), "")


def compile_flags(arch: str) -> str:
    """What the consumer passes: target, sysroot, and the generator's consumer flags."""
    return " ".join(glibc_sysroot.consumer_flags(target(arch), "/sysroot"))


def build(arch: str, made: Generated, tools: Materialized, work: Path) -> subprocess.CompletedProcess[str]:
    """Compile the program (PIE and not) and the libraries against the generated sysroot."""
    (work / "program.c").write_text(PROGRAM)
    (work / "stat_library.c").write_text(STAT_LIBRARY)
    cc = f"clang {compile_flags(arch)}"
    script = (
        f"{cc} -O2 program.c -o program -lm -lpthread\n"
        f"{cc} -O2 -no-pie program.c -o program-no-pie -lm -lpthread\n"
        f"{cc} -O0 -fPIC -shared stat_library.c -o libstat.so\n"
    )
    mounts = [Mount(tools.compiler, "/toolchain"), Mount(made.root, "/sysroot")]
    result = sandbox(work, script, mounts)
    assert result.returncode == 0, result.stdout
    return result


def check_bindings(work: Path, arch: str) -> None:
    """No version newer than 2.17, stat and fcntl bound to their old versions, the program's loader."""
    base = {"x86_64": "GLIBC_2.2.5", "aarch64": "GLIBC_2.17"}[arch]
    for name in ("program", "program-no-pie", "libstat.so"):
        newest_needed = max_glibc_version([work / name])
        assert newest_needed is not None and glibc_version_key(f"GLIBC_{newest_needed}") <= (2, 17), name
        found = undefined_versions(work / name)
        assert found["__xstat"] == base and "stat" not in found, name
    program = undefined_versions(work / "program")
    assert program["fcntl"] == base and "fcntl64" not in program
    assert program["pthread_create"] == base


@generates
def test_an_x86_64_program_links_against_it_and_runs(
    generate: Generate, materialized: Callable[[str], Materialized], tmp_path: Path
) -> None:
    made = generate("x86_64")
    tools = materialized("x86_64")
    build("x86_64", made, tools, tmp_path)
    check_bindings(tmp_path, "x86_64")
    # Natively, on the host's glibc (a newer one: the point of a floor).
    ran = sandbox(tmp_path, "./program && ./program-no-pie", [])
    assert ran.returncode == 0 and ran.stdout.count("stat ok, fcntl ok, thread ok\n") == 2, ran.stdout


@generates
def test_an_aarch64_program_links_against_it_and_runs_under_qemu(
    generate: Generate, materialized: Callable[[str], Materialized], tmp_path: Path
) -> None:
    made = generate("aarch64")
    tools = materialized("aarch64")
    build("aarch64", made, tools, tmp_path)
    check_bindings(tmp_path, "aarch64")
    # Under the pinned qemu, on the real glibc 2.31 of the target's guest packages (Debian 11's).
    qemu = tools.emulators["aarch64"]
    assert tools.guest is not None
    mounts = [Mount(qemu.parent, "/emulator"), Mount(tools.guest, "/guest")]
    script = f"for p in program program-no-pie; do /emulator/{qemu.name} -L /guest ./$p; done"
    ran = sandbox(tmp_path, script, mounts)
    assert ran.returncode == 0 and ran.stdout.count("stat ok, fcntl ok, thread ok\n") == 2, ran.stdout


@generates
@pytest.mark.parametrize("arch", sorted(TRIPLES))
def test_a_shared_link_leaves_newer_functions_unversioned_and_z_defs_refuses_it(
    generate: Generate, materialized: Callable[[str], Materialized], arch: str, tmp_path: Path
) -> None:
    """The gap a validator must close: a shared object may leave undefined a function the stubs do not have.
    lld accepts it (undefined symbols are allowed in shared objects) and records it with no version, so a check
    of the highest GLIBC_ version needed sees nothing; the object fails only when it is loaded on an old glibc."""
    made = generate(arch)
    tools = materialized(arch)
    (tmp_path / "newer.c").write_text(NEWER)
    (tmp_path / "main.c").write_text("int random_byte(void);\nint main(void) { return random_byte() < 0; }\n")
    cc = f"clang {compile_flags(arch)} -O2 -fPIC"
    mounts = [Mount(tools.compiler, "/toolchain"), Mount(made.root, "/sysroot")]
    shared = sandbox(tmp_path, f"{cc} -shared newer.c -o libnewer.so", mounts)
    assert shared.returncode == 0, shared.stdout
    found = undefined_versions(tmp_path / "libnewer.so")
    assert found["getrandom"] is None and found["gettid"] is None
    # Only crtbegin's __cxa_finalize is versioned: the check of the newest version needed is blind to them.
    assert max_glibc_version([tmp_path / "libnewer.so"]) == {"x86_64": "2.2.5", "aarch64": "2.17"}[arch]
    defs = sandbox(tmp_path, f"{cc} -shared -Wl,-z,defs newer.c -o libnewer-defs.so", mounts)
    assert defs.returncode != 0 and "undefined symbol: getrandom" in defs.stdout
    assert "undefined symbol: gettid" in defs.stdout and not (tmp_path / "libnewer-defs.so").exists()
    # An executable is refused anyway: undefined symbols are errors there by default.
    program = sandbox(tmp_path, f"{cc} main.c newer.c -o program", mounts)
    assert program.returncode != 0 and "undefined symbol: getrandom" in program.stdout
