"""What each target allows: machine, dynamic libraries, glibc floor, macOS deployment target (read from the
toolchain pin files)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermetic.pins import load_toml
from pydist.paths import PINS_SCHEMA, TOOLCHAINS_DIR

if TYPE_CHECKING:
    from hermetic.toolchain import Toolchain


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
    """

    triple: str
    platform_tag: str
    elf_machine: str | None = None
    glibc_floor: tuple[int, int] | None = None
    allowed_needed: frozenset[str] = frozenset()
    macho_cputype: int | None = None
    deployment_target: str | None = None
    allowed_dylibs: tuple[str, ...] = ()


def rules_from_tables(triple: str, target: Mapping[str, Any], validate: Mapping[str, Any]) -> TargetRules:
    """The rules of `triple` from the ``[target]`` and ``[validate]`` tables of its toolchain pin file."""
    floor = target.get("glibc_floor")
    return TargetRules(
        triple=triple,
        platform_tag=validate["platform_tag"],
        elf_machine=target.get("elf_machine"),
        glibc_floor=tuple(int(p) for p in floor.split(".")) if floor else None,  # type: ignore[arg-type]
        allowed_needed=frozenset(validate.get("allowed_needed", ())),
        macho_cputype=validate.get("macho_cputype"),
        deployment_target=target.get("deployment_target"),
        allowed_dylibs=tuple(validate.get("allowed_dylibs", ())),
    )


def rules_from_toolchain(toolchain: Toolchain) -> TargetRules:
    """The rules of a loaded toolchain's target."""
    return rules_from_tables(toolchain.triple, toolchain.target, toolchain.validate)


def load_all(toolchains_dir: Path) -> dict[str, TargetRules]:
    """Every target's rules, from its ``toolchains/<triple>.toml`` (schema-checked: a malformed file is a
    LockError naming it)."""
    rules = {}
    for path in sorted(toolchains_dir.glob("*.toml")):
        data = load_toml(path, PINS_SCHEMA, "toolchain")
        rules[data["triple"]] = rules_from_tables(data["triple"], data["target"], data["validate"])
    return rules


@functools.cache
def all_targets() -> dict[str, TargetRules]:
    """Every target's rules, read once on first use (not at import: a broken pin file is then an error the
    command reports, not a traceback while modules load)."""
    return load_all(TOOLCHAINS_DIR)
