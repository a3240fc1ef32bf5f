"""Mach-O checks with macholib: CPU type, namespace, deployment target, SDK, dylibs, exports, header room.

Rule ids:
    macho.cpu-type             every header (every slice of a universal file) has the target's CPU type
    macho.fat                  no universal file with several architectures (build/ objects excepted)
    macho.two-level            MH_TWOLEVEL is set (object files excepted)
    macho.minos                LC_BUILD_VERSION (or LC_VERSION_MIN_MACOSX) minos is the deployment target
    macho.sdk-version          the sdk of that load command is the SDK the build used (when it is known)
    macho.dylib-allowlist      dylibs loaded only from the target's allowlist or @rpath/libpython3.X.dylib
    macho.dependency-symbols   interpreter, libpython and extensions export no static dependency's symbol
    macho.headerpad            at least 16 free bytes after the load commands (object files excepted)
    macho.code-signature       arm64 images carry a code signature (LC_CODE_SIGNATURE), and every signature's
                               page hashes match the bytes it covers: nothing changed the file after signing
    macho.unreadable           the file starts like Mach-O but macholib cannot parse it

Versions in LC_BUILD_VERSION and LC_VERSION_MIN_MACOSX are nibble-encoded ``xxxx.yy.zz`` and are compared as
``major.minor`` (``major.minor.patch`` when the patch is not 0), so ``0x000B0000`` is ``11.0``.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable
from pathlib import Path

from macholib.mach_o import (
    FAT_CIGAM,
    FAT_CIGAM_64,
    FAT_MAGIC,
    FAT_MAGIC_64,
    LC_BUILD_VERSION,
    LC_CODE_SIGNATURE,
    LC_LAZY_LOAD_DYLIB,
    LC_LOAD_DYLIB,
    LC_LOAD_UPWARD_DYLIB,
    LC_LOAD_WEAK_DYLIB,
    LC_REEXPORT_DYLIB,
    LC_SEGMENT,
    LC_SEGMENT_64,
    LC_SYMTAB,
    LC_VERSION_MIN_MACOSX,
    MH_CIGAM,
    MH_CIGAM_64,
    MH_MAGIC,
    MH_MAGIC_64,
    MH_OBJECT,
    MH_TWOLEVEL,
    N_EXT,
    N_PEXT,
    N_SECT,
    N_STAB,
    N_TYPE,
    PLATFORM_MACOS,
    S_GB_ZEROFILL,
    S_THREAD_LOCAL_ZEROFILL,
    S_ZEROFILL,
    SECTION_TYPE,
)
from macholib.MachO import MachO, MachOHeader
from macholib.ptypes import sizeof

from pydist.catalog import symbol_prefixes
from pydist.targets import TargetRules
from pydist.validate.report import Report
from pydist.validate.roles import Role

_THIN_MAGICS = frozenset({MH_MAGIC, MH_CIGAM, MH_MAGIC_64, MH_CIGAM_64})
_FAT_MAGICS = frozenset({FAT_MAGIC, FAT_CIGAM, FAT_MAGIC_64, FAT_CIGAM_64})
# Java class files also start with 0xCAFEBABE; the word after it is their class-file version (major >= 45),
# where a universal file has its architecture count, which never comes near that.
_JAVA_CLASS_MIN_VERSION = 45

_DYLIB_LOADS = frozenset(
    # Upward links are rare, but an upward-linked dylib is loaded like any other.
    {LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB, LC_LAZY_LOAD_DYLIB, LC_LOAD_UPWARD_DYLIB}
)
_LIBPYTHON_DYLIB = re.compile(r"@rpath/libpython3\.\d+t?d?\.dylib")
_ZEROFILL_TYPES = frozenset({S_ZEROFILL, S_GB_ZEROFILL, S_THREAD_LOCAL_ZEROFILL})
_HEADERPAD_MIN = 16
# Apple silicon runs no unsigned code: every arm64 image needs a signature (an ad-hoc one will do).
_CPU_TYPE_ARM64 = 0x0100000C
_SYMBOL_ROLES = (Role.INTERPRETER, Role.LIBPYTHON, Role.EXTENSION)
_CPU_NAMES = {
    7: "i386",
    12: "arm",
    18: "ppc",
    0x01000007: "x86_64",
    0x0100000C: "arm64",
    0x01000012: "ppc64",
    0x0200000C: "arm64_32",
}
_SUBTYPE_NAMES = {(0x0100000C, 2): "arm64e", (0x01000007, 8): "x86_64h"}


def is_macho(path: Path) -> bool:
    """Whether `path` is a regular file (not a symlink) that starts with a thin or universal Mach-O magic."""
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 4:
        return False
    magic = int.from_bytes(head[:4], "big")
    if magic in _THIN_MAGICS:
        return True
    if magic not in _FAT_MAGICS or len(head) < 8:
        return False
    count = int.from_bytes(head[4:8], "big" if magic in (FAT_MAGIC, FAT_MAGIC_64) else "little")
    return 0 < count < _JAVA_CLASS_MIN_VERSION


def exported_symbols(path: Path) -> set[str]:
    """Names (as stored, with the leading ``_``) of the symbols `path` exports, over all of its slices.

    They come from the LC_SYMTAB nlist entries that are external (N_EXT), not private-extern (N_PEXT) and
    defined in a section (N_SECT), not from the dyld export trie: the symbol table has the same shape in
    object files and linked images, and linkers and ``strip -x`` keep a dylib's or bundle's external symbols
    in it. A fully stripped executable may keep fewer symbols than its export trie.
    """
    macho = MachO(str(path), allow_unknown_load_commands=True)
    return _exports_of(path.read_bytes(), macho.headers)


def check_macho(
    path: Path, member: str, role: Role, rules: TargetRules, report: Report, *, sdk_version: str | None
) -> None:
    """Every Mach-O rule on one file (thin or universal), reported against archive member `member`.

    ``macho.headerpad`` requires at least 16 bytes between the end of the load commands (mach header size
    plus ``sizeofcmds``) and the file offset of the first section with a nonzero size that occupies file
    space (zero-fill sections do not), in any segment, so install_name_tool can rewrite install names and
    rpaths. Code-signed files (LC_CODE_SIGNATURE) are held to the same minimum: re-signing after
    install_name_tool does not create room in the header, so a signature exempts nothing.
    """
    report.checked_macho += 1
    try:
        macho = MachO(str(path), allow_unknown_load_commands=True)
        exports = _exports_of(path.read_bytes(), macho.headers) if role in _SYMBOL_ROLES else set()
    except (ValueError, struct.error, OSError, EOFError, IndexError) as e:
        report.add(member, "macho.unreadable", f"not a readable Mach-O file: {e}")
        return
    headers = macho.headers
    if len(headers) > 1 and role is not Role.OBJECT:
        archs = ", ".join(_arch_name(h) for h in headers)
        report.add(
            member,
            "macho.fat",
            f"a universal file with {len(headers)} architectures ({archs}), expected a single architecture",
        )
    for header in headers:
        where = f" in the {_arch_name(header)} slice" if macho.fat is not None else ""
        _check_header(header, member, where, rules, report, sdk_version)
    if exports:
        _check_dependency_symbols(exports, member, report)
    if role is not Role.OBJECT:
        data = path.read_bytes()
        for header in headers:
            where = f" in the {_arch_name(header)} slice" if macho.fat is not None else ""
            problem = None if int(header.header.filetype) == MH_OBJECT else code_signature_problem(data, header)
            if problem:
                report.add(member, "macho.code-signature", problem + where)


def _check_header(
    header: MachOHeader, member: str, where: str, rules: TargetRules, report: Report, sdk_version: str | None
) -> None:
    mach = header.header
    cputype = int(mach.cputype)
    if rules.macho_cputype is not None and cputype != rules.macho_cputype:
        report.add(
            member,
            "macho.cpu-type",
            f"CPU type {_describe_cpu(cputype)}{where}, expected {_describe_cpu(rules.macho_cputype)}",
        )
    is_object = int(mach.filetype) == MH_OBJECT
    if not is_object and not int(mach.flags) & MH_TWOLEVEL:
        report.add(member, "macho.two-level", f"MH_TWOLEVEL is not set (flat namespace){where}, expected two-level")
    _check_versions(header, member, where, rules, report, sdk_version)
    if not is_object:
        _check_dylibs(header, member, where, rules, report)
        _check_headerpad(header, member, where, report)


def _check_versions(
    header: MachOHeader, member: str, where: str, rules: TargetRules, report: Report, sdk_version: str | None
) -> None:
    found = _platform_versions(header)
    if found is None:
        if rules.deployment_target is not None:
            report.add(
                member,
                "macho.minos",
                f"no LC_BUILD_VERSION for macOS or LC_VERSION_MIN_MACOSX{where}, "
                f"expected minos {_normalize(rules.deployment_target)}",
            )
        return
    command, minos, sdk = found
    if rules.deployment_target is not None and minos != _normalize(rules.deployment_target):
        report.add(
            member,
            "macho.minos",
            f"minos is {minos} ({command}){where}, expected {_normalize(rules.deployment_target)}",
        )
    if sdk_version is not None and sdk != _normalize(sdk_version):
        report.add(
            member,
            "macho.sdk-version",
            f"sdk is {sdk} ({command}){where}, expected {_normalize(sdk_version)}",
        )


def _platform_versions(header: MachOHeader) -> tuple[str, str, str] | None:
    """(load command name, minos, sdk) of the macOS platform load command, or None when there is none."""
    legacy = None
    for lc, cmd, _data in header.commands:
        # A zippered (macOS + Mac Catalyst) image has one LC_BUILD_VERSION per platform; macOS is ours.
        if lc.cmd == LC_BUILD_VERSION and int(cmd.platform) == PLATFORM_MACOS:
            return "LC_BUILD_VERSION", _decode_version(int(cmd.minos)), _decode_version(int(cmd.sdk))
        if lc.cmd == LC_VERSION_MIN_MACOSX and legacy is None:
            legacy = (
                "LC_VERSION_MIN_MACOSX",
                _decode_version(int(cmd.version)),
                _decode_version(int(cmd.sdk)),
            )
    return legacy


def _decode_version(value: int) -> str:
    if value == 0:
        return "0.0 (not recorded)"
    major, minor, patch = value >> 16, (value >> 8) & 0xFF, value & 0xFF
    return f"{major}.{minor}.{patch}" if patch else f"{major}.{minor}"


def _normalize(version: str) -> str:
    """``14`` and ``14.0.0`` as ``14.0``, the form _decode_version gives, so strings compare equal."""
    try:
        parts = [int(p) for p in version.split(".")] + [0, 0]
    except ValueError:
        return version  # not numeric (say "14.0-beta"): compared as given, so it can only mismatch
    major, minor, patch = parts[:3]
    return f"{major}.{minor}.{patch}" if patch else f"{major}.{minor}"


def _check_dylibs(header: MachOHeader, member: str, where: str, rules: TargetRules, report: Report) -> None:
    for lc, _cmd, data in header.commands:
        if lc.cmd not in _DYLIB_LOADS:
            continue
        name = data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        if not _dylib_allowed(name, rules):
            report.add(
                member,
                "macho.dylib-allowlist",
                f"loads {name}{where}, expected a system dylib or framework allowed on {rules.triple} "
                "or @rpath/libpython3.X.dylib",
            )


def _dylib_allowed(name: str, rules: TargetRules) -> bool:
    if name in rules.allowed_dylibs or _LIBPYTHON_DYLIB.fullmatch(name):
        return True
    return any(entry.endswith("/") and name.startswith(entry) for entry in rules.allowed_dylibs)


def _check_headerpad(header: MachOHeader, member: str, where: str, report: Report) -> None:
    end_of_commands = sizeof(header.mach_header) + int(header.header.sizeofcmds)
    first: tuple[int, str] | None = None
    for lc, _cmd, data in header.commands:
        if lc.cmd not in (LC_SEGMENT, LC_SEGMENT_64):
            continue
        for section in data:
            if int(section.size) == 0 or int(section.flags) & SECTION_TYPE in _ZEROFILL_TYPES:
                continue
            # Sections with no file space have offset 0 whatever their type says.
            if int(section.offset) == 0:
                continue
            if first is None or int(section.offset) < first[0]:
                name = f"{_cstr(section.segname)},{_cstr(section.sectname)}"
                first = (int(section.offset), name)
    if first is None:
        return
    free = first[0] - end_of_commands
    if free < _HEADERPAD_MIN:
        signed = any(lc.cmd == LC_CODE_SIGNATURE for lc, _cmd, _data in header.commands)
        report.add(
            member,
            "macho.headerpad",
            f"{free} bytes free between the load commands (end at {end_of_commands}) and {first[1]} "
            f"(at {first[0]}){where}{', code-signed' if signed else ''}, expected at least {_HEADERPAD_MIN} "
            "(link with -headerpad_max_install_names)",
        )


def _check_dependency_symbols(exports: set[str], member: str, report: Report) -> None:
    # Mach-O stores C names with a leading underscore; the prefixes are C names.
    c_names = sorted(name[1:] if name.startswith("_") else name for name in exports)
    for library, prefixes in symbol_prefixes().items():
        leaked = [name for name in c_names if name.startswith(prefixes)]
        if leaked:
            examples = ", ".join(leaked[:3]) + (", ..." if len(leaked) > 3 else "")
            report.add(
                member,
                "macho.dependency-symbols",
                f"exports {len(leaked)} {library} symbol(s) ({examples}), expected none",
            )


def _exports_of(data: bytes, headers: Iterable[MachOHeader]) -> set[str]:
    names: set[str] = set()
    for header in headers:
        names |= _slice_exports(data, header)
    return names


def _slice_exports(data: bytes, header: MachOHeader) -> set[str]:
    is64 = header.MH_MAGIC in (MH_MAGIC_64, MH_CIGAM_64)
    # nlist / nlist_64: n_strx, n_type, n_sect, n_desc, n_value
    entry = struct.Struct(header.endian + ("IBBHQ" if is64 else "IBBHI"))
    names: set[str] = set()
    for lc, cmd, _data in header.commands:
        if lc.cmd != LC_SYMTAB:
            continue
        # Symbol table offsets are relative to the start of the slice.
        start = header.offset + int(cmd.symoff)
        end = start + int(cmd.nsyms) * entry.size
        strtab_start = header.offset + int(cmd.stroff)
        strtab = data[strtab_start : strtab_start + int(cmd.strsize)]
        if end > len(data) or len(strtab) != int(cmd.strsize):
            raise ValueError("the symbol table lies outside the file")
        for strx, n_type, _sect, _desc, _value in entry.iter_unpack(data[start:end]):
            if n_type & N_STAB or not n_type & N_EXT or n_type & N_PEXT or n_type & N_TYPE != N_SECT:
                continue
            terminator = strtab.find(b"\0", strx)
            names.add(strtab[strx : terminator if terminator >= 0 else None].decode("utf-8", "replace"))
    return names


# Code signing structures (all big-endian): an embedded-signature super blob indexing a code directory (and
# alternates, one per hash type), whose code slots hold the hash of each page of the file up to codeLimit.
_CSMAGIC_EMBEDDED_SIGNATURE = 0xFADE0CC0
_CSMAGIC_CODEDIRECTORY = 0xFADE0C02
_CSSLOT_CODEDIRECTORY = 0
_CSSLOT_ALTERNATE_CODEDIRECTORIES = range(0x1000, 0x1005)
_CS_HASHES = {1: ("sha1", 20), 2: ("sha256", 32), 3: ("sha256", 20), 4: ("sha384", 48)}
_SUPER_BLOB = struct.Struct(">III")
_BLOB_INDEX = struct.Struct(">II")
# magic, length, version, flags, hashOffset, identOffset, nSpecialSlots, nCodeSlots, codeLimit, hashSize,
# hashType, platform, pageSize (log2)
_CODE_DIRECTORY = struct.Struct(">IIIIIIIIIBBBB")


def code_signature_problem(data: bytes, header: MachOHeader) -> str | None:
    """What is wrong with the code signature of one slice (None: signed, and it matches the file).

    Every code directory's page hashes are recomputed over the slice's bytes, so a file changed after it was
    signed (stripped, patched, install names rewritten) fails. Only the code directories are checked: an
    ad-hoc signature has no certificate chain to verify.
    """
    signature = [cmd for lc, cmd, _data in header.commands if lc.cmd == LC_CODE_SIGNATURE]
    if not signature:
        if int(header.header.cputype) == _CPU_TYPE_ARM64:
            return "no code signature (LC_CODE_SIGNATURE), expected one: arm64 macOS runs no unsigned code"
        return None
    start = header.offset + int(signature[0].dataoff)
    blob = data[start : start + int(signature[0].datasize)]
    try:
        directories = _code_directories(blob)
    except (struct.error, ValueError) as e:
        return f"the code signature is unreadable ({e})"
    if not directories:
        return "the code signature has no code directory"
    for offset in directories:
        problem = _directory_problem(data, header.offset, int(signature[0].dataoff), blob, offset)
        if problem:
            return problem
    return None


def _code_directories(blob: bytes) -> list[int]:
    """Offsets (in the signature) of its code directories."""
    magic, length, count = _SUPER_BLOB.unpack_from(blob)
    if magic != _CSMAGIC_EMBEDDED_SIGNATURE or length > len(blob):
        raise ValueError(f"magic {magic:#x}, length {length} of {len(blob)} bytes")
    found = []
    for index in range(count):
        slot, offset = _BLOB_INDEX.unpack_from(blob, _SUPER_BLOB.size + index * _BLOB_INDEX.size)
        if slot == _CSSLOT_CODEDIRECTORY or slot in _CSSLOT_ALTERNATE_CODEDIRECTORIES:
            found.append(offset)
    return found


def _directory_problem(data: bytes, slice_start: int, signature_offset: int, blob: bytes, offset: int) -> str | None:
    fields = _CODE_DIRECTORY.unpack_from(blob, offset)
    magic, _length, _version, _flags, hash_offset, _ident, _special, n_code, code_limit = fields[:9]
    hash_size, hash_type, _platform, page_shift = fields[9:]
    if magic != _CSMAGIC_CODEDIRECTORY:
        return f"the code signature's code directory has magic {magic:#x}"
    if hash_type not in _CS_HASHES or _CS_HASHES[hash_type][1] != hash_size:
        return f"the code signature uses an unknown hash (type {hash_type}, {hash_size} bytes)"
    if code_limit != signature_offset:
        return f"the code signature covers {code_limit} bytes, the file's contents before it are {signature_offset}"
    algorithm = _CS_HASHES[hash_type][0]
    page = 1 << page_shift if page_shift else code_limit
    for slot in range(n_code):
        begin = slot * page
        chunk = data[slice_start + begin : slice_start + min(begin + page, code_limit)]
        expected = blob[offset + hash_offset + slot * hash_size : offset + hash_offset + (slot + 1) * hash_size]
        if hashlib.new(algorithm, chunk).digest()[:hash_size] != expected:
            end = min(begin + page, code_limit)
            return f"page {slot} (bytes {begin}-{end}) differs from its signed hash: the file changed after signing"
    if n_code * page < code_limit:
        return f"the code signature hashes {n_code} pages, fewer than the {code_limit} bytes it covers"
    return None


def _arch_name(header: MachOHeader) -> str:
    """The architecture of a slice as lipo names it (arm64e and x86_64h are subtypes)."""
    cputype = int(header.header.cputype)
    # The top byte of cpusubtype holds capability bits (e.g. the arm64e pointer-authentication ABI).
    subtype = int(header.header.cpusubtype) & 0x00FFFFFF
    return _SUBTYPE_NAMES.get((cputype, subtype)) or _CPU_NAMES.get(cputype, f"{cputype:#x}")


def _describe_cpu(cputype: int) -> str:
    name = _CPU_NAMES.get(cputype)
    return f"{name} ({cputype:#x})" if name else f"{cputype:#x}"


def _cstr(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("ascii", "replace")
    return value.rstrip("\0")
