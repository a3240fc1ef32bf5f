"""macOS targets (Mach-O, Apple's linker): built on a Mac with the pinned Xcode, unsandboxed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydist.platforms.base import Platform

# Symbols libpython and the interpreter export: the C API (and module init functions). Apple's linker has no
# --exclude-libs, so everything else, the static dependencies' symbols included, is kept local this way.
EXPORTED_SYMBOL_PATTERNS = ("_Py*", "__Py*", "_PyInit_*")


@dataclass(frozen=True, kw_only=True)
class MacOSPlatform(Platform):
    """A macOS target: Mach-O objects, ``@rpath`` install names, ad-hoc code signatures."""

    object_format = "macho"
    shared_library_suffix = ".dylib"
    fips_module = "fips.dylib"

    def interpreter_link_flags(self) -> str:
        # CPython's own macOS default (a larger main-thread stack, CoreFoundation for _scproxy and the locale
        # code), plus where the interpreter finds the shipped libpython.
        return "-Wl,-stack_size,1000000 -framework CoreFoundation -Wl,-rpath,@executable_path/../lib"

    def hide_dependency_symbols(self) -> Sequence[str]:
        return tuple(f"-Wl,-exported_symbol,{pattern}" for pattern in EXPORTED_SYMBOL_PATTERNS)

    def modules_not_built(self) -> Mapping[str, str]:
        return {"_crypt": "macOS has no libcrypt in the SDK the build targets", "ossaudiodev": "Linux only"}

    def strip_script(self, tree: str, keep: str) -> str:
        # Stripping invalidates the ad-hoc signature every arm64 binary needs: sign again after it. The FIPS
        # module is never touched (its module-mac covers its signed bytes).
        return (
            f"find {tree} -type f ! -path '{keep}' -print0 |\n"
            "  while IFS= read -r -d '' f; do\n"
            "    if [ \"$(head -c 4 \"$f\" | od -An -tx1 | tr -d ' ')\" = 'cffaedfe' ]; then\n"
            '      strip -S -x "$f" && codesign --force --sign - "$f"; fi; done\n'
        )

    def crt_features(self, install: Path) -> list[str]:
        return ["libSystem"]

    def compilers(self) -> tuple[str, str]:
        # Xcode's drivers; the target and deployment floor come with the flags of toolchains/<triple>.toml.
        return "clang", "clang++"

    def binutils(self) -> Mapping[str, str]:
        return {"AR": "ar", "RANLIB": "ranlib", "NM": "nm", "STRIP": "strip"}

    def compiler_launcher_pattern(self) -> str:
        return r"(?!)"  # Xcode's clang is recorded as plain clang already
