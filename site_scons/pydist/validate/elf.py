"""ELF checks with pyelftools: machine, needed libraries, glibc floor, search paths, hardening, exports.

Rule ids:
    elf.machine              e_machine is the target's
    elf.needed               DT_NEEDED only from the target's allowlist (glibc, loader, libgcc_s, libpython)
    elf.glibc-floor          no GLIBC_x.y symbol version above the toolchain's floor
    elf.glibc-private        no GLIBC_PRIVATE symbol version
    elf.banned-symbol        no undefined symbol the target bans (pthread_yield: gone from glibc 2.34's headers)
    elf.unversioned-symbol   every undefined symbol without a version is defined by a shipped file: one that is not
                             was a libc function newer than the sysroot's floor, which a -shared link leaves
                             unversioned (and the loader then binds to whatever the host has, or fails)
    elf.rpath                RPATH/RUNPATH entries all start with $ORIGIN
    elf.stack                PT_GNU_STACK present and not executable
    elf.relro                PT_GNU_RELRO present
    elf.bind-now             DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW (not asked of a FIPS module built from its own
                             pristine tree, whose Security Policy allows none of our flags: see check_elf)
    elf.wx                   no PT_LOAD segment both writable and executable
    elf.textrel              no text relocations
    elf.stack-protector      the interpreter references __stack_chk_fail (and a __*_chk fortify function)
    elf.pie                  the interpreter is a position-independent executable (ASLR can move it)
    elf.dependency-symbols   interpreter, libpython and extension modules export no static dependency's symbol
    elf.python-api           libpython exports the Python C API
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.constants import P_FLAGS, SH_FLAGS
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection

from pydist.catalog import symbol_prefixes
from pydist.elfinfo import glibc_version_key
from pydist.targets import TargetRules, elf_machine_number
from pydist.validate.report import Report
from pydist.validate.roles import Role

_LIBPYTHON_NEEDED = re.compile(r"libpython3\.\d+t?d?\.so\.1\.0")
_DF_BIND_NOW = 0x8
_DF_TEXTREL = 0x4
_DF_1_NOW = 0x1
PYTHON_API = ("Py_Initialize", "PyList_New", "Py_CompileString", "PyUnicode_FromString", "PyModule_Create2")


def exported_symbols(elf: ELFFile) -> set[str]:
    """Names of the defined, global or weak, default- or protected-visibility dynamic symbols."""
    table = elf.get_section_by_name(".dynsym")
    if not isinstance(table, SymbolTableSection):
        return set()
    names = set()
    for symbol in table.iter_symbols():
        if not symbol.name or symbol["st_shndx"] == "SHN_UNDEF":
            continue
        if symbol["st_info"]["bind"] not in ("STB_GLOBAL", "STB_WEAK", "STB_GNU_UNIQUE"):
            continue
        if symbol["st_other"]["visibility"] not in ("STV_DEFAULT", "STV_PROTECTED"):
            continue
        names.add(symbol.name)
    return names


@dataclass
class Linkage:
    """What one shared object or executable exports and what it needs without a symbol version."""

    exported: set[str] = field(default_factory=set)
    unversioned: set[str] = field(default_factory=set)


def unversioned_undefined(elf: ELFFile) -> set[str]:
    """Names of the strong undefined dynamic symbols that carry no version (VER_NDX_GLOBAL, or no .gnu.version)."""
    table = elf.get_section_by_name(".dynsym")
    if not isinstance(table, SymbolTableSection):
        return set()
    versions = elf.get_section_by_name(".gnu.version")
    names = set()
    for index, symbol in enumerate(table.iter_symbols()):
        if not symbol.name or symbol["st_shndx"] != "SHN_UNDEF" or symbol["st_info"]["bind"] != "STB_GLOBAL":
            continue
        ndx = versions.get_symbol(index)["ndx"] if isinstance(versions, GNUVerSymSection) else "VER_NDX_GLOBAL"
        if ndx in ("VER_NDX_GLOBAL", "VER_NDX_LOCAL"):
            names.add(symbol.name)
    return names


def check_unversioned(linkages: dict[str, Linkage], report: Report) -> None:
    """elf.unversioned-symbol across one archive: what no shipped file defines must have come from libc."""
    defined = set().union(*(linkage.exported for linkage in linkages.values()))
    for member, linkage in sorted(linkages.items()):
        missing = sorted(linkage.unversioned - defined)
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            report.add(
                member,
                "elf.unversioned-symbol",
                f"needs {shown} without a symbol version, and no shipped file defines it (a libc function newer "
                "than the glibc floor, left unresolved by the link?)",
            )


def undefined_symbols(elf: ELFFile) -> set[str]:
    """Names of the dynamic symbols the file needs from elsewhere."""
    table = elf.get_section_by_name(".dynsym")
    if not isinstance(table, SymbolTableSection):
        return set()
    return {s.name for s in table.iter_symbols() if s.name and s["st_shndx"] == "SHN_UNDEF"}


def _dynamic_tags(elf: ELFFile) -> list[tuple[str, object]]:
    tags: list[tuple[str, object]] = []
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                value = getattr(tag, tag.entry.d_tag.removeprefix("DT_").lower(), tag.entry.d_val)
                tags.append((tag.entry.d_tag, value))
    return tags


def _versions_needed(elf: ELFFile) -> set[str]:
    section = elf.get_section_by_name(".gnu.version_r")
    if not isinstance(section, GNUVerNeedSection):
        return set()
    return {aux.name for _verneed, auxiliaries in section.iter_versions() for aux in auxiliaries}


def check_object(data: bytes, member: str, rules: TargetRules, report: Report) -> None:
    """The machine of an object file (a build/ .o or a member of a static library), from its header."""
    if data[:4] != b"\x7fELF":
        return  # LLVM bitcode (LTO builds) or not an object: nothing ELF to check
    little = data[5] == 1
    machine = int.from_bytes(data[18:20], "little" if little else "big")
    expected = elf_machine_number(rules.elf_machine or "EM_X86_64")
    if machine != expected:
        report.add(member, "elf.machine", f"object for machine {machine}, expected {rules.elf_machine}")


def check_elf(
    path: Path, member: str, role: Role, rules: TargetRules, report: Report, *, pristine_module: bool = False
) -> Linkage | None:
    """Every ELF rule on one shared object or executable; returns what it exports and needs unversioned (None for
    an object file), for :func:`check_unversioned`. With `pristine_module`, the FIPS provider module was built
    from its own pristine tree as its Security Policy prescribes (``fips_provider=``), linked without this
    project's flags: BIND_NOW (our ``-z now``) is not asked of it, every other rule is."""
    report.checked_elf += 1
    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
        except ELFError as e:
            report.add(member, "elf.unreadable", f"not a readable ELF file: {e}")
            return None
        _check_machine(elf, member, rules, report)
        _check_banned(elf, member, rules, report)
        tags = _dynamic_tags(elf)
        _check_needed(tags, member, rules, report)
        _check_versions(elf, member, rules, report)
        _check_search_paths(tags, member, report)
        _check_hardening(elf, tags, member, report, role, bind_now=not (pristine_module and role is Role.FIPS_MODULE))
        if role is Role.INTERPRETER:
            _check_stack_protector(elf, member, report)
            _check_pie(elf, member, report)
        if role in (Role.INTERPRETER, Role.LIBPYTHON, Role.EXTENSION):
            _check_dependency_symbols(elf, member, report)
        if role is Role.LIBPYTHON:
            missing = [name for name in PYTHON_API if name not in exported_symbols(elf)]
            if missing:
                report.add(member, "elf.python-api", f"libpython does not export {', '.join(missing)}")
        if elf.header["e_type"] not in ("ET_DYN", "ET_EXEC"):
            return None
        return Linkage(exported=exported_symbols(elf), unversioned=unversioned_undefined(elf))


def _check_banned(elf: ELFFile, member: str, rules: TargetRules, report: Report) -> None:
    banned = sorted(undefined_symbols(elf) & rules.banned_symbols)
    if banned:
        report.add(member, "elf.banned-symbol", f"needs {', '.join(banned)}, which {rules.triple} does not allow")


def _check_machine(elf: ELFFile, member: str, rules: TargetRules, report: Report) -> None:
    machine = elf.header["e_machine"]
    if machine != rules.elf_machine:
        report.add(member, "elf.machine", f"machine {machine}, expected {rules.elf_machine}")


def _check_needed(tags: list[tuple[str, object]], member: str, rules: TargetRules, report: Report) -> None:
    for tag, value in tags:
        if tag != "DT_NEEDED":
            continue
        name = str(value)
        if name not in rules.allowed_needed and not _LIBPYTHON_NEEDED.fullmatch(name):
            report.add(member, "elf.needed", f"needs {name}, which is not a system library allowed on {rules.triple}")


def _check_versions(elf: ELFFile, member: str, rules: TargetRules, report: Report) -> None:
    versions = _versions_needed(elf)
    glibc = [key for v in versions if (key := glibc_version_key(v)) is not None]
    if glibc:
        report.glibc_versions[member] = ".".join(map(str, max(glibc)))
    if "GLIBC_PRIVATE" in versions:
        report.add(member, "elf.glibc-private", "uses GLIBC_PRIVATE symbols (tied to one glibc build)")
    if rules.glibc_floor is None:
        return
    too_new = sorted(
        (v for v in versions if (key := glibc_version_key(v)) is not None and key[:2] > rules.glibc_floor),
        key=lambda v: glibc_version_key(v) or (),
    )
    if too_new:
        floor = ".".join(map(str, rules.glibc_floor))
        report.add(member, "elf.glibc-floor", f"requires {too_new[-1]}, newer than the glibc {floor} floor")


def _check_search_paths(tags: list[tuple[str, object]], member: str, report: Report) -> None:
    for tag, value in tags:
        if tag in ("DT_RPATH", "DT_RUNPATH"):
            for entry in str(value).split(":"):
                if not entry.startswith("$ORIGIN"):
                    report.add(member, "elf.rpath", f"{tag.removeprefix('DT_')} entry {entry!r} is not under $ORIGIN")


def _check_hardening(
    elf: ELFFile, tags: list[tuple[str, object]], member: str, report: Report, role: Role, *, bind_now: bool = True
) -> None:
    segments = list(elf.iter_segments())
    stacks = [s for s in segments if s["p_type"] == "PT_GNU_STACK"]
    if not stacks:
        report.add(member, "elf.stack", "no PT_GNU_STACK: the stack would be executable")
    elif stacks[0]["p_flags"] & P_FLAGS.PF_X:
        report.add(member, "elf.stack", "PT_GNU_STACK is executable")
    if not any(s["p_type"] == "PT_GNU_RELRO" for s in segments):
        report.add(member, "elf.relro", "no PT_GNU_RELRO segment")
    for segment in segments:
        flags = segment["p_flags"]
        if segment["p_type"] == "PT_LOAD" and flags & P_FLAGS.PF_W and flags & P_FLAGS.PF_X:
            report.add(member, "elf.wx", f"a PT_LOAD segment at {segment['p_vaddr']:#x} is writable and executable")
    flags = next((int(str(v)) for t, v in tags if t == "DT_FLAGS"), 0)
    flags_1 = next((int(str(v)) for t, v in tags if t == "DT_FLAGS_1"), 0)
    linked_now = any(t == "DT_BIND_NOW" for t, _ in tags) or flags & _DF_BIND_NOW or flags_1 & _DF_1_NOW
    if bind_now and tags and not linked_now:
        # An install_only archive has no PYTHON.json to say its module came from its own tree (fips_provider=).
        own_tree = "; if it was built from its own tree, validate it with the build's full archive"
        report.add(
            member,
            "elf.bind-now",
            "not linked with -z now (no BIND_NOW)" + (own_tree if role is Role.FIPS_MODULE else ""),
        )
    if any(t == "DT_TEXTREL" for t, _ in tags) or flags & _DF_TEXTREL:
        report.add(member, "elf.textrel", "has text relocations")
    elif tags:
        writable_text = [
            s.name for s in elf.iter_sections() if s.name == ".text" and s["sh_flags"] & SH_FLAGS.SHF_WRITE
        ]
        if writable_text:
            report.add(member, "elf.textrel", ".text is writable")


def _check_stack_protector(elf: ELFFile, member: str, report: Report) -> None:
    undefined = undefined_symbols(elf)
    if "__stack_chk_fail" not in undefined:
        report.add(
            member,
            "elf.stack-protector",
            "the interpreter does not use the stack protector (__stack_chk_fail)",
        )
    if not any(re.fullmatch(r"__\w+_chk", name) for name in undefined - {"__stack_chk_fail"}):
        report.add(member, "elf.stack-protector", "the interpreter calls no _FORTIFY_SOURCE __*_chk function")


def _check_pie(elf: ELFFile, member: str, report: Report) -> None:
    # Debian links its own python3.11 non-PIE; ours stays PIE (BENCHMARKS.md measures what that costs).
    if elf.header["e_type"] != "ET_DYN":
        report.add(
            member, "elf.pie", f"the interpreter is not position-independent ({elf.header['e_type']}): link it -pie"
        )


def _check_dependency_symbols(elf: ELFFile, member: str, report: Report) -> None:
    exported = exported_symbols(elf)
    for library, prefixes in symbol_prefixes().items():
        leaked = sorted(name for name in exported if name.startswith(prefixes))
        if leaked:
            examples = ", ".join(leaked[:3])
            report.add(member, "elf.dependency-symbols", f"exports {len(leaked)} {library} symbols ({examples}...)")
