"""The software bill of materials of a distribution: ``sbom.cdx.json``, CycloneDX 1.6 JSON, beside the archives.

What it lists, each by version, SPDX license and sha256:

- the distribution (``metadata.component``) and its archives, the subject, as file components;
- CPython, OpenSSL and every bundled library, with the pinned source tarball (sha256 and every URL it is
  pinned at) as a ``source-distribution`` reference and the patches applied as ``pedigree.patches`` (the
  sha256 of each patch is a property of the component it modifies: CycloneDX patches carry no hashes);
- OpenSSL's FIPS provider as its own component, hashed by the bytes of ``fips.so`` (which ``module-mac``
  covers), with its own version and source (libcrypto's tree, or its own pristine tree with ``fips_provider=``),
  a pedigree saying how it was built, and properties that say it is FIPS-capable and whether its version holds
  a CMVP certificate (and which, active or historical);
- the compiler, sysroot and tool (BOLT) packages as build-time components (scope ``excluded``, property
  ``build-role``).

Nothing depends on the time or the machine: the timestamp is the lock's SOURCE_DATE_EPOCH and the serial
number is derived from the archives' digests, so the same build gives the same bytes. The document is
validated offline against the CycloneDX schema that cyclonedx-python-lib ships before it is written.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import (
    Component,
    ComponentScope,
    ComponentType,
    Diff,
    Patch,
    PatchClassification,
    Pedigree,
)
from cyclonedx.model.lifecycle import LifecyclePhase, PredefinedLifecycle
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from jsonschema import FormatChecker
from packageurl import PackageURL
from rfc3986_validator import validate_rfc3986

from hermetic import scratch
from hermetic.errors import HermeticError
from hermetic.pins import Pin
from pydist.catalog import Library
from pydist.fips_provider import CMVP_CERTIFICATES

_IRI_REFERENCE = FormatChecker().checkers["iri-reference"][0]

SBOM_NAME = "sbom.cdx.json"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
# Names of this project's properties (CycloneDX asks for a namespace per producer).
NS = "fips-python-standalone"

# NVD's CPE vendor:product of CPython; a library's is in its row (pydist.catalog).
_CPYTHON_CPE = "python:python"


class SbomError(HermeticError):
    """The SBOM does not validate against the CycloneDX schema (a bug in what the build put in it)."""

    exit_code = 9


@dataclass(frozen=True, kw_only=True)
class BuiltComponent:
    """Something built from a pinned source and shipped in the distribution.

    Attributes:
        pin: (Pin) the source tarball.
        patches: (tuple[tuple[str, str], ...]) (repository path, sha256) of each patch applied, in order.
        deps: (tuple[str, ...]) names of the built components it was linked against.
    """

    pin: Pin
    patches: tuple[tuple[str, str], ...] = ()
    deps: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SbomInputs:
    """Everything the SBOM of one distribution says.

    Attributes:
        distribution: (str) the dist directory's name, e.g. ``cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-dev``.
        tag: (str) the release tag.
        archives: (tuple[tuple[str, str], ...]) (file name, sha256) of each archive: the subject.
        cpython: (BuiltComponent) the interpreter.
        openssl: (BuiltComponent) OpenSSL (libcrypto, libssl, the openssl program).
        fips_provider: (BuiltComponent) what the shipped FIPS provider was built from: ``openssl`` itself, or the
            provider's own source tree (``fips_provider=``).
        libraries: (tuple[BuiltComponent, ...]) every other bundled library.
        fips_module: (tuple[str, str]) (path in the install, sha256) of the FIPS provider module.
        toolchain: (tuple[tuple[Pin, str], ...]) every compiler, sysroot and tool package, with its role.
        source_date_epoch: (int) the build's fixed timestamp.
    """

    distribution: str
    tag: str
    archives: tuple[tuple[str, str], ...]
    cpython: BuiltComponent
    openssl: BuiltComponent
    fips_provider: BuiltComponent
    libraries: tuple[BuiltComponent, ...]
    fips_module: tuple[str, str]
    toolchain: tuple[tuple[Pin, str], ...]
    source_date_epoch: int


def _sha256(digest: str) -> HashType:
    return HashType(alg=HashAlgorithm.SHA_256, content=digest)


def _props(**values: str) -> list[Property]:
    return [Property(name=f"{NS}:{name.replace('_', '-')}", value=value) for name, value in values.items()]


def _licenses(pin: Pin) -> list[Any]:
    return [LicenseFactory().make_from_string(pin.license)] if pin.license else []


def _source_references(pin: Pin) -> list[ExternalReference]:
    """The pinned source tarball: one reference per URL it is pinned at, each with its sha256."""
    return [
        ExternalReference(
            type=ExternalReferenceType.SOURCE_DISTRIBUTION,
            url=XsUri(url),
            comment=pin.filename,
            hashes=[_sha256(pin.sha256)],
        )
        for url in pin.urls
    ]


def _pedigree(patches: tuple[tuple[str, str], ...]) -> Pedigree | None:
    if not patches:
        return None
    return Pedigree(
        patches=[Patch(type=PatchClassification.UNOFFICIAL, diff=Diff(url=XsUri(path))) for path, _ in patches],
        notes="patches applied in order with patch -p1; their sha256 are the component's patch properties",
    )


def _cpe(pin: Pin) -> str | None:
    """NVD's vendor:product of what `pin` is the source of (None when NVD has none)."""
    if pin.name == "cpython":
        return _CPYTHON_CPE
    return Library.from_pin(pin).cpe if "library" in pin.extra else None


def _built(component: BuiltComponent, *, role: str) -> Component:
    pin = component.pin
    product = _cpe(pin)
    properties = _props(role=role, source_file=pin.filename)
    properties += [Property(name=f"{NS}:patch", value=f"{sha256} {path}") for path, sha256 in component.patches]
    return Component(
        type=ComponentType.LIBRARY,
        name=pin.name,
        version=pin.version,
        bom_ref=f"{pin.name}@{pin.version}",
        scope=ComponentScope.REQUIRED,
        licenses=_licenses(pin),
        purl=PackageURL(type="generic", name=pin.name, version=pin.version),
        cpe=f"cpe:2.3:a:{product}:{pin.version}:*:*:*:*:*:*:*" if product else None,
        external_references=_source_references(pin),
        pedigree=_pedigree(component.patches),
        properties=properties,
    )


def _fips_provider(provider: BuiltComponent, libcrypto: BuiltComponent, module: tuple[str, str]) -> Component:
    pin = provider.pin
    path, digest = module
    own_tree = pin != libcrypto.pin
    certificate = CMVP_CERTIFICATES.get(pin.version)
    validated = certificate is not None and certificate.status == "active"
    facts = {
        "role": "fips-provider",
        "fips_capable": "true",
        "fips_cmvp_validated": "true" if validated else "false",
        "fips_module_path": path,
        "fips_provider_source_tree": "own" if own_tree else "libcrypto",
        "fips_libcrypto_version": libcrypto.pin.version,
    }
    if certificate:
        facts["fips_cmvp_certificate"] = certificate.number
        facts["fips_cmvp_certificate_status"] = certificate.status
    if validated and certificate:
        status = f"CMVP-validated ({certificate.standard} #{certificate.number})"
    else:
        status = f"not CMVP-validated{f' (#{certificate.number} is historical)' if certificate else ''}"
    active = ", ".join(f"{v} (#{c.number})" for v, c in sorted(CMVP_CERTIFICATES.items()) if c.status == "active")
    built = (
        f"from its own pristine {pin.filename} tree (Configure enable-fips, make, make install_fips; no patches)"
        if own_tree
        else f"in the OpenSSL {pin.version} tree with enable-fips, beside libcrypto"
    )
    return Component(
        type=ComponentType.LIBRARY,
        name="openssl-fips-provider",
        version=pin.version,
        bom_ref=f"openssl-fips-provider@{pin.version}",
        scope=ComponentScope.REQUIRED,
        description=(
            f"The OpenSSL {pin.version} FIPS provider, built {built}, loaded by the OpenSSL {libcrypto.pin.version} "
            f"libcrypto; FIPS-capable, {status}. Provider versions with an active CMVP certificate: {active}."
        ),
        hashes=[_sha256(digest)],
        licenses=_licenses(pin),
        purl=PackageURL(type="generic", name="openssl-fips-provider", version=pin.version),
        external_references=_source_references(pin),
        pedigree=Pedigree(
            notes=f"built {built}"
            + (f"; patches: {', '.join(p for p, _ in provider.patches)}" if provider.patches else "")
        ),
        properties=_props(**facts),
    )


def _deb_arch(pin: Pin) -> str | None:
    stem = pin.filename.removesuffix(".deb")
    return stem.rsplit("_", 1)[1] if stem != pin.filename and "_" in stem else None


def _build_time(pin: Pin, role: str) -> Component:
    arch = _deb_arch(pin)
    qualifiers = {"arch": arch} if arch else {}
    return Component(
        type=ComponentType.APPLICATION if role in ("compiler", "tool") else ComponentType.LIBRARY,
        name=pin.name,
        version=pin.version,
        bom_ref=f"build:{pin.filename}",
        scope=ComponentScope.EXCLUDED,
        hashes=[_sha256(pin.sha256)],
        licenses=_licenses(pin),
        purl=_package_url(pin, qualifiers),
        external_references=[
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url), hashes=[_sha256(pin.sha256)])
            for url in pin.urls
        ],
        properties=_props(build_role=role, lifecycle="build", source_file=pin.filename),
    )


def _package_url(pin: Pin, qualifiers: dict[str, str]) -> PackageURL:
    """A build-time package's purl: a wheel from the package index (the sysroot's ziglang) or a Debian package."""
    if any(url.startswith("pypi:") for url in pin.urls):
        return PackageURL(type="pypi", name=pin.name, version=pin.version, qualifiers={"file_name": pin.filename})
    return PackageURL(type="deb", namespace="debian", name=pin.name, version=pin.version, qualifiers=qualifiers)


def serial_number(archives: Iterable[tuple[str, str]]) -> uuid.UUID:
    """A serial number derived from the archives: the same build always gets the same one."""
    subject = "\n".join(f"{digest}  {name}" for name, digest in sorted(archives))
    return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:{NS}:sbom:{subject}")


def build_bom(inputs: SbomInputs) -> Bom:
    """The CycloneDX model of one distribution."""
    archives = [
        Component(type=ComponentType.FILE, name=name, bom_ref=f"archive:{name}", hashes=[_sha256(digest)])
        for name, digest in inputs.archives
    ]
    subject = Component(
        type=ComponentType.APPLICATION,
        name=inputs.distribution,
        version=inputs.tag,
        bom_ref=f"distribution:{inputs.distribution}",
        description="A standalone, relocatable CPython distribution whose OpenSSL carries the FIPS provider",
        licenses=_licenses(inputs.cpython.pin),
        components=archives,
    )
    cpython = _built(inputs.cpython, role="interpreter")
    openssl = _built(inputs.openssl, role="library")
    provider = _fips_provider(inputs.fips_provider, inputs.openssl, inputs.fips_module)
    libraries = {lib.pin.name: _built(lib, role="library") for lib in inputs.libraries}
    toolchain = [_build_time(pin, role) for pin, role in inputs.toolchain]
    bom = Bom(
        serial_number=serial_number(inputs.archives),
        metadata=BomMetaData(
            timestamp=datetime.fromtimestamp(inputs.source_date_epoch, tz=UTC),
            component=subject,
            lifecycles=[PredefinedLifecycle(LifecyclePhase.BUILD)],
            properties=_props(source_date_epoch=str(inputs.source_date_epoch)),
        ),
        components=[cpython, openssl, provider, *libraries.values(), *toolchain],
    )
    for archive in archives:
        bom.register_dependency(archive, [cpython, openssl, provider])
    bom.register_dependency(subject, archives)
    bom.register_dependency(cpython, [openssl, *libraries.values()])
    bom.register_dependency(openssl, [provider])
    for lib in inputs.libraries:
        bom.register_dependency(libraries[lib.pin.name], [libraries[d] for d in lib.deps if d in libraries])
    return bom


def render(bom: Bom) -> str:
    """The CycloneDX 1.6 JSON of `bom`, with sorted keys (stable bytes)."""
    document = json.loads(JsonV1Dot6(bom).output_as_string())
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _iri_reference(value: object) -> bool:
    # An ASCII string is an IRI reference exactly when it is a URI reference (IRIs only add non-ASCII
    # characters); the RFC 3986 check is a regular expression, the generic IRI parser takes ~0.3 s per URL.
    if isinstance(value, str) and value.isascii():
        return validate_rfc3986(value, rule="URI_reference") is not None
    return _IRI_REFERENCE(value)


@cache
def _validator() -> Any:
    """The CycloneDX 1.6 (strict) schema validator of cyclonedx-python-lib, schemas from its own files
    (offline), with every format it checks, the IRI references through a faster equivalent for ASCII."""
    validator: Any = JsonStrictValidator(SchemaVersion.V1_6)._validator
    checker = FormatChecker(validator.format_checker.checkers)
    checker.checkers = {**checker.checkers, "iri-reference": (_iri_reference, ())}
    return validator.evolve(format_checker=checker)


def schema_errors(text: str) -> list[str]:
    """Every way `text` violates the CycloneDX 1.6 JSON schema (checked offline); empty when valid."""
    errors = sorted(_validator().iter_errors(json.loads(text)), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors]


def write_sbom(out: Path, inputs: SbomInputs) -> str:
    """Write the validated SBOM to `out` atomically; return its text. Raises SbomError if it is invalid."""
    text = render(build_bom(inputs))
    problems = schema_errors(text)
    if problems:
        raise SbomError(
            f"{out.name}: does not validate against the CycloneDX 1.6 schema: {problems[0][:300]}",
            hint="a bug in pydist/sbom.py; the document was not written",
        )
    scratch.write_text(out, text)
    return text


@dataclass(frozen=True)
class SbomFacts:
    """What an audit compares with the provenance: the pinned inputs an SBOM names, by sha256."""

    archives: dict[str, str]
    sources: dict[str, str]
    toolchain: dict[str, str]
    patches: dict[str, str]
    fips_module: str | None


def facts(document: dict[str, Any]) -> SbomFacts:
    """Read the subject, the source and toolchain pins, the patches and the FIPS module's digest of an SBOM."""

    def sha256(hashes: list[dict[str, str]]) -> str:
        return next((h["content"] for h in hashes if h.get("alg") == "SHA-256"), "")

    def prop(component: dict[str, Any], name: str) -> list[str]:
        return [p["value"] for p in component.get("properties", []) if p.get("name") == f"{NS}:{name}"]

    subject = document.get("metadata", {}).get("component", {})
    archives = {c["name"]: sha256(c.get("hashes", [])) for c in subject.get("components", [])}
    sources: dict[str, str] = {}
    toolchain: dict[str, str] = {}
    patches: dict[str, str] = {}
    fips_module = None
    for component in document.get("components", []):
        if component.get("scope") == "excluded":
            toolchain[(prop(component, "source-file") or [component["name"]])[0]] = sha256(component.get("hashes", []))
            continue
        if prop(component, "role") == ["fips-provider"]:
            # Its source is OpenSSL's, or a tree of its own that no other component names: counted below.
            fips_module = sha256(component.get("hashes", []))
        for reference in component.get("externalReferences", []):
            if reference.get("type") == "source-distribution":
                sources[reference.get("comment", component["name"])] = sha256(reference.get("hashes", []))
        for entry in prop(component, "patch"):
            digest, _, path = entry.partition(" ")
            patches[path] = digest
    return SbomFacts(archives, sources, toolchain, patches, fips_module)
