"""Reading archives and running every check on them.

Archive and metadata rule ids:
    archive.name             the file name follows the naming pattern of its kind
    archive.unreadable       the archive cannot be read
    archive.escape           a member escapes python/ (absolute path, "..", or outside python/)
    archive.symlink          a symlink leads outside python/ or to nothing in the archive
    archive.python-json      PYTHON.json is the first member (full archives), once, and valid (schema)
    archive.consistency      PYTHON.json agrees with the archive (name, platform tag, paths, extensions)
    archive.python-symlinks  bin/python and bin/python3 are symlinks to the same interpreter
    archive.build-paths      no build path in shebangs, scripts or other text files
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from hermetic.archive import open_tar
from pydist import buildpaths
from pydist.distribution import validate_python_json
from pydist.elfinfo import is_elf
from pydist.matrix import OPTIONS, TARGETS
from pydist.validate import elf as elf_checks
from pydist.validate import macho
from pydist.validate.fips import check_fips
from pydist.validate.report import Report
from pydist.validate.roles import Role, classify, install_relative
from pydist.validate.targets import TARGETS as TARGET_RULES

_TRIPLES = "|".join(re.escape(t) for t in TARGETS)
_OPTIONS = "|".join(re.escape(o) for o in OPTIONS)
FULL_NAME = re.compile(
    rf"cpython-(?P<version>3\.\d+\.\d+)-(?P<triple>{_TRIPLES})-(?P<options>{_OPTIONS})-(?P<tag>[A-Za-z0-9._]+)\.tar\.zst"
)
INSTALL_ONLY_NAME = re.compile(
    rf"cpython-(?P<version>3\.\d+\.\d+)-(?P<triple>{_TRIPLES})-(?:(?P<flavor>[a-z+]+)-)?"
    r"install_only(?P<stripped>_stripped)?-(?P<tag>[A-Za-z0-9._]+)\.tar\.gz"
)


_MACHO_64_LE = bytes.fromhex("cffaedfe")


@dataclass
class Unpacked:
    """What was read from an archive: member names, build-path findings, and the files written to disk
    for the checks that need them (binaries, PYTHON.json, the FIPS files)."""

    label: str
    kind: str  # "full" or "install_only"
    root: Path  # the directory holding python/
    name: dict[str, str] = field(default_factory=dict)
    regular: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    binaries: list[str] = field(default_factory=list)
    objects: list[tuple[str, bytes]] = field(default_factory=list)
    text_findings: list[buildpaths.Finding] = field(default_factory=list)
    first_member: str | None = None
    python_json_count: int = 0

    def names(self) -> set[str]:
        """Every member, with the directories that contain members."""
        found = set(self.regular) | set(self.symlinks) | self.directories
        return found | {posixpath.dirname(n) for n in found}


_MACHO_MAGICS = {bytes.fromhex(m) for m in ("feedface", "feedfacf", "cefaedfe", "cffaedfe", "cafebabe", "bebafeca")}


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return not name.startswith("/") and ".." not in parts and parts[0] == "python"


def _ar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, first bytes) of each member of an ar archive."""
    if data[:8] != b"!<arch>\n":
        return
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        size = int(header[48:58].decode().strip() or 0)
        yield header[:16].decode(errors="replace").strip(), data[offset + 60 : offset + 60 + 64]
        offset += 60 + size + (size & 1)


def _read_member(unpacked: Unpacked, name: str, data: bytes, mode: int) -> None:
    """Check what can be checked on the bytes; write to disk only what later checks open as files."""
    unpacked.regular.append(name)
    rel = install_relative(name)
    magic = data[:4]
    if name.endswith(".a"):
        unpacked.objects += [(f"{unpacked.label}:{name}({m})", head) for m, head in _ar_members(data)]
        return
    is_binary = magic == b"\x7fELF" or magic in _MACHO_MAGICS
    if name.endswith(".o") and magic not in _MACHO_MAGICS:
        unpacked.objects.append((f"{unpacked.label}:{name}", data[:64]))
        return
    if rel is not None and not is_binary:
        unpacked.text_findings += buildpaths.check_text(rel, data)
    if is_binary or name == "python/PYTHON.json" or "/share/ssl/" in f"/{rel or ''}":
        target = unpacked.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if mode & 0o111 else 0o644)
        if is_binary:
            unpacked.binaries.append(name)


def unpack(path: Path, dest: Path, report: Report) -> Unpacked:
    """Read every member of `path`, report the unsafe ones, and keep what the checks need."""
    label = path.name
    full, install_only = FULL_NAME.fullmatch(label), INSTALL_ONLY_NAME.fullmatch(label)
    match = full or install_only
    if match is None:
        expected = (
            "cpython-{version}-{triple}-{options}-{tag}.tar.zst or "
            "cpython-{version}-{triple}[-{flavor}]-install_only[_stripped]-{tag}.tar.gz"
        )
        report.add(label, "archive.name", f"the name does not match {expected}")
    kind = "full" if full or label.endswith(".tar.zst") else "install_only"
    unpacked = Unpacked(label=label, kind=kind, root=dest, name=match.groupdict() if match else {})
    try:
        with open_tar(path) as tar:
            for member in tar:
                name = member.name.rstrip("/")
                if unpacked.first_member is None:
                    unpacked.first_member = name
                if name == "python/PYTHON.json":
                    unpacked.python_json_count += 1
                if not _safe_name(name):
                    report.add(f"{label}:{name}", "archive.escape", "member is outside python/")
                elif member.isdir():
                    unpacked.directories.add(name)
                elif member.issym():
                    unpacked.symlinks[name] = member.linkname
                elif member.isfile():
                    source = tar.extractfile(member)
                    assert source is not None
                    _read_member(unpacked, name, source.read(), member.mode)
                else:
                    report.add(f"{label}:{name}", "archive.escape", "member is a hard link, device or fifo")
    except (tarfile.TarError, zstandard.ZstdError, OSError, EOFError) as e:
        report.add(label, "archive.unreadable", f"cannot be read: {e}")
    _check_symlinks(unpacked, report)
    return unpacked


def _check_symlinks(unpacked: Unpacked, report: Report) -> None:
    members = unpacked.names()
    for name, target in sorted(unpacked.symlinks.items()):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if target.startswith("/") or not resolved.startswith("python/"):
            report.add(f"{unpacked.label}:{name}", "archive.symlink", f"points to {target}, outside python/")
        elif resolved not in members:
            message = f"points to {target}, which is not in the archive"
            report.add(f"{unpacked.label}:{name}", "archive.symlink", message)


def _check_python_json(unpacked: Unpacked, report: Report) -> dict[str, Any] | None:
    label = f"{unpacked.label}:python/PYTHON.json"
    if unpacked.first_member != "python/PYTHON.json":
        report.add(label, "archive.python-json", f"is not the first member (the first is {unpacked.first_member})")
    if unpacked.python_json_count != 1:
        report.add(label, "archive.python-json", f"appears {unpacked.python_json_count} times")
    path = unpacked.root / "python" / "PYTHON.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        report.add(label, "archive.python-json", f"is not JSON: {e}")
        return None
    for problem in validate_python_json(data):
        report.add(label, "archive.python-json", problem.removeprefix("PYTHON.json: "))
    return data if isinstance(data, dict) else None


def _check_consistency(unpacked: Unpacked, data: dict[str, Any], report: Report) -> None:
    label = f"{unpacked.label}:python/PYTHON.json"
    name = unpacked.name
    expectations = [
        ("target_triple", name.get("triple")),
        ("python_version", name.get("version")),
        ("build_options", name.get("options")),
    ]
    for key, expected in expectations:
        if expected is not None and data.get(key) != expected:
            report.add(label, "archive.consistency", f"{key} is {data.get(key)!r}, the file name says {expected!r}")
    rules = TARGET_RULES.get(str(data.get("target_triple")))
    if rules and data.get("python_platform_tag") != rules.platform_tag:
        tag = data.get("python_platform_tag")
        report.add(
            label,
            "archive.consistency",
            f"python_platform_tag is {tag!r}, {rules.triple} has {rules.platform_tag!r}",
        )
    keys = ("python_exe", "run_tests", "license_path", "python_stdlib_platform_config")
    paths: list[tuple[str, Any]] = [(key, data.get(key)) for key in keys]
    paths += [(f"python_paths/{k}", v) for k, v in (data.get("python_paths") or {}).items()]
    build_info = data.get("build_info") or {}
    core = build_info.get("core") or {}
    paths += [("build_info/core/objs", o) for o in core.get("objs", [])]
    paths += [(f"build_info/core/{k}", core.get(k)) for k in ("shared_lib", "static_lib")]
    paths += [(f"build_info/{k}", build_info.get(k)) for k in ("inittab_object", "inittab_source")]
    shared_in_json = set()
    for module, variants in (build_info.get("extensions") or {}).items():
        for variant in variants:
            paths += [(f"build_info/extensions/{module}/objs", o) for o in variant.get("objs", [])]
            for link in variant.get("links", []):
                paths.append((f"build_info/extensions/{module}/links", link.get("path_static")))
            if variant.get("shared_lib"):
                paths.append((f"build_info/extensions/{module}/shared_lib", variant["shared_lib"]))
                shared_in_json.add(variant["shared_lib"])
    members = unpacked.names()
    for key, value in paths:
        if value and f"python/{value}" not in members:
            report.add(label, "archive.consistency", f"{key} names {value}, which is not in the archive")
    stdlib = (data.get("python_paths") or {}).get("platstdlib")
    suffix = (data.get("python_config_vars") or {}).get("EXT_SUFFIX", ".so")
    if stdlib:
        dynload = f"python/{stdlib}/lib-dynload/"
        shipped = {
            n.removeprefix("python/")
            for n in unpacked.regular
            if n.startswith(dynload) and "/" not in n.removeprefix(dynload) and n.endswith(suffix)
        }
        for extra in sorted(shipped - shared_in_json):
            report.add(label, "archive.consistency", f"{extra} is in the archive but not in build_info.extensions")


def _check_python_symlinks(unpacked: Unpacked, report: Report) -> None:
    prefix = "python/install/" if unpacked.kind == "full" else "python/"
    targets = {name: unpacked.symlinks.get(f"{prefix}bin/{name}") for name in ("python", "python3")}
    if None in targets.values() or len(set(targets.values())) != 1:
        message = f"bin/python and bin/python3 must be symlinks to the same file, found {targets}"
        report.add(f"{unpacked.label}:{prefix}bin/python", "archive.python-symlinks", message)


def _check_binaries(unpacked: Unpacked, rules: Any, sdk_version: str | None, report: Report) -> None:
    report.checked_files += len(unpacked.regular)
    for label, head in unpacked.objects:
        _check_object_header(label, head, rules, report)
    for name in sorted(unpacked.binaries):
        path = unpacked.root / name
        member = f"{unpacked.label}:{name}"
        role = Role.OBJECT if name.endswith(".o") else classify(name)
        if is_elf(path):
            if rules.elf_machine is None:
                report.add(member, "elf.machine", f"an ELF file in a {rules.triple} distribution")
            else:
                elf_checks.check_elf(path, member, role, rules, report)
        elif macho.is_macho(path):
            if rules.macho_cputype is None:
                report.add(member, "macho.cpu-type", f"a Mach-O file in a {rules.triple} distribution")
            else:
                macho.check_macho(path, member, role, rules, report, sdk_version=sdk_version)


def _check_object_header(label: str, head: bytes, rules: Any, report: Report) -> None:
    """The machine of an object file (a build/ .o, or a member of a static library) from its header."""
    if head[:4] == _MACHO_64_LE:
        cputype = int.from_bytes(head[4:8], "little")
        if rules.macho_cputype is not None and cputype != rules.macho_cputype:
            message = f"object for CPU type {cputype:#x}, expected {rules.macho_cputype:#x}"
            report.add(label, "macho.cpu-type", message)
    else:
        elf_checks.check_object(head, label, rules, report)


def validate(paths: list[Path], *, work: Path | None = None) -> Report:
    """Validate archives (of one build) and report every violation."""
    report = Report()
    owned = work is None
    work = work or Path(tempfile.mkdtemp(prefix="validate-"))
    digests: dict[str, str] = {}
    try:
        for index, path in enumerate(paths):
            report.archives.append(path.name)
            unpacked = unpack(path, work / str(index), report)
            data = _check_python_json(unpacked, report) if unpacked.kind == "full" else None
            if data is not None:
                _check_consistency(unpacked, data, report)
            triple = (data or {}).get("target_triple") or unpacked.name.get("triple")
            rules = TARGET_RULES.get(str(triple))
            if rules is None:
                report.add(path.name, "archive.name", "the target triple cannot be told from the name or PYTHON.json")
                continue
            _check_python_symlinks(unpacked, report)
            install = unpacked.root / ("python/install" if unpacked.kind == "full" else "python")
            for finding in unpacked.text_findings:
                if not finding.informational:
                    member = f"{path.name}:{_member_of(unpacked, finding.path)}"
                    report.add(member, "archive.build-paths", f"{finding.where} mentions a sandbox build path")
            _check_binaries(unpacked, rules, (data or {}).get("apple_sdk_version"), report)
            prefix = f"{path.name}:python/install/" if unpacked.kind == "full" else f"{path.name}:python/"
            digest = check_fips(install, prefix, report)
            if digest:
                digests[path.name] = digest
        if len(set(digests.values())) > 1:
            detail = ", ".join(f"{name}: {digest[:16]}" for name, digest in sorted(digests.items()))
            report.add("fips.so", "fips.identical", f"the FIPS module differs between archives ({detail})")
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _member_of(unpacked: Unpacked, install_rel: str) -> str:
    return f"python/install/{install_rel}" if unpacked.kind == "full" else f"python/{install_rel}"
