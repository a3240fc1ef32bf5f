"""Provenance of a distribution, and the audit that checks it.

``provenance.json`` (next to the archives) is an in-toto Statement with a SLSA Provenance v1 predicate:
its subjects are the archives; ``resolvedDependencies`` lists every pinned input (sources, toolchain and
sysroot packages, patches, helper scripts, the host tools the sandbox exposes) by sha256; ``byproducts``
lists every action that ran, by its action key, with its sandbox, its inputs and the digest of its output.

``byproducts`` also names the SBOM (``sbom.cdx.json``, kind ``sbom``) by its digest.

``audit(directory)`` checks, with no network and nothing but the directory: the archives' digests match the
statement and SHA256SUMS; every input is pinned by sha256; every action ran in bubblewrap without network;
every input an action names is among the pinned inputs; every artifact an action consumed was produced
by another recorded action (the chain is closed); and the SBOM is the one the statement names, valid
CycloneDX, and lists exactly the archives, source pins, toolchain pins and patches the statement lists,
with the same digests, and the FIPS module the archives hold.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from hermetic import provenance as slsa
from hermetic.action import RECORD_DIR
from hermetic.archive_read import open_tar
from hermetic.content_store import sha256_file
from hermetic.pins import Pin
from pydist import sbom as cdx
from pydist.paths import TOOLCHAINS_DIR

BUILD_TYPE = "urn:fips-python-standalone:buildtype:scons-bubblewrap:v1"
BUILDER_ID = "urn:fips-python-standalone:builder:scons"
PROVENANCE_NAME = "provenance.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Action input files that are not repository files, by their label: what the provenance calls them.
REPOSITORY_FILE = "repository-file"
_FILE_KINDS = {"pgo_profile": "pgo-profile"}


def action_records(artifact: Path) -> list[dict[str, Any]]:
    """The action records an artifact carries (``.hermetic/*.action.json`` anywhere inside it)."""
    records = []
    with open_tar(artifact) as tar:
        for member in tar:
            if member.isfile() and f"{RECORD_DIR}/" in f"/{member.name}" and member.name.endswith(".action.json"):
                source = tar.extractfile(member)
                assert source is not None
                records.append(json.load(source))
    return records


def _pin_descriptor(pin: Pin, kind: str) -> slsa.ResourceDescriptor:
    annotations = {"kind": kind, "version": pin.version, "size": pin.size}
    if pin.license:
        annotations["license"] = pin.license
    return slsa.ResourceDescriptor(name=pin.filename, sha256=pin.sha256, uri=pin.urls[0], annotations=annotations)


def _toolchain_packages(toolchain: dict[str, Any]) -> list[str]:
    """The sha256 of every package in an action's toolchain identity: compiler, sysroot, emulator and its guest
    libraries, tools (each group sorted; a group's entries that are not packages, such as how the compiler's
    launchers are configured, have no sha256)."""
    groups = [
        toolchain.get("compiler", {}).get("packages", []),
        toolchain.get("sysroot", []),
        toolchain.get("emulator", {}).get("packages", []),
        toolchain.get("guest", []),
        *(tool["packages"] for tool in toolchain.get("tools", [])),
    ]
    return [digest for group in groups for digest in sorted(p["sha256"] for p in group if "sha256" in p)]


def _action_descriptor(record: dict[str, Any], output: str) -> slsa.ResourceDescriptor:
    """An executed action, named by its key (the sha256 of its canonical description)."""
    description = record["description"]
    return slsa.ResourceDescriptor(
        name=f"action/{description['name']}",
        sha256=record["key"],
        annotations={
            "rule": description["rule"],
            "target": description["target"],
            "sandbox": description["sandbox"],
            "source": description["source"],
            "patches": description["patches"],
            "files": description.get("files", []),
            "toolchain_packages": _toolchain_packages(description["toolchain"]),
            "host_tools": description["host_tools"],
            "inputs": record.get("dep_artifacts", {}),
            "output": output,
        },
    )


def _host_tool_descriptor(tool: str, identity: str) -> slsa.ResourceDescriptor:
    """A host tool the sandbox exposed: not pinned, identified by its release (``perl-base 5.36.0``), or by
    its digest where it named none (see hermetic.host_tools)."""
    digest = identity.removeprefix("sha256:")
    if _SHA256.match(digest):
        return slsa.ResourceDescriptor(name=f"host:/usr/bin/{tool}", sha256=digest, annotations={"kind": "host-tool"})
    return slsa.ResourceDescriptor(
        name=f"host:/usr/bin/{tool}", sha256=None, annotations={"kind": "host-tool", "release": identity}
    )


def build_statement(
    *,
    archives: list[Path],
    artifacts: list[Path],
    extra_actions: list[tuple[dict[str, Any], str]],
    pins: list[tuple[Pin, str]],
    external: dict[str, Any],
    internal: dict[str, Any],
    builder_version: dict[str, str],
    sbom: Path | None = None,
) -> dict[str, Any]:
    """The provenance statement of one build.

    Args:
        archives: (list[Path]) the published archives (the subjects).
        artifacts: (list[Path]) intermediate artifacts that carry action records (libraries, CPython).
        extra_actions: (list[tuple[dict, str]]) records of actions that keep none in their output, with
            the sha256 of what each produced.
        pins: (list[tuple[Pin, str]]) every pinned file used, with its kind (source, compiler, sysroot, emulator,
            tool).
        external: (dict) what the user asked for (target, python, options, tag).
        internal: (dict) settings of the build itself (source_date_epoch, lock digest).
        builder_version: (dict) versions of the builder (this repository's commit, SCons, bubblewrap).
        sbom: (Path | None) the SBOM written beside the archives, named among the byproducts by its digest.
    """
    subjects = [slsa.ResourceDescriptor(name=a.name, sha256=sha256_file(a)) for a in archives]
    actions = []
    files: dict[str, str] = {}
    host_tools: dict[str, str] = {}
    for artifact in artifacts:
        for record in action_records(artifact):
            actions.append(_action_descriptor(record, sha256_file(artifact)))
    for record, output in extra_actions:
        actions.append(_action_descriptor(record, output))
    for action in actions:
        for item in (*action.annotations["patches"], *action.annotations["files"]):
            files[item["path"]] = item["sha256"]
        host_tools.update(action.annotations["host_tools"])
    dependencies = [_pin_descriptor(pin, kind) for pin, kind in pins]
    dependencies += [
        slsa.ResourceDescriptor(name=path, sha256=digest, annotations={"kind": _FILE_KINDS.get(path, REPOSITORY_FILE)})
        for path, digest in files.items()
    ]
    dependencies += [_host_tool_descriptor(tool, identity) for tool, identity in host_tools.items()]
    byproducts = list(actions)
    if sbom is not None:
        notes = {"kind": "sbom", "mediaType": cdx.MEDIA_TYPE}
        byproducts.append(slsa.ResourceDescriptor(name=sbom.name, sha256=sha256_file(sbom), annotations=notes))
    return slsa.statement(
        subjects=subjects,
        build_type=BUILD_TYPE,
        external_parameters=external,
        internal_parameters=internal,
        dependencies=dependencies,
        builder_id=BUILDER_ID,
        builder_version=builder_version,
        byproducts=byproducts,
    )


def audit(directory: Path) -> tuple[list[str], str]:
    """Check a dist directory's provenance; return (problems, one-line summary)."""
    path = directory / PROVENANCE_NAME
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return [f"{path}: cannot be read: {e}"], "no provenance"
    problems: list[str] = []
    if document.get("_type") != slsa.STATEMENT_TYPE or document.get("predicateType") != slsa.PREDICATE_TYPE:
        problems.append(f"{path.name}: not an in-toto Statement with a SLSA Provenance v1 predicate")
    predicate = document.get("predicate", {})
    dependencies = predicate.get("buildDefinition", {}).get("resolvedDependencies", [])
    byproducts = predicate.get("runDetails", {}).get("byproducts", [])
    actions = [b for b in byproducts if b.get("annotations", {}).get("kind") != "sbom"]
    sboms = [b for b in byproducts if b.get("annotations", {}).get("kind") == "sbom"]

    problems += _subject_problems(directory, document)
    pinned, host_tools, pin_problems = _pinned_inputs(dependencies)
    problems += pin_problems
    counts, action_problems = _action_problems(actions, pinned, _sandbox_kinds(document))
    problems += action_problems
    problems += audit_sbom(directory, document, sboms)
    summary = (
        f"{len(document.get('subject', []))} archives, {len(dependencies) - host_tools} pinned inputs, "
        f"{host_tools} host tools by release, {counts['sandboxed']} sandboxed actions, "
        f"{counts['unsandboxed']} unsandboxed actions (the target's pin says its build host has no sandbox) and "
        f"{counts['in-process']} in-process steps, {len(sboms)} SBOM: {len(problems)} problem(s)"
    )
    return problems, summary


def _subject_problems(directory: Path, document: dict[str, Any]) -> list[str]:
    """Every archive the statement names is there, with its digest, and SHA256SUMS agrees."""
    problems = []
    sums = {}
    if (directory / "SHA256SUMS").is_file():
        for line in (directory / "SHA256SUMS").read_text().splitlines():
            digest, _, name = line.partition("  ")
            sums[name] = digest
    for subject in document.get("subject", []):
        file = directory / subject["name"]
        expected = subject["digest"]["sha256"]
        if not file.is_file():
            problems.append(f"{subject['name']}: named in the provenance but missing")
        elif sha256_file(file) != expected:
            problems.append(f"{subject['name']}: sha256 differs from the provenance")
        if sums.get(subject["name"], expected) != expected:
            problems.append(f"{subject['name']}: SHA256SUMS and the provenance disagree")
    return problems


def _pinned_inputs(dependencies: list[dict[str, Any]]) -> tuple[set[str], int, list[str]]:
    """(digests of the pinned inputs, how many host tools are recorded by release, problems)."""
    pinned, host_tools, problems = set(), 0, []
    for dependency in dependencies:
        digest = dependency.get("digest", {}).get("sha256", "")
        annotations = dependency.get("annotations", {})
        if annotations.get("kind") == "host-tool" and not digest and annotations.get("release"):
            host_tools += 1  # a host tool is never pinned: it is recorded by release (and is in the action keys)
            continue
        if not _SHA256.match(digest):
            problems.append(f"input {dependency.get('name')}: not pinned by sha256")
        pinned.add(digest)
    return pinned, host_tools, problems


def _action_problems(
    actions: list[dict[str, Any]], pinned: set[str], allowed: set[str]
) -> tuple[dict[str, int], list[str]]:
    """Each action ran as allowed, from pinned inputs and artifacts another action made; with counts by kind."""
    outputs = {a["annotations"]["output"] for a in actions}
    counts = {"sandboxed": 0, "unsandboxed": 0, "in-process": 0}
    problems = []
    for action in actions:
        name, notes = action["name"], action["annotations"]
        sandbox = notes.get("sandbox", {})
        if notes.get("rule") == "in-process" and sandbox == {"kind": "in-process", "network": False}:
            # Steps the build ran itself, without any external program (packing, converting archives):
            # accepted when their code is a pinned repository file, like a build script.
            counts["in-process"] += 1
        elif sandbox.get("kind") not in allowed or sandbox.get("network") is not False:
            problems.append(f"{name}: did not run in {' or '.join(sorted(allowed))} without network ({sandbox})")
        else:
            counts["unsandboxed" if sandbox.get("kind") == "unsandboxed" else "sandboxed"] += 1
        source = notes.get("source")
        if source and source["sha256"] not in pinned:
            problems.append(f"{name}: its source {source['name']} {source['version']} is not a pinned input")
        for item in [*notes.get("patches", []), *notes.get("files", [])]:
            if item["sha256"] not in pinned:
                problems.append(f"{name}: {item['path']} is not a pinned input")
        for digest in notes.get("toolchain_packages", []):
            if digest not in pinned:
                problems.append(f"{name}: toolchain package {digest[:16]} is not a pinned input")
        for artifact, digest in notes.get("inputs", {}).items():
            if digest not in outputs and digest not in pinned:
                problems.append(f"{name}: consumed {artifact} ({digest[:16]}), which no recorded action produced")
    return counts, problems


def _sandbox_kinds(document: dict[str, Any]) -> set[str]:
    """The sandboxes an action of this build may have run in: bubblewrap, or what the target's toolchain pin
    declares (``sandbox = "unsandboxed"`` for a build host without bubblewrap, i.e. macOS)."""
    target = document.get("predicate", {}).get("buildDefinition", {}).get("externalParameters", {}).get("target")
    pin = TOOLCHAINS_DIR / f"{target}.toml"
    if not isinstance(target, str) or "/" in target or not pin.is_file():
        return {"bubblewrap"}
    with open(pin, "rb") as f:
        return {"bubblewrap", tomllib.load(f).get("sandbox", "bubblewrap")}


def _by_kind(document: dict[str, Any], *kinds: str) -> dict[str, str]:
    """Resolved dependencies of the given kinds, name -> sha256."""
    dependencies = document.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", [])
    return {d["name"]: d["digest"]["sha256"] for d in dependencies if d.get("annotations", {}).get("kind") in kinds}


def _mismatches(what: str, in_sbom: dict[str, str], in_provenance: dict[str, str]) -> list[str]:
    """One line per entry that is in only one of the two, or in both with different digests."""
    problems = []
    for name in sorted(in_sbom.keys() | in_provenance.keys()):
        if name not in in_provenance:
            problems.append(f"{cdx.SBOM_NAME}: {what} {name} is not in the provenance")
        elif name not in in_sbom:
            problems.append(f"{cdx.SBOM_NAME}: lacks the {what} {name} the provenance lists")
        elif in_sbom[name] != in_provenance[name]:
            problems.append(f"{cdx.SBOM_NAME}: {what} {name} has another sha256 than in the provenance")
    return problems


def audit_sbom(directory: Path, document: dict[str, Any], sboms: list[dict[str, Any]]) -> list[str]:
    """Check the SBOM against the provenance statement `document` of `directory`."""
    if len(sboms) != 1 or sboms[0]["name"] != cdx.SBOM_NAME:
        return [f"{PROVENANCE_NAME}: names {len(sboms)} SBOMs; expected exactly one, {cdx.SBOM_NAME}"]
    path = directory / cdx.SBOM_NAME
    if not path.is_file():
        return [f"{cdx.SBOM_NAME}: named in the provenance but missing"]
    problems = []
    if sha256_file(path) != sboms[0]["digest"]["sha256"]:
        problems.append(f"{cdx.SBOM_NAME}: sha256 differs from the provenance (changed after the build?)")
    text = path.read_text()
    invalid = cdx.schema_errors(text)
    if invalid:
        return [*problems, f"{cdx.SBOM_NAME}: not valid CycloneDX 1.6: {invalid[0][:200]}"]
    facts = cdx.facts(json.loads(text))
    subjects = {s["name"]: s["digest"]["sha256"] for s in document.get("subject", [])}
    problems += _mismatches("archive", facts.archives, subjects)
    problems += _mismatches("source", facts.sources, _by_kind(document, "source"))
    problems += _mismatches("toolchain package", facts.toolchain, _by_kind(document, "compiler", "sysroot", "tool"))
    files = _by_kind(document, REPOSITORY_FILE)
    patches = {name: digest for name, digest in files.items() if name.endswith(".patch")}
    problems += _mismatches("patch", facts.patches, patches)
    problems += _fips_module_problems(directory, facts.fips_module, subjects)
    return problems


def _fips_module_problems(directory: Path, expected: str | None, archives: dict[str, str]) -> list[str]:
    """The FIPS module in every archive must be the one the SBOM hashes.

    Archives whose bytes differ from the provenance are already a problem; they are not opened.
    """
    if expected is None:
        return [f"{cdx.SBOM_NAME}: lists no FIPS provider"]
    problems = []
    for name, digest in sorted(archives.items()):
        archive = directory / name
        if not archive.is_file() or sha256_file(archive) != digest:
            continue
        found = _fips_module_digest(archive)
        if found is not None and found != expected:
            problems.append(f"{name}: its FIPS module is not the FIPS provider the SBOM lists")
    return problems


def _fips_module_digest(archive: Path) -> str | None:
    if not archive.is_file():
        return None
    with open_tar(archive) as tar:
        for member in tar:
            if member.isfile() and re.search(r"/share/ssl/ossl-modules/fips\.(so|dylib)$", member.name):
                source = tar.extractfile(member)
                assert source is not None
                return hashlib.sha256(source.read()).hexdigest()
    return None
