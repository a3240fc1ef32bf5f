"""The interface every target platform implements, and what all of them share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from hermetic.action import Step
from hermetic.errors import ConfigError
from hermetic.toolchain import HOST_DESCRIPTIONS, Toolchain
from pydist import catalog
from pydist.targets import TargetRules, rules_from_tables

# Debian's triple of each build host, for autoconf's --build.
_BUILD_TRIPLES = {
    "x86_64-linux": "x86_64-linux-gnu",
    "aarch64-linux": "aarch64-linux-gnu",
    "aarch64-macos": "aarch64-apple-darwin",
    "x86_64-macos": "x86_64-apple-darwin",
}


@dataclass(frozen=True, kw_only=True)
class Platform(ABC):
    """One target as built on one build host.

    Attributes:
        toolchain: (Toolchain) the target's pins (``toolchains/<triple>.toml``), with the compiler and, for a
            foreign target, the emulator chosen for the build host.
        build_host: (str) where the build runs, as ``<arch>-<os>``.
    """

    toolchain: Toolchain
    build_host: str

    object_format: ClassVar[str]
    shared_library_suffix: ClassVar[str]
    # The FIPS provider module's file name under share/ssl/ossl-modules/.
    fips_module: ClassVar[str]

    @property
    def triple(self) -> str:
        """The target triple, e.g. ``aarch64-unknown-linux-gnu``."""
        return self.toolchain.triple

    @property
    def host_triple(self) -> str:
        """The GNU triple of the machine the output runs on (autoconf's --host, the compiler's --target)."""
        return str(self.toolchain.target["clang_triple"])

    @property
    def build_triple(self) -> str:
        """The GNU triple of the machine that builds (autoconf's --build)."""
        return _BUILD_TRIPLES[self.build_host]

    @property
    def native(self) -> bool:
        """Whether the build host runs the target's programs itself (no emulator, no build Python)."""
        return self.build_host == f"{self.toolchain.arch}-{self.toolchain.os}"

    @property
    def openssl_target(self) -> str:
        """OpenSSL's ``Configure`` target name."""
        return str(self.toolchain.target["openssl_target"])

    @property
    def cflags(self) -> Sequence[str]:
        """Hardening and target flags every C compile gets."""
        return tuple(self.toolchain.target["cflags"])

    @property
    def ldflags(self) -> Sequence[str]:
        """Linker flags every link gets."""
        return tuple(self.toolchain.target["ldflags"])

    @property
    def validator_rules(self) -> TargetRules:
        """What the validator checks this target's binaries against."""
        return rules_from_tables(self.triple, self.toolchain.target, self.toolchain.validate)

    def uses_library(self, name: str) -> bool:
        """Whether the dependency library `name` is built for this target (its row's ``os``)."""
        return self.toolchain.os in catalog.libraries()[name].os

    def check_host(self) -> None:
        """Stop at once, naming the host it needs, when this machine cannot build the target."""
        if self.build_host not in self.toolchain.build_hosts:
            needs = " or ".join(HOST_DESCRIPTIONS.get(h, h) for h in self.toolchain.build_hosts)
            raise ConfigError(
                f"target {self.triple} cannot be built on this host ({self.build_host})",
                hint=f"run the build on {needs}",
            )

    # ---------------------------------------------------------------------------------- what differs

    @abstractmethod
    def interpreter_link_flags(self) -> str:
        """``LINKFORSHARED`` of the interpreter: how it exports the C API to extensions and finds libpython."""

    @abstractmethod
    def hide_dependency_symbols(self) -> Sequence[str]:
        """Linker flags that keep the static dependency libraries' symbols out of every dynamic symbol table."""

    @abstractmethod
    def modules_not_built(self) -> Mapping[str, str]:
        """Extension modules this target never has, with why (on top of the Python minor's own list)."""

    @abstractmethod
    def strip_script(self, tree: str, keep: str) -> str:
        """Shell (bash) that strips debug info from every binary under `tree` except the file `keep`."""

    @abstractmethod
    def crt_features(self, install: Path) -> list[str]:
        """PYTHON.json's ``crt_features`` for the install tree at `install`."""

    @abstractmethod
    def compilers(self) -> tuple[str, str]:
        """The C and C++ compiler commands, each one word (configure scripts key features on the name)."""

    @abstractmethod
    def binutils(self) -> Mapping[str, str]:
        """AR, RANLIB, NM, STRIP (and OBJCOPY where it exists): the archive and binary tools to use."""

    @abstractmethod
    def compiler_launcher_pattern(self) -> str:
        """A regex matching the sandbox's compiler launcher names recorded in build settings (group 1 is the
        plain driver name they are rewritten to)."""

    # ------------------------------------------------- steps and settings only some targets need (default: none)

    def compile_env(self) -> Mapping[str, str]:
        """Environment every C build of this target gets on top of the compiler settings."""
        return {}

    def openssl_make_args(self) -> tuple[str, ...]:
        """Arguments of OpenSSL's ``make`` (variable overrides) on top of the targets."""
        return ()

    def fips_module_steps(self, module: str) -> list[Step]:
        """Steps between building the FIPS provider `module` (a path in the OpenSSL tree) and installing it:
        whatever must happen to its bytes before ``fipsmodule.cnf``'s MAC is taken over them."""
        return []

    def fixed_layout_prefix(self) -> tuple[str, ...]:
        """A command prefix that runs a program with the same memory layout every time (no address space
        randomization), for runs whose results feed the output (the PGO training); empty where none exists."""
        return ()

    def cpython_prepare_steps(self) -> list[Step]:
        """Steps before CPython's configure (e.g. files its linker flags name)."""
        return []

    def cpython_install_steps(self, install: str) -> list[Step]:
        """Steps on CPython's install tree `install` right after ``make install`` (install names, signatures)."""
        return []

    def host_tools(self) -> Mapping[str, str]:
        """The build's compiler and binary tools (as sysconfig records them) -> the names a user's host has them
        under, for the sysconfig that extensions built later read; empty where the host has the build's tools."""
        return {}

    def build_only_flags(self) -> tuple[str, ...]:
        """Regexes of flags in the recorded build settings that only the build itself can use (they name
        sandbox files), to be scrubbed before sysconfig is shipped."""
        return ()

    def python_json_extras(self) -> dict[str, str]:
        """PYTHON.json keys only this target has (e.g. the Apple SDK it was built with)."""
        return {}
