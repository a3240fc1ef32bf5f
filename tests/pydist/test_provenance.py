"""``pydist audit`` checks the SBOM against the provenance: a dist directory made here from real archives (packed
with the build's own packer), the real pins and patches, an SBOM and a provenance statement written by the
build's own functions; then tampered with in the ways an auditor must catch."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_sbom import make_inputs

from hermetic.archive_pack import pack_tree
from pydist import distribution, provenance, sbom

EPOCH = 1767225600

FIPS_MODULE = "share/ssl/ossl-modules/fips.so"


def _record(component: sbom.BuiltComponent, name: str) -> dict[str, Any]:
    """An action record as the runner writes it (the fields the provenance reads)."""
    description = {
        "name": name,
        "rule": "library",
        "target": "x86_64-unknown-linux-gnu",
        "sandbox": {"kind": "bubblewrap", "network": False},
        "source": component.pin.identity(),
        "patches": [{"path": path, "sha256": digest} for path, digest in component.patches],
        "files": [],
        "toolchain": {},
        "host_tools": {},
    }
    return {"key": hashlib.sha256(name.encode()).hexdigest(), "description": description, "dep_artifacts": {}}


def _archive(directory: Path, name: str, fips: bytes) -> Path:
    tree = directory / f".{name}.tree"
    (tree / FIPS_MODULE).parent.mkdir(parents=True)
    (tree / FIPS_MODULE).write_bytes(fips)
    (tree / "bin").mkdir()
    (tree / "bin" / "python3").write_text("#!/bin/sh\n")
    out = directory / name
    pack_tree(tree, out, mtime=EPOCH, prefix="python", compression="gz")
    return out


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    return make_dist(tmp_path, make_inputs())


def make_dist(tmp_path: Path, template: sbom.SbomInputs) -> Path:
    """A dist directory whose SBOM and provenance the build's own functions wrote from `template`."""
    directory = tmp_path / "cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-test"
    directory.mkdir()
    fips = b"\x7fELF a FIPS module stand-in"
    archives = [
        _archive(directory, "cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-install_only-test.tar.gz", fips),
        _archive(directory, "cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-install_only_stripped-test.tar.gz", fips),
    ]
    for tree in directory.glob(".*.tree"):
        for path in sorted(tree.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        tree.rmdir()
    distribution.write_sha256sums(directory / "SHA256SUMS", archives)
    inputs = sbom.SbomInputs(
        **{
            **template.__dict__,
            "archives": tuple((a.name, hashlib.sha256(a.read_bytes()).hexdigest()) for a in archives),
            "fips_module": (FIPS_MODULE, hashlib.sha256(fips).hexdigest()),
        }
    )
    sbom_path = directory / sbom.SBOM_NAME
    sbom.write_sbom(sbom_path, inputs)
    own_provider = [inputs.fips_provider] if inputs.fips_provider != inputs.openssl else []
    built = [inputs.cpython, inputs.openssl, *own_provider, *inputs.libraries]
    records = [(_record(c, c.pin.id), hashlib.sha256(c.pin.id.encode()).hexdigest()) for c in built]
    document = provenance.build_statement(
        archives=archives,
        artifacts=[],
        extra_actions=records,
        pins=[(c.pin, "source") for c in built] + [(pin, role) for pin, role in inputs.toolchain],
        external={"target": "x86_64-unknown-linux-gnu"},
        internal={"source_date_epoch": EPOCH},
        builder_version={"fips-python-standalone": "test"},
        sbom=sbom_path,
    )
    (directory / provenance.PROVENANCE_NAME).write_text(json.dumps(document, indent=2))
    return directory


def edit_json(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def sbom_component(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["components"] if c["name"] == name)


def restamp(dist: Path) -> None:
    """What a careful tamperer does next: write the new SBOM's digest into the provenance."""
    digest = hashlib.sha256((dist / sbom.SBOM_NAME).read_bytes()).hexdigest()

    def change(document: dict[str, Any]) -> None:
        for byproduct in document["predicate"]["runDetails"]["byproducts"]:
            if byproduct["name"] == sbom.SBOM_NAME:
                byproduct["digest"]["sha256"] = digest

    edit_json(dist / provenance.PROVENANCE_NAME, change)


def test_a_consistent_build_audits_clean(dist: Path) -> None:
    problems, summary = provenance.audit(dist)
    assert problems == []
    assert "1 SBOM" in summary
    document = json.loads((dist / provenance.PROVENANCE_NAME).read_text())
    [listed] = [b for b in document["predicate"]["runDetails"]["byproducts"] if b["name"] == sbom.SBOM_NAME]
    assert listed["annotations"] == {"kind": "sbom", "mediaType": "application/vnd.cyclonedx+json"}
    assert listed["digest"]["sha256"] == hashlib.sha256((dist / sbom.SBOM_NAME).read_bytes()).hexdigest()


def test_a_build_shipping_a_provider_from_its_own_tree_audits_clean(tmp_path: Path) -> None:
    directory = make_dist(tmp_path, make_inputs("3.0.20"))
    assert provenance.audit(directory)[0] == []
    # Its source is one the SBOM must name: dropping the provider's source reference is caught.
    edit_json(
        directory / sbom.SBOM_NAME,
        lambda data: sbom_component(data, "openssl-fips-provider").update(externalReferences=[]),
    )
    restamp(directory)
    assert provenance.audit(directory)[0] == [
        f"{sbom.SBOM_NAME}: lacks the source openssl-3.0.20.tar.gz the provenance lists"
    ]


def test_a_tampered_sbom_fails_even_when_the_provenance_digest_is_updated(dist: Path) -> None:
    def swap_source(data: dict[str, Any]) -> None:
        for reference in sbom_component(data, "zlib")["externalReferences"]:
            reference["hashes"][0]["content"] = "0" * 64

    edit_json(dist / sbom.SBOM_NAME, swap_source)
    problems, _ = provenance.audit(dist)
    assert f"{sbom.SBOM_NAME}: sha256 differs from the provenance (changed after the build?)" in problems
    zlib = "zlib_1.3.dfsg+really1.3.1.orig.tar.gz"
    assert f"{sbom.SBOM_NAME}: source {zlib} has another sha256 than in the provenance" in problems
    restamp(dist)
    problems, _ = provenance.audit(dist)
    assert problems == [f"{sbom.SBOM_NAME}: source {zlib} has another sha256 than in the provenance"]


def test_a_dropped_toolchain_package_patch_or_archive_is_named(dist: Path) -> None:
    def drop(data: dict[str, Any]) -> None:
        data["components"] = [c for c in data["components"] if c["name"] != "ziglang"]  # the sysroot's source
        cpython = sbom_component(data, "cpython")
        patch = "0001-openssl-modules-dir.patch"
        cpython["properties"] = [p for p in cpython["properties"] if not p["value"].endswith(patch)]
        data["metadata"]["component"]["components"].pop()

    edit_json(dist / sbom.SBOM_NAME, drop)
    restamp(dist)
    text = "\n".join(provenance.audit(dist)[0])
    wheel = "ziglang-0.17.1-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl"
    assert f"lacks the toolchain package {wheel} the provenance lists" in text
    assert "lacks the patch patches/cpython/3.13/0001-openssl-modules-dir.patch the provenance lists" in text
    assert "lacks the archive cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-install_only_stripped-test.tar.gz" in text


def test_an_sbom_that_is_not_cyclonedx_or_is_missing(dist: Path) -> None:
    edit_json(dist / sbom.SBOM_NAME, lambda data: sbom_component(data, "openssl").update(scope="sometimes"))
    restamp(dist)
    [problem] = provenance.audit(dist)[0]
    assert problem.startswith(f"{sbom.SBOM_NAME}: not valid CycloneDX 1.6:")
    (dist / sbom.SBOM_NAME).unlink()
    assert provenance.audit(dist)[0] == [f"{sbom.SBOM_NAME}: named in the provenance but missing"]


def test_a_provenance_without_the_sbom_is_a_problem(dist: Path) -> None:
    def forget(document: dict[str, Any]) -> None:
        details = document["predicate"]["runDetails"]
        details["byproducts"] = [b for b in details["byproducts"] if b["name"] != sbom.SBOM_NAME]

    edit_json(dist / provenance.PROVENANCE_NAME, forget)
    problems, _ = provenance.audit(dist)
    assert problems == [f"{provenance.PROVENANCE_NAME}: names 0 SBOMs; expected exactly one, {sbom.SBOM_NAME}"]


@pytest.mark.parametrize(("target", "accepted"), [("x86_64-unknown-linux-gnu", False), ("aarch64-apple-darwin", True)])
def test_unsandboxed_actions_pass_only_where_the_target_pin_declares_no_sandbox(
    dist: Path, target: str, accepted: bool
) -> None:
    def unsandbox(document: dict[str, Any]) -> None:
        document["predicate"]["buildDefinition"]["externalParameters"]["target"] = target
        for byproduct in document["predicate"]["runDetails"]["byproducts"]:
            if byproduct["name"].startswith("action/"):
                byproduct["annotations"]["sandbox"] = {"kind": "unsandboxed", "network": False}

    edit_json(dist / provenance.PROVENANCE_NAME, unsandbox)
    problems, summary = provenance.audit(dist)
    sandbox_problems = [p for p in problems if "did not run in" in p]
    if accepted:
        assert sandbox_problems == [] and re.search(r"[1-9]\d* unsandboxed actions", summary)
    else:
        assert sandbox_problems and all("did not run in bubblewrap without network" in p for p in sandbox_problems)


def test_a_given_pgo_profile_is_a_dependency_of_its_own_kind(tmp_path: Path) -> None:
    """A ``pgo_profile=`` file is recorded by its sha256, as what it is (not as a repository file)."""
    inputs = make_inputs()
    record = _record(inputs.cpython, "cpython-3.13.15-pgo+lto")
    profile = hashlib.sha256(b"a merged profile").hexdigest()
    record["description"]["files"] = [{"path": "pgo_profile", "sha256": profile}]
    archive = _archive(tmp_path, "cpython-test.tar.gz", b"fips")
    document = provenance.build_statement(
        archives=[archive],
        artifacts=[],
        extra_actions=[(record, hashlib.sha256(b"out").hexdigest())],
        pins=[(inputs.cpython.pin, "source")],
        external={"target": "x86_64-unknown-linux-gnu"},
        internal={"source_date_epoch": EPOCH},
        builder_version={"fips-python-standalone": "test"},
    )
    dependencies = document["predicate"]["buildDefinition"]["resolvedDependencies"]
    [found] = [d for d in dependencies if d["name"] == "pgo_profile"]
    assert found["digest"]["sha256"] == profile and found["annotations"]["kind"] == "pgo-profile"
