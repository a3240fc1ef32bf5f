"""A glibc sysroot for a Linux target and a glibc floor, generated from the pinned ziglang wheel in the sandbox.

The ziglang wheel carries glibc's ABI lists (every symbol of every release), the sources of the start files and of
``libc_nonshared.a``, and the headers, guarded by ``__GLIBC_MINOR__`` where they declare newer functions. Its
``zig`` program writes link stubs for any floor: shared objects that define each symbol at its newest version not
above the floor, so whatever links against them asks for nothing newer. ``in_sandbox/make_glibc_sysroot.sh``
has zig link a trivial program, takes what zig generated, strips what names zig's cache and rebuilds
``libc_nonshared.a`` with plain member names; the artifact is the sysroot itself::

    usr/include/                      glibc and Linux uapi headers, __GLIBC_MINOR__ pinned in features.h
    usr/lib/<arch>-linux-gnu/
        libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 libresolv.so.2
        libcrypt.so.1                 a stub of glibc's crypt library (crypt, crypt_r), built here; crypt.h too
        ld-linux-x86-64.so.2 | ld-linux-aarch64.so.1      the loader's stub, under its real name
        crt1.o Scrt1.o crti.o crtn.o libc_nonshared.a
        libc.so                       glibc's linker script: libc.so.6, libc_nonshared.a, AS_NEEDED(loader)
        libm.so libpthread.so ...     links to the stubs
    .hermetic/<name>.action.json      the action that made it

The floor is a parameter (data, e.g. ``glibc_floor`` in a target's pin), not part of this code. The compiler
runtime is not in the sysroot: it is the compiler's, from clang's resource directory (``--rtlib=compiler-rt``,
see :data:`CONSUMER_FLAGS`).

What the floor does not stop: the headers still declare some newer functions (gettid, explicit_bzero, getentropy,
preadv2, renameat2, ...), and a function no stub defines links into a *shared* object as an undefined symbol with
no version (an executable's link fails). Such an object passes a check of the newest ``GLIBC_`` version it needs
and fails only when loaded on an old glibc: link shared objects with ``-Wl,-z,defs`` or have the validator reject
unversioned undefined symbols that libc would have to provide. Configure scripts are not fooled by the
declarations: their link tests fail against the stubs.

The generator's toolchain is the target's compiler (for ``clang``, ``llvm-objcopy`` and ``llvm-ar``) and the
``zig`` tool pin the target names for the build host, with an empty sysroot: the sysroot it replaces is not an
input, and neither are the target's compile flags or emulator, so changing those regenerates nothing.
"""

from __future__ import annotations

import dataclasses
import re

from hermetic.action import FILES, OUT, TMP, Action, InputFile, Step
from hermetic.errors import ConfigError
from hermetic.toolchain import Toolchain, ToolPin
from pydist.paths import IN_SANDBOX, repo_label
from pydist.targets import SYSROOT_GENERATOR

# The rule's name in action keys and provenance; bump the version when the generated tree changes.
RULE = "sysroot"
RULE_VERSION = 2
# The tool pin (toolchains/tools/) a target names for each build host that can generate its sysroot.
ZIG_TOOL = SYSROOT_GENERATOR
# The script that runs in the sandbox, and the directory it fills (packed as the artifact).
SCRIPT = IN_SANDBOX / "make_glibc_sysroot.sh"
OUTPUT = f"{OUT}/sysroot"
# Architectures the script knows (their loader names and zig's header directories are in it).
ARCHITECTURES = ("x86_64", "aarch64")

# The flags a compile and link against a generated sysroot needs besides --target and --sysroot: there is no GCC
# in it, so the runtime is compiler-rt's (libclang_rt.builtins and clang_rt.crtbegin/crtend from clang's resource
# directory) and no unwinder library is linked (clang's default would be libgcc_s).
CONSUMER_FLAGS = ("-fuse-ld=lld", "--rtlib=compiler-rt", "--unwindlib=none")

_FLOOR = re.compile(r"2\.(0|[1-9][0-9]?)")


def check_floor(glibc: str) -> str:
    """`glibc` when it is a glibc release the generator can take (``2.N``); a ConfigError otherwise."""
    if not _FLOOR.fullmatch(glibc):
        raise ConfigError(f"glibc floor {glibc!r} is not a glibc release", hint="write it as 2.N, e.g. 2.17")
    return glibc


def sysroot_name(arch: str, glibc: str) -> str:
    """The action's name, and the artifact's without ``.tar.zst``: ``sysroot-glibc-2.17-x86_64``."""
    return f"sysroot-glibc-{check_floor(glibc)}-{arch}"


def artifact_name(arch: str, glibc: str) -> str:
    """The artifact's file name: ``sysroot-glibc-2.17-x86_64.tar.zst``."""
    return f"{sysroot_name(arch, glibc)}.tar.zst"


def generator_toolchain(target: Toolchain, glibc: str) -> Toolchain:
    """The toolchain that generates `target`'s sysroot for the floor `glibc`: the target's compiler, its zig tool
    pin for the build host, no sysroot, no emulator, and only the triple and the floor as target facts.

    A ConfigError says why when the target is not a Linux target this generator knows, or when its pin names no
    zig for the build host.
    """
    if target.os != "linux" or target.arch not in ARCHITECTURES:
        raise ConfigError(
            f"{target.triple}: no glibc sysroot can be generated for it",
            hint=f"glibc sysroots are generated for Linux on {' and '.join(ARCHITECTURES)}",
        )
    if target.compiler is None:
        raise ConfigError(
            f"{target.triple}: no compiler is pinned for the build host {target.build_host}",
            hint=f"generate the sysroot on one of: {', '.join(target.build_hosts)}",
        )
    with_zig = target.with_tools((ZIG_TOOL,))
    return dataclasses.replace(
        with_zig,
        target={"clang_triple": str(target.target["clang_triple"]), "glibc_floor": check_floor(glibc)},
        sysroot=None,
        emulator=None,
        guest=None,
        platform={},
        validate={},
    )


def zig_program(zig: ToolPin) -> str:
    """Where the sandbox shows the zig program of the tool pin (its lib/ directory is beside it)."""
    return f"{zig.mount}/{zig.packages.tools_dir}/{dict(zig.packages.tools)[ZIG_TOOL]}"


def sysroot_action(target: Toolchain, glibc: str, *, source_date_epoch: int) -> Action:
    """The action that generates the glibc `glibc` sysroot of `target` (a Linux toolchain for the build host)
    into one artifact, :func:`artifact_name`.

    Args:
        target: the target's toolchain as ``load_toolchain`` reads it (its compiler and zig pin are used).
        glibc: the floor, ``2.N``: no symbol of a newer glibc release is in the stubs.
        source_date_epoch: the archive's fixed mtime (the sources lock's).
    """
    toolchain = generator_toolchain(target, glibc)
    [zig] = toolchain.tools
    script = InputFile(path=SCRIPT, label=repo_label(SCRIPT))
    argv = ("/bin/sh", f"{FILES}/{script.name_inside}", zig_program(zig), target.arch, glibc, OUTPUT)
    return Action(
        name=sysroot_name(target.arch, glibc),
        rule=RULE,
        rule_version=RULE_VERSION,
        target=target.triple,
        source=None,
        patches=(),
        deps=(),
        toolchain=toolchain,
        env={},
        steps=(Step(name="generate", argv=argv, cwd=TMP),),
        output=OUTPUT,
        source_date_epoch=source_date_epoch,
        files=(script,),
    )


def consumer_flags(target: Toolchain, sysroot: str) -> tuple[str, ...]:
    """The clang flags that compile and link for `target` against a generated sysroot shown at `sysroot`."""
    return (f"--target={target.target['clang_triple']}", f"--sysroot={sysroot}", *CONSUMER_FLAGS)
