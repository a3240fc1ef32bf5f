"""Linux targets (glibc, ELF): x86_64 and aarch64, natively or cross-built with the target run under qemu-user."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydist import elfinfo
from pydist.platforms.base import Platform


@dataclass(frozen=True, kw_only=True)
class LinuxPlatform(Platform):
    """A glibc Linux target: ELF objects, ``$ORIGIN`` search paths, bubblewrap sandboxes."""

    object_format = "elf"
    shared_library_suffix = ".so"
    fips_module = "fips.so"

    def interpreter_link_flags(self) -> str:
        # -export-dynamic: extensions resolve the C API against the interpreter. The $ORIGIN rpath is for
        # extensions that wrongly link libpython.so: they find the shipped one, wherever the install lives.
        return r"-Xlinker -export-dynamic -Wl,--disable-new-dtags -Wl,-rpath,\$$ORIGIN/../lib"

    def hide_dependency_symbols(self) -> Sequence[str]:
        return ("-Wl,--exclude-libs,ALL",)

    def fixed_layout_prefix(self) -> tuple[str, ...]:
        # util-linux's setarch (the same package as unshare, whose release is in every action key). The
        # personality is inherited by everything the command runs, qemu-user and its guest included.
        return ("setarch", "--addr-no-randomize")

    def modules_not_built(self) -> Mapping[str, str]:
        return {"_scproxy": "macOS only"}

    def strip_script(self, tree: str, keep: str) -> str:
        return (
            f"find {tree} -type f ! -path '{keep}' -print0 |\n"
            "  while IFS= read -r -d '' f; do\n"
            "    if [ \"$(head -c 4 \"$f\" | od -An -c | tr -d ' ')\" = '177ELF' ]; then\n"
            '      llvm-strip --strip-debug "$f"; fi; done\n'
        )

    def crt_features(self, install: Path) -> list[str]:
        elves = [p for p in sorted(install.rglob("*")) if elfinfo.is_elf(p)]
        glibc_max = elfinfo.max_glibc_version(elves)
        return ["glibc-dynamic"] + ([f"glibc-max-symbol-version:{glibc_max}"] if glibc_max else [])

    def compilers(self) -> tuple[str, str]:
        # The pinned clang's launchers aimed at the target and its sysroot (toolchains/compilers/*.toml).
        return f"{self.host_triple}-clang", f"{self.host_triple}-clang++"

    def binutils(self) -> Mapping[str, str]:
        return {
            "AR": "llvm-ar",
            "RANLIB": "llvm-ranlib",
            "NM": "llvm-nm",
            "STRIP": "llvm-strip",
            "OBJCOPY": "llvm-objcopy",
        }

    def compiler_launcher_pattern(self) -> str:
        return r"(?<![\w./-])[a-z0-9_]+-linux-gnu-(clang\+\+|clang)(?![\w.-])"

    def host_tools(self) -> Mapping[str, str]:
        # A Linux host has a C compiler as cc and c++ (gcc on RHEL and Debian, clang where that is the system's),
        # and GNU binutils; rarely clang or LLVM's tools.
        return {
            "clang": "cc",
            "clang++": "c++",
            "llvm-ar": "ar",
            "llvm-ranlib": "ranlib",
            "llvm-nm": "nm",
            "llvm-strip": "strip",
            "llvm-objcopy": "objcopy",
            "llvm-readelf": "readelf",
        }
