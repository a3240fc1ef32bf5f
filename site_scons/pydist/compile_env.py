"""How C code is compiled for a target: compiler command, flags and tool names inside the sandbox."""

from __future__ import annotations

from dataclasses import dataclass

from hermetic.action import DEPS, SRC
from hermetic.toolchain import Toolchain

# Debian's triple of each build host, for autoconf's --build.
_BUILD_TRIPLES = {"x86_64-linux": "x86_64-linux-gnu", "aarch64-linux": "aarch64-linux-gnu"}


@dataclass(frozen=True, kw_only=True)
class CompileEnv:
    """Compiler settings shared by every rule that builds C code for one target.

    Attributes:
        toolchain: (Toolchain) the pinned toolchain.
        build_host: (str) the build host as ``<arch>-<os>``.
    """

    toolchain: Toolchain
    build_host: str

    @property
    def host_triple(self) -> str:
        """The GNU triple of the machine the output runs on (autoconf's --host)."""
        return str(self.toolchain.target["clang_triple"])

    @property
    def build_triple(self) -> str:
        """The GNU triple of the machine that builds (autoconf's --build)."""
        return _BUILD_TRIPLES[self.build_host]

    @property
    def cc(self) -> str:
        """The C compiler: the pinned clang's launcher aimed at the target and its sysroot (one word, so
        configure scripts recognize it as clang by its name)."""
        return f"{self.host_triple}-clang"

    @property
    def cxx(self) -> str:
        """The C++ compiler command (only configure scripts' sanity checks use it)."""
        return f"{self.host_triple}-clang++"

    @property
    def build_cc(self) -> str:
        """The compiler for programs that run during the build (the same one for native targets)."""
        return self.cc

    def cflags(self, source_label: str, *, optimize: str = "-O2") -> str:
        """C flags: optimization, PIC for static archives linked into shared objects, hardening,
        and a file-prefix map so no sandbox path is recorded in debug info or ``__FILE__``."""
        flags = [
            optimize,
            "-fPIC",
            *self.toolchain.target["cflags"],
            f"-ffile-prefix-map={SRC}=/usr/src/{source_label}",
        ]
        return " ".join(flags)

    def ldflags(self) -> str:
        """Linker flags: lld and the target's hardening flags."""
        return " ".join(self.toolchain.target["ldflags"])

    def autotools_env(self, source_label: str, *, optimize: str = "-O2") -> dict[str, str]:
        """The environment a ``./configure && make`` build needs, finding dependencies in /build/deps."""
        return {
            "CC": self.cc,
            "CPP": f"{self.cc} -E",
            "CXX": self.cxx,
            "CXXCPP": f"{self.cxx} -E",
            "CFLAGS": self.cflags(source_label, optimize=optimize),
            "CPPFLAGS": f"-I{DEPS}/include",
            "LDFLAGS": f"{self.ldflags()} -L{DEPS}/lib",
            "AR": "llvm-ar",
            "RANLIB": "llvm-ranlib",
            "NM": "llvm-nm",
            "STRIP": "llvm-strip",
            "OBJCOPY": "llvm-objcopy",
            "BUILD_CC": self.build_cc,
            "CC_FOR_BUILD": self.build_cc,
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
