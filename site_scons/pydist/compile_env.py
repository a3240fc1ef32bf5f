"""How C code is compiled for a target: compiler commands, flags and tool names inside the sandbox."""

from __future__ import annotations

from dataclasses import dataclass

from hermetic.action import DEPS, SRC
from pydist.platforms import Platform


@dataclass(frozen=True, kw_only=True)
class CompileEnv:
    """Compiler settings shared by every rule that builds C code for one target.

    Attributes:
        platform: (Platform) the target as built on this build host.
    """

    platform: Platform

    @property
    def host_triple(self) -> str:
        """The GNU triple of the machine the output runs on (autoconf's --host)."""
        return self.platform.host_triple

    @property
    def build_triple(self) -> str:
        """The GNU triple of the machine that builds (autoconf's --build)."""
        return self.platform.build_triple

    @property
    def cc(self) -> str:
        """The C compiler command (one word, so configure scripts recognize it as clang by its name)."""
        return self.platform.compilers()[0]

    @property
    def cxx(self) -> str:
        """The C++ compiler command (only configure scripts' sanity checks use it)."""
        return self.platform.compilers()[1]

    @property
    def build_cc(self) -> str:
        """The compiler for programs that run during the build. The same as ``cc`` even when cross-building:
        a foreign target's programs run under the sandbox's emulator, and no host headers are in reach."""
        return self.cc

    def cflags(self, source_label: str, *, optimize: str = "-O2") -> str:
        """C flags: optimization, PIC for static archives linked into shared objects, hardening,
        and a file-prefix map so no sandbox path is recorded in debug info or ``__FILE__``."""
        flags = [optimize, "-fPIC", *self.platform.cflags, f"-ffile-prefix-map={SRC}=/usr/src/{source_label}"]
        return " ".join(flags)

    def ldflags(self) -> str:
        """Linker flags: the target's linker and hardening flags."""
        return " ".join(self.platform.ldflags)

    def autotools_env(self, source_label: str, *, optimize: str = "-O2") -> dict[str, str]:
        """The environment a ``./configure && make`` build needs, finding dependencies in /build/deps
        (`optimize` as for :meth:`cflags`)."""
        return {
            "CC": self.cc,
            "CPP": f"{self.cc} -E",
            "CXX": self.cxx,
            "CXXCPP": f"{self.cxx} -E",
            "CFLAGS": self.cflags(source_label, optimize=optimize),
            "CPPFLAGS": f"-I{DEPS}/include",
            "LDFLAGS": f"{self.ldflags()} -L{DEPS}/lib",
            **self.platform.binutils(),
            "BUILD_CC": self.build_cc,
            "CC_FOR_BUILD": self.build_cc,
            **self.platform.compile_env(),
        }

    def configure_args(self, prefix: str = DEPS) -> list[str]:
        """The autoconf arguments every library gets: prefix, triples, static only."""
        return [
            f"--prefix={prefix}",
            f"--build={self.build_triple}",
            f"--host={self.host_triple}",
            "--disable-shared",
            "--enable-static",
        ]
