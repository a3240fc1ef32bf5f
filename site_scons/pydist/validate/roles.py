"""What a binary in a distribution is, from where it sits (the rules that apply depend on it)."""

from __future__ import annotations

import re
from enum import Enum


class Role(Enum):
    """The kinds of binaries the validator tells apart."""

    INTERPRETER = "interpreter"  # bin/python3.X (the real file, not a symlink)
    LIBPYTHON = "libpython"  # lib/libpython3.X*.so.1.0 / lib/libpython3.X*.dylib
    EXTENSION = "extension module"  # lib/python3.X*/lib-dynload/*.so
    FIPS_MODULE = "FIPS provider module"  # share/ssl/ossl-modules/fips.so / fips.dylib
    OBJECT = "object file"  # build/**/*.o and members of build/lib/*.a (full archive only)
    OTHER = "other binary"  # anything else (e.g. libpython3.so, the stable-ABI stub)


def install_relative(member: str) -> str | None:
    """The path inside the install prefix of an archive member (``python/install/x`` in a full archive,
    ``python/x`` in an install_only one); None for members outside the install (``python/build/...``)."""
    if member.startswith("python/install/"):
        return member.removeprefix("python/install/")
    if member.startswith(("python/build/", "python/licenses/")) or member == "python/PYTHON.json":
        return None
    return member.removeprefix("python/")


def classify(member: str) -> Role:
    """The role of the binary at archive member path `member`."""
    rel = install_relative(member)
    if rel is None:
        return Role.OBJECT
    if re.fullmatch(r"bin/python3\.\d+t?d?", rel):
        return Role.INTERPRETER
    if re.fullmatch(r"lib/libpython3\.\d+t?d?\.(so\.1\.0|dylib)", rel):
        return Role.LIBPYTHON
    if re.fullmatch(r"lib/python3\.\d+t?d?/lib-dynload/[^/]+\.so", rel):
        return Role.EXTENSION
    if re.fullmatch(r"share/ssl/ossl-modules/fips\.(so|dylib)", rel):
        return Role.FIPS_MODULE
    return Role.OTHER
