"""What each target allows: machine, dynamic libraries, glibc floor, macOS deployment target."""

from __future__ import annotations

from dataclasses import dataclass


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


_GLIBC_LIBS = frozenset({"libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libutil.so.1"})

# CPU_TYPE_ARM64 = CPU_TYPE_ARM | CPU_ARCH_ABI64
_CPU_TYPE_ARM64 = 0x0100000C

TARGETS = {
    "x86_64-unknown-linux-gnu": TargetRules(
        triple="x86_64-unknown-linux-gnu",
        platform_tag="linux-x86_64",
        elf_machine="EM_X86_64",
        glibc_floor=(2, 31),
        allowed_needed=_GLIBC_LIBS | {"ld-linux-x86-64.so.2", "libgcc_s.so.1", "libcrypt.so.1"},
    ),
    "aarch64-unknown-linux-gnu": TargetRules(
        triple="aarch64-unknown-linux-gnu",
        platform_tag="linux-aarch64",
        elf_machine="EM_AARCH64",
        glibc_floor=(2, 31),
        allowed_needed=_GLIBC_LIBS | {"ld-linux-aarch64.so.1", "libgcc_s.so.1", "libcrypt.so.1"},
    ),
    "aarch64-apple-darwin": TargetRules(
        triple="aarch64-apple-darwin",
        platform_tag="macosx-11.0-arm64",
        macho_cputype=_CPU_TYPE_ARM64,
        deployment_target="11.0",
        allowed_dylibs=(
            "/usr/lib/libSystem.B.dylib",
            "/usr/lib/libz.1.dylib",
            "/usr/lib/libedit.3.dylib",
            "/usr/lib/libncurses.5.4.dylib",
            "/usr/lib/libpanel.5.4.dylib",
            "/usr/lib/libobjc.A.dylib",
            "/System/Library/Frameworks/CoreFoundation.framework/",
            "/System/Library/Frameworks/SystemConfiguration.framework/",
            "/System/Library/Frameworks/Security.framework/",
            "/System/Library/Frameworks/Foundation.framework/",
            "/System/Library/Frameworks/AppKit.framework/",
            "/System/Library/Frameworks/ApplicationServices.framework/",
            "/System/Library/Frameworks/Carbon.framework/",
            "/System/Library/Frameworks/Cocoa.framework/",
            "/System/Library/Frameworks/CoreGraphics.framework/",
            "/System/Library/Frameworks/CoreServices.framework/",
            "/System/Library/Frameworks/CoreText.framework/",
            "/System/Library/Frameworks/IOKit.framework/",
            "/System/Library/Frameworks/QuartzCore.framework/",
            "/System/Library/Frameworks/UniformTypeIdentifiers.framework/",
        ),
    ),
}

# Symbols whose export betrays a static dependency that was not hidden (one or more per library).
DEPENDENCY_SYMBOL_PREFIXES = {
    "OpenSSL": (
        "OPENSSL_",
        "OSSL_",
        "EVP_",
        "SSL_",
        "CRYPTO_",
        "BIO_",
        "BN_",
        "X509_",
        "ERR_",
        "RSA_",
        "EC_",
        "PEM_",
    ),
    "SQLite": ("sqlite3_",),
    "zlib": ("deflate", "inflate", "crc32", "adler32", "zlibVersion", "gz"),
    "libffi": ("ffi_",),
    "liblzma": ("lzma_",),
    "bzip2": ("BZ2_",),
    "expat": ("XML_",),
    "mpdecimal": ("mpd_",),
    "ncurses": ("initscr", "newwin", "wrefresh", "tgetent", "_nc_"),
    "libedit": ("el_", "history_", "rl_"),
    "libuuid": ("uuid_",),
    "zstd": ("ZSTD_", "ZDICT_"),
}
