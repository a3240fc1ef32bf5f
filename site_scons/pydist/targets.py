"""Every target, from its ``toolchains/<triple>.toml``: the one place target facts are written down.

The file's top level says what the target is (triple, os, arch, the hosts that build it); its ``[target]`` table
how it is compiled and described to others (clang's triple, the glibc floor or macOS deployment target, the ELF
machine or Mach-O CPU type, uv's spelling, how the interpreter loop's opcode dispatch looks in its machine code);
its ``[validate]`` table what the validator allows. This module reads them without loading any build rule, so the
validator and the CI tools use it as the rules do; :mod:`hermetic.toolchain` reads the same files for the pins.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.elf.enums import ENUM_E_MACHINE

from hermetic.errors import LockError
from hermetic.pins import load_toml
from pydist.paths import PINS_SCHEMA, TOOLCHAINS_DIR

# The tool pin (toolchains/tools/) a Linux target names, per build host, to generate its glibc sysroot with.
SYSROOT_GENERATOR = "zig"


@dataclass(frozen=True, kw_only=True)
class TargetRules:
    """The expectations the validator checks binaries of one target triple against.

    Attributes:
        triple: (str) the target triple.
        platform_tag: (str) ``sysconfig.get_platform()`` of the target.
        elf_machine: (str | None) pyelftools' ``e_machine`` name (Linux targets).
        glibc_floor: (tuple[int, int] | None) highest allowed ``GLIBC_x.y`` symbol version.
        allowed_needed: (frozenset[str]) DT_NEEDED entries every ELF file may use.
        macho_cputype: (int | None) Mach-O CPU type (macOS targets).
        deployment_target: (str | None) the required ``minos``.
        allowed_dylibs: (tuple[str, ...]) prefixes of the dylibs a Mach-O file may load.
        banned_symbols: (frozenset[str]) undefined symbols no ELF file may need.
    """

    triple: str
    platform_tag: str
    elf_machine: str | None = None
    glibc_floor: tuple[int, int] | None = None
    allowed_needed: frozenset[str] = frozenset()
    macho_cputype: int | None = None
    deployment_target: str | None = None
    allowed_dylibs: tuple[str, ...] = ()
    banned_symbols: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Target:
    """One target triple's facts.

    Attributes:
        triple: (str) e.g. ``x86_64-unknown-linux-gnu``.
        os: (str) ``linux`` or ``macos``.
        arch: (str) ``x86_64`` or ``aarch64``.
        build_hosts: (tuple[str, ...]) the hosts (``<arch>-<os>``) that can build it.
        rules: (TargetRules) what the validator checks its binaries against.
        uv_platform: (tuple[str, str, str]) how uv spells it: architecture, os, libc.
        dispatch_jump: (str) an extended regular expression matching, in ``llvm-objdump -d`` output, the
            indirect jump an opcode handler of the interpreter loop dispatches with.
    """

    triple: str
    os: str
    arch: str
    build_hosts: tuple[str, ...]
    rules: TargetRules
    uv_platform: tuple[str, str, str]
    dispatch_jump: str

    @property
    def runs_on(self) -> str:
        """The host (``<arch>-<os>``) whose CPU and OS run its programs natively."""
        return f"{self.arch}-{self.os}"


def rules_from_tables(triple: str, target: Mapping[str, Any], validate: Mapping[str, Any]) -> TargetRules:
    """The rules of `triple` from the ``[target]`` and ``[validate]`` tables of its toolchain pin file."""
    floor = target.get("glibc_floor")
    major, minor = (int(p) for p in floor.split(".")) if floor else (0, 0)
    return TargetRules(
        triple=triple,
        platform_tag=validate["platform_tag"],
        elf_machine=target.get("elf_machine"),
        glibc_floor=(major, minor) if floor else None,
        allowed_needed=frozenset(validate.get("allowed_needed", ())),
        macho_cputype=target.get("macho_cputype"),
        deployment_target=target.get("deployment_target"),
        allowed_dylibs=tuple(validate.get("allowed_dylibs", ())),
        banned_symbols=frozenset(validate.get("banned_symbols", ())),
    )


def target_from_file(data: Mapping[str, Any]) -> Target:
    """The target a schema-checked toolchain pin file describes."""
    table = data["target"]
    if "elf_machine" in table:
        elf_machine_number(table["elf_machine"])  # a name pyelftools does not know is refused here, at once
    return Target(
        triple=data["triple"],
        os=data["os"],
        arch=data["arch"],
        build_hosts=tuple(data["build_hosts"]),
        rules=rules_from_tables(data["triple"], table, data["validate"]),
        uv_platform=(table["uv_platform"][0], table["uv_platform"][1], table["uv_platform"][2]),
        dispatch_jump=table["dispatch_jump"],
    )


def load_targets(toolchains_dir: Path) -> dict[str, Target]:
    """Every target of ``toolchains_dir/<triple>.toml`` (a malformed file is a LockError naming it)."""
    targets = {}
    for path in sorted(toolchains_dir.glob("*.toml")):
        target = target_from_file(load_toml(path, PINS_SCHEMA, "toolchain"))
        if target.triple != path.stem:
            raise LockError(f"{path}: declares triple {target.triple!r}", hint=f"name the file {target.triple}.toml")
        targets[target.triple] = target
    return targets


@functools.cache
def all_targets() -> dict[str, Target]:
    """Every target of the repository, read once on first use."""
    return load_targets(TOOLCHAINS_DIR)


def all_rules() -> dict[str, TargetRules]:
    """Every target's validator rules, by triple."""
    return {triple: target.rules for triple, target in all_targets().items()}


def elf_machine_number(name: str) -> int:
    """The ``e_machine`` value of the ELF machine `name` (e.g. ``EM_X86_64`` -> 62)."""
    number = ENUM_E_MACHINE.get(name)
    if not isinstance(number, int):
        raise LockError(f"{name} is not an ELF machine name", hint="use pyelftools' name, e.g. EM_X86_64 or EM_RISCV")
    return number
