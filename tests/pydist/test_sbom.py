"""The SBOM of a distribution, from the real pins (sources lock, x86_64 toolchain) and the real patches.

The document must validate against the CycloneDX 1.6 schema that cyclonedx-python-lib ships (offline), list
what the issue asks for, and be the same bytes for the same inputs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from packageurl import PackageURL

from hermetic.lock import load_lock
from hermetic.toolchain import load_toolchain
from pydist import sbom
from pydist.graph import patches_for
from pydist.libraries import RECIPES
from pydist.paths import LOCK_FILE, PINS_SCHEMA, TOOLCHAINS_DIR

FIPS_SO = "5f" * 32


def built(pin_name: str, version: str | None = None, deps: tuple[str, ...] = ()) -> sbom.BuiltComponent:
    pin = load_lock(LOCK_FILE, PINS_SCHEMA).get(pin_name, version)
    patches = tuple((p.label, p.sha256) for p in patches_for(pin.name, pin.version))
    return sbom.BuiltComponent(pin=pin, patches=patches, deps=deps)


def make_inputs(provider: str | None = None) -> sbom.SbomInputs:
    """The SBOM inputs of a noopt build; `provider` names a pinned provider built from its own tree."""
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    toolchain = load_toolchain(TOOLCHAINS_DIR, "x86_64-unknown-linux-gnu", PINS_SCHEMA)
    assert toolchain.compiler is not None and toolchain.sysroot is None  # generated: the zig wheel is its source
    return sbom.SbomInputs(
        distribution="cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-test",
        tag="test",
        archives=(
            ("cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-test.tar.zst", "a1" * 32),
            ("cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-install_only-test.tar.gz", "b2" * 32),
        ),
        cpython=built("cpython", "3.13.15"),
        openssl=built("openssl"),
        fips_provider=built("openssl-fips", provider) if provider else built("openssl"),
        libraries=tuple(built(r.name, deps=r.deps) for r in RECIPES.values()),
        fips_module=("share/ssl/ossl-modules/fips.so", FIPS_SO),
        toolchain=tuple((p, "compiler") for p in toolchain.compiler.packages.packages)
        + tuple((p, "sysroot") for p in toolchain.available_tools["zig"].packages.packages),
        source_date_epoch=lock.source_date_epoch,
    )


@pytest.fixture(scope="module")
def inputs() -> sbom.SbomInputs:
    return make_inputs()


@pytest.fixture(scope="module")
def document(inputs: sbom.SbomInputs) -> dict[str, Any]:
    return json.loads(sbom.render(sbom.build_bom(inputs)))


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in document["components"] if c["name"] == name]
    return found


def props(c: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in c.get("properties", []):
        found.setdefault(p["name"].removeprefix(f"{sbom.NS}:"), []).append(p["value"])
    return found


def test_document_validates_against_the_cyclonedx_schema(inputs: sbom.SbomInputs) -> None:
    text = sbom.render(sbom.build_bom(inputs))
    assert sbom.schema_errors(text) == []
    data = json.loads(text)
    assert data["bomFormat"] == "CycloneDX" and data["specVersion"] == "1.6"


def test_the_validator_rejects_what_the_schema_forbids(document: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(document))
    component(broken, "openssl")["scope"] = "sometimes"
    component(broken, "zlib")["externalReferences"][0]["hashes"][0]["alg"] = "SHA-257"
    errors = sbom.schema_errors(json.dumps(broken))
    assert len(errors) >= 2


def test_same_inputs_give_the_same_bytes(inputs: sbom.SbomInputs) -> None:
    first = sbom.render(sbom.build_bom(inputs))
    assert sbom.render(sbom.build_bom(make_inputs())) == first
    data = json.loads(first)
    assert data["metadata"]["timestamp"] == "2026-01-01T00:00:00+00:00"
    other = replace(inputs, archives=(("x.tar.gz", "c3" * 32),))
    assert json.loads(sbom.render(sbom.build_bom(other)))["serialNumber"] != data["serialNumber"]


def test_cpython_with_version_license_source_and_patches(document: dict[str, Any]) -> None:
    cpython = component(document, "cpython")
    assert cpython["version"] == "3.13.15" and cpython["scope"] == "required"
    assert cpython["licenses"] == [{"expression": "Python-2.0 AND CNRI-Python"}]
    assert cpython["cpe"].startswith("cpe:2.3:a:python:python:3.13.15:")
    [debian] = [r for r in cpython["externalReferences"] if r["url"].startswith("debian:")]
    assert debian["type"] == "source-distribution"
    assert debian["hashes"] == [{"alg": "SHA-256", "content": built("cpython", "3.13.15").pin.sha256}]
    patches = [p["diff"]["url"] for p in cpython["pedigree"]["patches"]]
    expected = patches_for("cpython", "3.13.15")
    assert patches == [p.label for p in expected] and len(patches) >= 2
    # Properties are sorted (CycloneDX gives them no order); the pedigree above keeps the order of application.
    assert props(cpython)["patch"] == sorted(f"{p.sha256} {p.label}" for p in expected)


def test_openssl_and_its_fips_provider_as_its_own_component(document: dict[str, Any]) -> None:
    openssl = component(document, "openssl")
    assert openssl["version"] == "3.5.7" and openssl["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    provider = component(document, "openssl-fips-provider")
    assert provider["version"] == "3.5.7"
    assert provider["hashes"] == [{"alg": "SHA-256", "content": FIPS_SO}]
    facts = props(provider)
    assert facts["fips-capable"] == ["true"] and facts["fips-cmvp-validated"] == ["false"]
    assert "fips-cmvp-certificate" not in facts
    dependencies = {d["ref"]: d.get("dependsOn", []) for d in document["dependencies"]}
    assert provider["bom-ref"] in dependencies[openssl["bom-ref"]]


def test_the_default_provider_is_built_in_the_libcrypto_tree(document: dict[str, Any]) -> None:
    provider = component(document, "openssl-fips-provider")
    facts = props(provider)
    assert facts["fips-provider-source-tree"] == ["libcrypto"] and facts["fips-libcrypto-version"] == ["3.5.7"]
    assert provider["externalReferences"] == component(document, "openssl")["externalReferences"]
    assert provider["pedigree"] == {"notes": "built in the OpenSSL 3.5.7 tree with enable-fips, beside libcrypto"}
    assert "not CMVP-validated" in provider["description"] and "3.1.2 (#4985)" in provider["description"]


def test_a_provider_from_its_own_tree_has_its_own_version_source_and_pedigree() -> None:
    inputs = make_inputs("3.0.20")
    data = json.loads(sbom.render(sbom.build_bom(inputs)))
    assert sbom.schema_errors(json.dumps(data)) == []
    provider = component(data, "openssl-fips-provider")
    pin = load_lock(LOCK_FILE, PINS_SCHEMA).get("openssl-fips", "3.0.20")
    assert provider["version"] == "3.0.20" and provider["bom-ref"] == "openssl-fips-provider@3.0.20"
    assert {r["hashes"][0]["content"] for r in provider["externalReferences"]} == {pin.sha256}
    assert sorted(r["url"] for r in provider["externalReferences"]) == sorted(pin.urls)
    assert "pristine openssl-3.0.20.tar.gz tree" in provider["pedigree"]["notes"]
    assert "make install_fips; no patches" in provider["pedigree"]["notes"]
    facts = props(provider)
    assert facts["fips-provider-source-tree"] == ["own"] and facts["fips-libcrypto-version"] == ["3.5.7"]
    assert facts["fips-cmvp-validated"] == ["false"] and "fips-cmvp-certificate" not in facts
    assert component(data, "openssl")["version"] == "3.5.7"  # libcrypto is still the one Python links
    # The provider's own source is a source of the build, as the provenance lists it.
    assert sbom.facts(data).sources[pin.filename] == pin.sha256


@pytest.mark.parametrize(
    ("version", "validated", "certificate", "status"),
    [("3.1.2", "true", "4985", "active"), ("3.0.9", "false", "4811", "historical"), ("3.0.20", "false", None, None)],
)
def test_the_cmvp_properties_follow_the_provider_version(
    version: str, validated: str, certificate: str | None, status: str | None
) -> None:
    inputs = make_inputs("3.0.20")
    provider = replace(inputs.fips_provider, pin=replace(inputs.fips_provider.pin, version=version))
    data = json.loads(sbom.render(sbom.build_bom(replace(inputs, fips_provider=provider))))
    entry = component(data, "openssl-fips-provider")
    facts = props(entry)
    assert facts["fips-cmvp-validated"] == [validated]
    assert facts.get("fips-cmvp-certificate") == ([certificate] if certificate else None)
    assert facts.get("fips-cmvp-certificate-status") == ([status] if status else None)
    if status == "historical":
        assert f"not CMVP-validated (#{certificate} is historical)" in entry["description"]
    if validated == "true":
        assert "CMVP-validated (FIPS 140-3 #4985)" in entry["description"]


def test_every_bundled_library_with_license_and_hashed_source(document: dict[str, Any]) -> None:
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    for name in RECIPES:
        pin = lock.get(name)
        entry = component(document, name)
        assert entry["version"] == pin.version and entry["scope"] == "required"
        license_ = entry["licenses"][0]
        assert license_.get("expression", license_.get("license", {}).get("id")) == pin.license
        references = entry["externalReferences"]
        assert sorted(r["url"] for r in references) == sorted(pin.urls)
        assert {r["hashes"][0]["content"] for r in references} == {pin.sha256}
    libffi = component(document, "libffi")
    assert [p["diff"]["url"] for p in libffi["pedigree"]["patches"]] == [
        p.label for p in patches_for("libffi", "3.4.4")
    ]
    dependencies = {d["ref"]: d.get("dependsOn", []) for d in document["dependencies"]}
    assert component(document, "ncurses")["bom-ref"] in dependencies[component(document, "libedit")["bom-ref"]]


def test_toolchain_and_sysroot_packages_are_build_time_components(
    document: dict[str, Any], inputs: sbom.SbomInputs
) -> None:
    excluded = [c for c in document["components"] if c.get("scope") == "excluded"]
    assert len(excluded) == len(inputs.toolchain)
    by_file = {props(c)["source-file"][0]: c for c in excluded}
    for pin, role in inputs.toolchain:
        entry = by_file[pin.filename]
        assert entry["hashes"] == [{"alg": "SHA-256", "content": pin.sha256}]
        assert props(entry)["build-role"] == [role] and props(entry)["lifecycle"] == ["build"]
        purl = PackageURL.from_string(entry["purl"])
        if role == "sysroot":  # generated from the ziglang wheel
            assert (purl.type, purl.name, purl.version) == ("pypi", "ziglang", pin.version)
            assert purl.qualifiers == {"file_name": pin.filename}
        else:
            assert (purl.type, purl.namespace, purl.name, purl.version) == ("deb", "debian", pin.name, pin.version)
    assert {"compiler", "sysroot"} == {role for _, role in inputs.toolchain}
    assert document["metadata"]["lifecycles"] == [{"phase": "build"}]


def test_the_archives_are_the_subject(document: dict[str, Any], inputs: sbom.SbomInputs) -> None:
    subject = document["metadata"]["component"]
    assert subject["name"] == inputs.distribution and subject["version"] == "test"
    files = {c["name"]: c["hashes"][0]["content"] for c in subject["components"]}
    assert files == dict(inputs.archives)


def test_facts_read_back_what_was_written(document: dict[str, Any], inputs: sbom.SbomInputs) -> None:
    facts = sbom.facts(document)
    assert facts.archives == dict(inputs.archives)
    every = [inputs.cpython, inputs.openssl, *inputs.libraries]
    assert facts.sources == {c.pin.filename: c.pin.sha256 for c in every}
    assert facts.toolchain == {pin.filename: pin.sha256 for pin, _ in inputs.toolchain}
    assert facts.patches == {path: digest for c in every for path, digest in c.patches}
    assert facts.fips_module == FIPS_SO


def test_write_is_atomic_and_refuses_an_invalid_document(
    inputs: sbom.SbomInputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / sbom.SBOM_NAME
    text = sbom.write_sbom(out, inputs)
    assert out.read_text() == text and [p.name for p in tmp_path.iterdir()] == [sbom.SBOM_NAME]
    # A document the schema rejects (a bug in what the build put in) is not written.
    monkeypatch.setattr(sbom, "render", lambda bom: text.replace('"scope": "excluded"', '"scope": "maybe"'))
    again = tmp_path / "again" / sbom.SBOM_NAME
    again.parent.mkdir()
    with pytest.raises(sbom.SbomError, match="does not validate"):
        sbom.write_sbom(again, inputs)
    assert list(again.parent.iterdir()) == []
