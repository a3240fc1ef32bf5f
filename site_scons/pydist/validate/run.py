"""Reading archives and running every check on them.

Archive and metadata rule ids:
    archive.name             the file name follows the naming pattern of its kind
    archive.unreadable       the archive cannot be read to its end (the only violation it then gets)
    archive.size             the archive expands absurdly, has too many members or too long a name (then the
                             only violation), or a binary or kept file is too large to check
    archive.escape           a member escapes python/ (absolute path, "..", or outside python/)
    archive.conflict         a member the checks write to disk collides with another (a file used as a directory)
    archive.symlink          a symlink leads outside python/ (following the archive's other symlinks), loops,
                             or leads to nothing in the archive
    archive.python-json      PYTHON.json is the first member (full archives), once, and valid (schema)
    archive.consistency      PYTHON.json agrees with the archive (name, platform tag, paths, extensions)
    archive.python-symlinks  bin/python and bin/python3 are symlinks to the same interpreter
    archive.build-paths      no build path in shebangs, scripts or other text files
"""

from __future__ import annotations

import json
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hermetic import failpoint
from hermetic.archive_extract import EntryKind, LinkResolutionError, SymlinkLoopError, resolve_in_tree
from pydist.elfinfo import is_elf
from pydist.python_json import validate_python_json
from pydist.targets import all_rules
from pydist.validate import elf as elf_checks
from pydist.validate import macho
from pydist.validate.fips import check_fips
from pydist.validate.report import Report
from pydist.validate.roles import Role, classify
from pydist.validate.unpack import Unpacked, unpack

_MACHO_64_LE = bytes.fromhex("cffaedfe")


def _check_symlinks(unpacked: Unpacked, report: Report) -> None:
    """Each symlink, followed through the archive's other symlinks, leads to a member inside python/."""
    members = unpacked.names()
    directories = unpacked.directories | {posixpath.dirname(n) for n in members}

    def entry(rel: str) -> tuple[EntryKind, str]:
        if rel in unpacked.symlinks:
            return "link", unpacked.symlinks[rel]
        if rel in directories:
            return "dir", ""
        return ("other" if rel in members else "missing"), ""

    for name, target in sorted(unpacked.symlinks.items()):
        member = f"{unpacked.label}:{name}"
        try:
            resolved = resolve_in_tree(name, entry)
        except SymlinkLoopError as e:
            report.add(member, "archive.symlink", f"points to {target}, which {e}")
            continue
        except LinkResolutionError:
            resolved = ""
        if not resolved.startswith("python/"):
            report.add(member, "archive.symlink", f"points to {target}, outside python/")
        elif resolved not in members:
            report.add(member, "archive.symlink", f"points to {target}, which is not in the archive")


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
    rules = all_rules().get(str(data.get("target_triple")))
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


def _check_binaries(
    unpacked: Unpacked, rules: Any, sdk_version: str | None, report: Report, *, pristine_module: bool = False
) -> None:
    report.checked_files += len(unpacked.regular)
    for label, head in unpacked.objects:
        _check_object_header(label, head, rules, report)
    linkages: dict[str, elf_checks.Linkage] = {}
    for name in sorted(unpacked.binaries):
        path = unpacked.root / name
        member = f"{unpacked.label}:{name}"
        role = Role.OBJECT if name.endswith(".o") else classify(name)
        if is_elf(path):
            if rules.elf_machine is None:
                report.add(member, "elf.machine", f"an ELF file in a {rules.triple} distribution")
            elif linkage := elf_checks.check_elf(path, member, role, rules, report, pristine_module=pristine_module):
                linkages[member] = linkage
        elif macho.is_macho(path):
            if rules.macho_cputype is None:
                report.add(member, "macho.cpu-type", f"a Mach-O file in a {rules.triple} distribution")
            else:
                macho.check_macho(path, member, role, rules, report, sdk_version=sdk_version)
    elf_checks.check_unversioned(linkages, report)


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
        archives = []
        for index, path in enumerate(paths):
            report.archives.append(path.name)
            unpacked = unpack(path, work / str(index), report)
            # A partial archive's one violation says why; checks of what it holds would only add noise.
            if unpacked.complete:
                archives.append((path, unpacked))
        failpoint.reached(f"validate {paths[-1].name}")
        pristine_module = _provider_from_its_own_tree([unpacked for _path, unpacked in archives])
        for path, unpacked in archives:
            digest = _check_archive(path, unpacked, pristine_module, report)
            if digest:
                digests[path.name] = digest
        if len(set(digests.values())) > 1:
            detail = ", ".join(f"{name}: {digest[:16]}" for name, digest in sorted(digests.items()))
            report.add("fips.so", "fips.identical", f"the FIPS module differs between archives ({detail})")
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _provider_from_its_own_tree(archives: list[Unpacked]) -> bool:
    """Whether the full archive among `archives` (one build's) says its FIPS provider was built from a pristine
    tree of its own (PYTHON.json's ``fips_provider.source_tree``, with ``fips_provider=``): then the module is
    linked as that tree's own build links it, without this project's flags."""
    for unpacked in archives:
        path = unpacked.root / "python" / "PYTHON.json"
        if unpacked.kind != "full" or not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue  # reported by the PYTHON.json checks
        provider = data.get("fips_provider") if isinstance(data, dict) else None
        if isinstance(provider, dict) and provider.get("source_tree") == "own":
            return True
    return False


def _check_archive(path: Path, unpacked: Unpacked, pristine_module: bool, report: Report) -> str | None:
    """Every check on one unpacked archive; returns the sha256 of its FIPS module (None when it has none)."""
    _check_symlinks(unpacked, report)
    data = _check_python_json(unpacked, report) if unpacked.kind == "full" else None
    if data is not None:
        _check_consistency(unpacked, data, report)
    triple = (data or {}).get("target_triple") or unpacked.name.get("triple")
    rules = all_rules().get(str(triple))
    if rules is None:
        report.add(path.name, "archive.name", "the target triple cannot be told from the name or PYTHON.json")
        return None
    _check_python_symlinks(unpacked, report)
    install = unpacked.root / ("python/install" if unpacked.kind == "full" else "python")
    for finding in unpacked.text_findings:
        if not finding.informational:
            member = f"{path.name}:{_member_of(unpacked, finding.path)}"
            report.add(member, "archive.build-paths", f"{finding.where} mentions a sandbox build path")
    _check_binaries(unpacked, rules, (data or {}).get("apple_sdk_version"), report, pristine_module=pristine_module)
    prefix = f"{path.name}:python/install/" if unpacked.kind == "full" else f"{path.name}:python/"
    return check_fips(install, prefix, report)


def _member_of(unpacked: Unpacked, install_rel: str) -> str:
    return f"python/install/{install_rel}" if unpacked.kind == "full" else f"python/{install_rel}"
