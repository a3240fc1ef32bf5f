"""macOS targets (Mach-O, Apple's linker): built on a Mac with the pinned Xcode, unsandboxed.

Two toolchains reach this platform, and the rules are the same for both; only the tools' names differ:

- **Xcode** (``[xcode]`` in the pin, on a Mac): Xcode's ``clang``, ``ar``, ``strip``, ``codesign``,
  ``install_name_tool``; CPython's configure finds ``llvm-profdata`` itself, as ``/usr/bin/xcrun llvm-profdata``.
- **The pinned LLVM with macOS libc headers** (``[evidence]`` in the pin, on Linux, see ``pydist.macos_evidence``):
  clang aimed at the target by a launcher, ``ld64.lld``, and LLVM's Mach-O tools under Xcode's names. It builds
  what can be checked there (libraries, OpenSSL and ``fips.dylib``) as evidence, never a release. There is no
  ``codesign``: ld64.lld ad-hoc signs every arm64 image it links, and LLVM's tools that rewrite a linker-signed
  image (``llvm-strip``, ``llvm-install-name-tool``) sign it again.

Dependency symbols: Apple's linker has no ``--exclude-libs``. Every symbol the static dependency libraries define
is listed (with ``nm``) before CPython is configured, and the list is given to every link as
``-unexported_symbols_list``: whatever links a dependency keeps its symbols local, the C API stays exported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hermetic.action import DEPS, SRC, Step
from pydist.platforms.base import Platform

# Every global symbol the static dependency libraries define (Mach-O names), written before configure.
DEPENDENCY_SYMBOLS = f"{SRC}/dependency-symbols.txt"
# ``codesign`` with identity ``-``: an ad-hoc signature (no certificate), what Apple silicon needs to run code.
AD_HOC_SIGN = "codesign --force --sign -"
# The FIPS provider's one entry point (Mach-O name).
FIPS_ENTRY_POINT = "_OSSL_provider_init"


def _sh(name: str, script: str) -> Step:
    return Step(name=name, argv=("/bin/sh", "-ec", script))


@dataclass(frozen=True, kw_only=True)
class MacOSPlatform(Platform):
    """A macOS target: Mach-O objects, ``@rpath`` install names, ad-hoc code signatures."""

    object_format = "macho"
    shared_library_suffix = ".dylib"
    fips_module = "fips.dylib"

    # ------------------------------------------------------------------------------------ the toolchain

    @property
    def xcode(self) -> bool:
        """Whether the build uses the host's Xcode (on a Mac) rather than the pinned LLVM (evidence on Linux)."""
        return self.toolchain.xcode is not None

    @property
    def host_triple(self) -> str:
        """Autoconf's name of the target (``aarch64-apple-darwin``): configure scripts do not know clang's."""
        return str(self.toolchain.target["gnu_triple"])

    @property
    def deployment_target(self) -> str:
        """The oldest macOS the output runs on (``minos`` of every image)."""
        return str(self.toolchain.target["deployment_target"])

    @property
    def ldflags(self) -> Sequence[str]:
        """The target's linker flags; with the pinned LLVM, clang must be told to use ld64.lld."""
        return (*super().ldflags, *(() if self.xcode else ("-fuse-ld=lld",)))

    def compilers(self) -> tuple[str, str]:
        if self.xcode:
            # Xcode's drivers; the architecture and deployment target come with the pin's flags.
            return "clang", "clang++"
        # The pinned clang's launchers aimed at the target and the macOS headers mounted as the sysroot.
        triple = self.toolchain.target["clang_triple"]
        return f"{triple}-clang", f"{triple}-clang++"

    def binutils(self) -> Mapping[str, str]:
        if self.xcode:
            return {"AR": "ar", "RANLIB": "ranlib", "NM": "nm", "STRIP": "strip"}
        return {"AR": "llvm-ar", "RANLIB": "llvm-ranlib", "NM": "llvm-nm", "STRIP": "llvm-strip"}

    def compiler_launcher_pattern(self) -> str:
        if self.xcode:
            return r"(?!)"  # Xcode's clang is recorded as plain clang already
        return r"(?<![\w./-])[a-z0-9_]+-apple-macos[0-9.]*-(clang\+\+|clang)(?![\w.-])"

    def compile_env(self) -> Mapping[str, str]:
        # Read by clang when no -mmacosx-version-min is given, and recorded by CPython's configure, whose
        # sysconfig.get_platform() (the wheel tag macosx-11.0-arm64) comes from it.
        return {"MACOSX_DEPLOYMENT_TARGET": self.deployment_target}

    # --------------------------------------------------------------------------------- how things link

    def interpreter_link_flags(self) -> str:
        # CPython's own macOS defaults (a larger main-thread stack; CoreFoundation, which _scproxy and the
        # locale code use), plus where the interpreter finds the shipped libpython.
        return "-Wl,-stack_size,1000000 -framework CoreFoundation -Wl,-rpath,@executable_path/../lib"

    def hide_dependency_symbols(self) -> Sequence[str]:
        return (f"-Wl,-unexported_symbols_list,{DEPENDENCY_SYMBOLS}",)

    def build_only_flags(self) -> tuple[str, ...]:
        return (r"\s*-Wl,-unexported_symbols_list,\S+", r"\s*-fuse-ld=lld")

    def cpython_prepare_steps(self) -> list[Step]:
        """List every global symbol the dependency libraries define, for ``-unexported_symbols_list``."""
        return [
            _sh(
                "list dependency symbols",
                f"nm -g -U -j {DEPS}/lib/*.a | grep -v -e ':$' -e '^$' | sort -u > {DEPENDENCY_SYMBOLS}\n"
                f'test -s {DEPENDENCY_SYMBOLS} || {{ echo "no dependency symbols found in {DEPS}/lib" >&2; exit 1; }}\n'
                f'echo "$(wc -l < {DEPENDENCY_SYMBOLS}) dependency symbols kept out of every export table"',
            )
        ]

    def modules_not_built(self) -> Mapping[str, str]:
        left_out = {"ossaudiodev": "Linux only (OSS)", "spwd": "macOS has no shadow password file"}
        if not self.xcode:
            left_out["_scproxy"] = "needs the CoreFoundation and SystemConfiguration frameworks, absent here"
        return left_out

    # ------------------------------------------------------------------- install names and signatures

    def sign(self, path: str) -> str:
        """Shell that gives `path` a fresh ad-hoc signature (after a change that invalidated it).

        With the pinned LLVM there is no ``codesign``; the tools that rewrite an image re-sign it themselves,
        so this checks that a signature is there (the validator later checks that it matches)."""
        if self.xcode:
            return f'{AD_HOC_SIGN} "{path}"'
        return f'otool -l "{path}" | grep -q LC_CODE_SIGNATURE || {{ echo "{path} is not signed" >&2; exit 1; }}'

    def openssl_make_args(self) -> tuple[str, ...]:
        """OpenSSL links the FIPS module (its only loadable module here) with ``DSO_LDFLAGS``; on Linux a version
        script keeps every symbol but the entry point local, but OpenSSL has no such list for Darwin."""
        return (f"DSO_LDFLAGS=-bundle $(CNF_LDFLAGS) $(LDFLAGS) -Wl,-exported_symbol,{FIPS_ENTRY_POINT}",)

    def fips_module_steps(self, module: str) -> list[Step]:
        """Sign the module, then let OpenSSL's build take its MAC over the signed bytes (``install_fips``
        ships that file); nothing touches the module afterwards."""
        make = " ".join(f"'{arg}'" for arg in self.openssl_make_args())
        return [
            _sh("sign the FIPS module", f"{self.sign(module)}\notool -l {module} | grep -q LC_CODE_SIGNATURE"),
            _sh(
                "MAC the signed FIPS module",
                f'cp {module} "$TMPDIR/fips-module.signed"\n'
                f"rm -f providers/fipsmodule.cnf\nmake {make} providers/fipsmodule.cnf\n"
                # The rule only reads the module: had make relinked it, the signature would be the linker's.
                f'cmp {module} "$TMPDIR/fips-module.signed"',
            ),
        ]

    def cpython_install_steps(self, install: str) -> list[Step]:
        """libpython gets the install name ``@rpath/libpython3.X.dylib`` (the interpreter's rpath
        ``@executable_path/../lib`` finds it); every image changed is signed again."""
        return [
            _sh(
                "install names",
                f"cd {install}/lib\n"
                "for lib in libpython3*.dylib; do\n"
                '  [ -L "$lib" ] && continue\n'
                '  install_name_tool -id "@rpath/$lib" "$lib"\n'
                f"  {self.sign('$lib')}\n"
                '  otool -D "$lib" | grep -qx "@rpath/$lib"\n'
                "done",
            )
        ]

    def strip_script(self, tree: str, keep: str) -> str:
        # Stripping invalidates the signature every arm64 image needs: sign again right after. The FIPS module
        # is never touched (its module-mac covers its signed bytes).
        strip = 'strip -S -x "$f"' if self.xcode else 'llvm-strip -S -x "$f"'
        return (
            f"find {tree} -type f ! -path '{keep}' -print0 |\n"
            "  while IFS= read -r -d '' f; do\n"
            "    if [ \"$(head -c 4 \"$f\" | od -An -tx1 | tr -d ' ')\" = 'cffaedfe' ]; then\n"
            f"      {strip} && {self.sign('$f')}; fi; done\n"
        )

    # ------------------------------------------------------------------------------------- the results

    def crt_features(self, install: Path) -> list[str]:
        return ["libSystem"]

    def python_json_extras(self) -> dict[str, str]:
        """The ``apple_sdk_*`` keys: the SDK every binary was linked against (checked against the pin before
        the build) and the deployment target."""
        if not self.xcode:
            return {}
        assert self.toolchain.xcode is not None
        sdk = self.toolchain.xcode["sdk_version"]
        return {
            "apple_sdk_platform": "macosx",
            "apple_sdk_version": sdk,
            "apple_sdk_canonical_name": f"macosx{sdk}",
            "apple_sdk_deployment_target": self.deployment_target,
        }
