"""The libraries the distribution ships, one row each: the pin in ``sources.lock.toml`` and, beside it, the
``[source.library]`` table that says what the rest of the build must know of the library.

From a row come its version, licence and licence file (the pin), the SBOM's CPE, the symbol prefixes the
validator refuses to see exported, the CPython extension modules that link it, the include directories and
configure options CPython's build needs, the version the runtime tests check, where it is used and whether it
cross-builds for macOS. How it is built is the only thing elsewhere: its recipe in :mod:`pydist.libraries`
(OpenSSL's in :mod:`pydist.openssl`). This module reads data only, so the validator, the SBOM and the runtime
tests use it without loading any build rule.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hermetic.lock import SourcesLock, load_lock
from hermetic.pins import Pin
from pydist.paths import LOCK_FILE, PINS_SCHEMA

# Every operating system a target can have (``os`` of toolchains/<triple>.toml).
ALL_OS = ("linux", "macos")


@dataclass(frozen=True, kw_only=True)
class RuntimeVersion:
    """How the runtime tests read a library's version from the built interpreter: ``import module``, then
    ``expression`` must equal the pinned version."""

    module: str
    expression: str


@dataclass(frozen=True, kw_only=True)
class Library:
    """One library the distribution ships (see ``$defs/libraryFacts`` in schema/pins.schema.json).

    Attributes:
        pin: (Pin) its source: version, licence, licence file, digests.
        display: (str) its usual name, as messages give it (``liblzma`` for xz).
        cpe: (str | None) NVD's ``vendor:product``; None when NVD has none (``cpe_missing`` says so).
        exported_prefixes: (tuple[str, ...]) prefixes of its symbols, which no shipped binary may export.
        modules: (tuple[str, ...]) CPython extension modules that link it.
        include_dirs: (tuple[str, ...]) subdirectories of its ``include/`` CPython's build searches.
        cpython_configure: (tuple[str, ...]) configure options that make CPython use it.
        runtime_version: (RuntimeVersion | str) how the runtime tests read its version, or why they cannot.
        os: (tuple[str, ...]) the operating systems whose CPython uses it.
        macos_cross: (str | None) None when it cross-builds for macOS on Linux, else why not.
    """

    pin: Pin
    display: str
    cpe: str | None
    exported_prefixes: tuple[str, ...]
    modules: tuple[str, ...]
    include_dirs: tuple[str, ...]
    cpython_configure: tuple[str, ...]
    runtime_version: RuntimeVersion | str
    os: tuple[str, ...]
    macos_cross: str | None

    @property
    def name(self) -> str:
        """The pin's name: the recipe's and the artifact's."""
        return self.pin.name

    @classmethod
    def from_pin(cls, pin: Pin) -> Library:
        """The row of `pin`, whose ``[source.library]`` table the lock's schema has checked."""
        facts: Mapping[str, Any] = pin.extra["library"]
        version = facts["runtime_version"]
        cross = facts["macos_cross"]
        return cls(
            pin=pin,
            display=facts["display"],
            cpe=facts["cpe"] or None,
            exported_prefixes=tuple(facts["exported_prefixes"]),
            modules=tuple(facts["modules"]),
            include_dirs=tuple(facts.get("include_dirs", ())),
            cpython_configure=tuple(facts.get("cpython_configure", ())),
            runtime_version=RuntimeVersion(**version) if isinstance(version, Mapping) else version,
            os=tuple(facts.get("os", ALL_OS)),
            macos_cross=None if cross is True else cross,
        )


def libraries_of(lock: SourcesLock) -> dict[str, Library]:
    """Every library of `lock`, by name, in the lock's order (a pin with a ``[source.library]`` table)."""
    return {pin.name: Library.from_pin(pin) for pin in lock if "library" in pin.extra}


@functools.cache
def libraries() -> dict[str, Library]:
    """Every library of the repository's sources lock, read once."""
    return libraries_of(load_lock(LOCK_FILE, PINS_SCHEMA))


def used_on(os: str) -> dict[str, Library]:
    """The libraries CPython uses on targets of operating system `os`."""
    return {name: library for name, library in libraries().items() if os in library.os}


def symbol_prefixes() -> dict[str, tuple[str, ...]]:
    """Each library's usual name -> the prefixes of its symbols (what the validator refuses to see exported)."""
    return {library.display: library.exported_prefixes for library in libraries().values()}
