"""Facts read from ELF files with pyelftools (used by the distribution rule and the validator)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

_GLIBC = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")


def is_elf(path: Path) -> bool:
    """Whether `path` is a regular file starting with the ELF magic."""
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def needed_versions(path: Path) -> set[str]:
    """Every symbol version (e.g. ``GLIBC_2.17``) the file requires from its shared libraries."""
    versions: set[str] = set()
    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
        except ELFError:
            return versions
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for _verneed, auxiliaries in section.iter_versions():
                    versions.update(aux.name for aux in auxiliaries)
    return versions


def glibc_version_key(name: str) -> tuple[int, ...] | None:
    """``GLIBC_2.17`` -> (2, 17); None for other version names (``GLIBC_PRIVATE`` included)."""
    match = _GLIBC.match(name)
    return tuple(int(x) for x in match.groups() if x is not None) if match else None


def max_glibc_version(paths: Iterable[Path]) -> str | None:
    """The highest ``GLIBC_x.y`` any of the ELF files requires, as ``x.y``."""
    best: tuple[int, ...] | None = None
    for path in paths:
        for name in needed_versions(path):
            key = glibc_version_key(name)
            if key is not None and (best is None or key > best):
                best = key
    return ".".join(map(str, best)) if best else None
