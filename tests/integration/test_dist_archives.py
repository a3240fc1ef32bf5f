"""The noopt CPython 3.13 distribution, built end to end (the build runs its own runtime tests first)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import archive, unpack
from hermetic.archive_read import open_tar
from hermetic.lock import load_lock
from hermetic.toolchain import load_toolchain
from pydist import buildpaths, catalog, distribution, glibc_sysroot, provenance, sbom
from pydist.paths import LOCK_FILE, PATCHES_DIR, PINS_SCHEMA, REPO_ROOT, TOOLCHAINS_DIR

pytestmark = pytest.mark.integration

TARGET = "x86_64-unknown-linux-gnu"


@pytest.fixture(scope="module")
def dist(noopt_dist: Path) -> Path:
    return noopt_dist


def members(path: Path) -> list[tarfile.TarInfo]:
    with open_tar(path) as tar:
        return list(tar)


def test_outputs_and_checksums(dist: Path) -> None:
    files = sorted(p.name for p in dist.iterdir())
    expected = [archive(dist, k).name for k in ("full", "install_only", "stripped")]
    assert files == sorted([*expected, "SHA256SUMS", "provenance.json", "sbom.cdx.json"])
    for line in (dist / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest


def test_full_archive_layout_and_python_json(dist: Path, tmp_path: Path) -> None:
    listing = members(archive(dist, "full"))
    assert listing[0].name == "python/PYTHON.json"
    names = {m.name for m in listing}
    required = [
        "install/bin/python3.13",
        "install/share/ssl/ossl-modules/fips.so",
        "install/share/ssl/fipsmodule.cnf",
        "install/share/ssl/openssl-fips.cnf",
        "install/share/ssl/bin/openssl",
        "install/lib/python3.13/pystandalone_fips.py",
        "licenses/LICENSE.cpython.txt",
        "licenses/LICENSE.openssl.txt",
        "build/lib/libcrypto.a",
        "build/Modules/config.c",
        "build/run_tests.py",
    ]
    for path in required:
        assert f"python/{path}" in names, path
    # openssl fipsinstall writes this on each machine; an archive never carries one.
    assert not any(name.startswith("python/install/share/ssl/fipsinstall") for name in names)
    assert {(m.uid, m.gid, m.mtime) for m in listing} == {(0, 0, 1767225600)}
    root = unpack(archive(dist, "full"), tmp_path) / "python"
    data = json.loads((root / "PYTHON.json").read_text())
    assert distribution.validate_python_json(data) == []
    assert data["version"] == "8" and data["build_options"] == "noopt"
    assert data["python_exe"] == "install/bin/python3.13"
    config = data["python_config_vars"]
    assert config["CC"].startswith("clang") and "--sysroot" not in config["CC"]
    assert "/build/deps" not in config["LDFLAGS"] and "-fuse-ld=lld" not in config["LDSHARED"]
    # Measured from the files by the validator: the target's glibc floor.
    floor = load_toolchain(TOOLCHAINS_DIR, TARGET, PINS_SCHEMA).target["glibc_floor"]
    assert f"glibc-max-symbol-version:{floor}" in data["crt_features"]
    for name, variants in data["build_info"]["extensions"].items():
        for path in variants[0]["objs"] + [variants[0].get("shared_lib", "")]:
            assert not path or (root / path).exists(), (name, path)
    assert buildpaths.violations(root / "install") == []


def test_install_only_drops_tests_and_keeps_licenses(dist: Path) -> None:
    names = {m.name for m in members(archive(dist, "install_only"))}
    assert "python/bin/python3.13" in names and "python/PYTHON.json" not in names
    assert not [n for n in names if n.startswith("python/lib/python3.13/test/")]
    assert not [n for n in names if re.search(r"lib-dynload/_testcapi\.", n)]
    assert not [n for n in names if n.endswith(".a")]
    assert "python/share/licenses/LICENSE.openssl.txt" in names


def test_stripped_archive_keeps_fips_so_byte_identical(dist: Path, tmp_path: Path) -> None:
    plain = unpack(archive(dist, "install_only"), tmp_path / "plain") / "python"
    stripped = unpack(archive(dist, "stripped"), tmp_path / "stripped") / "python"
    module = "share/ssl/ossl-modules/fips.so"
    assert (plain / module).read_bytes() == (stripped / module).read_bytes()
    lib = "lib/libpython3.13.so.1.0"
    assert (stripped / lib).stat().st_size < (plain / lib).stat().st_size
    with open(stripped / lib, "rb") as f:
        assert not [s.name for s in ELFFile(f).iter_sections() if s.name.startswith(".debug")]


def test_interpreter_links_libpython_statically(dist: Path, tmp_path: Path) -> None:
    root = unpack(archive(dist, "install_only"), tmp_path) / "python"
    with open(root / "bin" / "python3.13", "rb") as f:
        dynamic = ELFFile(f).get_section_by_name(".dynamic")
        tags = {(t.entry.d_tag, getattr(t, "needed", getattr(t, "rpath", None))) for t in dynamic.iter_tags()}
    assert not [value for tag, value in tags if tag == "DT_NEEDED" and "libpython" in str(value)]
    assert ("DT_RPATH", "$ORIGIN/../lib") in tags
    assert (root / "lib" / "libpython3.13.so.1.0").is_file()


def fips_env(root: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "OPENSSL_CONF": str(root / "share" / "ssl" / "openssl-fips.cnf")}


def test_fips_mode_from_an_unpacked_install_only(dist: Path, tmp_path: Path) -> None:
    root = unpack(archive(dist, "install_only"), tmp_path / "some where") / "python"
    code = (
        "import hashlib, _hashlib\n"
        "assert _hashlib.get_fips_mode() == 1\n"
        "try:\n    hashlib.md5()\nexcept ValueError:\n    pass\nelse:\n    raise SystemExit('md5 allowed')\n"
        "hashlib.md5(usedforsecurity=False)\n"
        "print(hashlib.sha256(b'abc').hexdigest())\n"
    )
    python = str(root / "bin" / "python3")
    out = subprocess.run([python, "-c", code], env=fips_env(root), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == hashlib.sha256(b"abc").hexdigest()


def test_modified_fips_so_stops_fips_mode(dist: Path, tmp_path: Path) -> None:
    root = unpack(archive(dist, "install_only"), tmp_path) / "python"
    module = root / "share" / "ssl" / "ossl-modules" / "fips.so"
    data = bytearray(module.read_bytes())
    data[len(data) // 3] ^= 0x01
    module.write_bytes(bytes(data))
    code = "import hashlib; hashlib.sha256(b'x')"
    out = subprocess.run(
        [str(root / "bin" / "python3"), "-c", code], env=fips_env(root), capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "unsupported" in out.stderr or "FIPS" in out.stderr, out.stderr


def test_runtime_tests_ran_on_both_install_only_archives(project: Path, dist: Path) -> None:
    reports = project / "build" / TARGET / "tests"
    for kind in ("install_only", "stripped"):
        report = reports / f"{archive(dist, kind).name}.report.tar.zst"
        with open_tar(report) as tar:
            results = next(json.load(tar.extractfile(m)) for m in tar if m.name == "report.json")  # type: ignore[arg-type]
        checks = {(r["where"], r["check"]): r["status"] for r in results}
        assert checks and set(checks.values()) == {"ok"}
        assert ("moved", "fips_mode") in checks and ("unpacked", "tls_handshake") in checks
        fips = ("fips_switches_are_scoped_to_this_python", "fips_request_fails_closed")
        fips += ("kernel_fips_flag_requests_fips_mode", "pbkdf2_and_hmac_use_the_provider")
        fips += ("builtin_hashes_refuse_security_use_in_fips_mode",)
        fips += ("fipsinstall_step_is_what_fips_mode_uses", "fipsinstall_refuses_a_replaced_module")
        fips += ("fipsinstall_on_a_read_only_install",)
        assert all((where, check) in checks for where in ("unpacked", "moved") for check in fips)
        suites = ("outside_fips_mode", "in_fips_mode", "skip_list_fails_in_fips_mode")
        assert all(("unpacked", f"cpython_suites_{run}") in checks for run in suites)


def test_install_only_conversion_is_deterministic(dist: Path, tmp_path: Path) -> None:
    again = tmp_path / archive(dist, "install_only").name
    distribution.convert_install_only(archive(dist, "full"), again, 1767225600)
    assert again.read_bytes() == archive(dist, "install_only").read_bytes()


def test_provenance_audits_clean(dist: Path) -> None:
    problems, summary = provenance.audit(dist)
    assert problems == [], problems
    document = json.loads((dist / "provenance.json").read_text())
    assert document["predicateType"] == "https://slsa.dev/provenance/v1"
    names = {a["name"] for a in document["predicate"]["runDetails"]["byproducts"]}
    assert {"action/openssl-3.5.7", "action/cpython-3.13.15-noopt", "action/assemble-full-archive"} <= names
    dependencies = document["predicate"]["buildDefinition"]["resolvedDependencies"]
    kinds = {d["annotations"]["kind"] for d in dependencies}
    assert {"source", "compiler", "sysroot", "repository-file", "host-tool"} <= kinds
    # Host tools are not pinned: they are recorded by release, as the action keys hold them.
    tools = {d["name"]: d for d in dependencies if d["annotations"]["kind"] == "host-tool"}
    assert tools["host:/usr/bin/make"]["annotations"]["release"].startswith("make ")
    assert "digest" not in tools["host:/usr/bin/make"]
    assert "archives" in summary


def copy_dist(dist: Path, dest: Path) -> Path:
    shutil.copytree(dist, dest, copy_function=lambda s, d: Path(d).hardlink_to(s))
    return dest


def test_audit_finds_a_changed_archive_and_a_tampered_record(dist: Path, tmp_path: Path) -> None:
    copy = copy_dist(dist, tmp_path / "dist")
    stripped = archive(copy, "stripped")
    data = stripped.read_bytes()
    stripped.unlink()
    stripped.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    document = json.loads((copy / "provenance.json").read_text())
    for action in document["predicate"]["runDetails"]["byproducts"]:
        if action["name"] == "action/zlib-1.3.1":
            action["annotations"]["sandbox"]["network"] = True
    dependencies = document["predicate"]["buildDefinition"]["resolvedDependencies"]
    document["predicate"]["buildDefinition"]["resolvedDependencies"] = [
        d for d in dependencies if not d["name"].startswith("libffi")
    ]
    (copy / "provenance.json").unlink()
    (copy / "provenance.json").write_text(json.dumps(document))
    problems, _ = provenance.audit(copy)
    text = "\n".join(problems)
    assert f"{stripped.name}: sha256 differs from the provenance" in text
    assert "action/zlib-1.3.1: did not run in bubblewrap without network" in text
    assert "action/libffi-3.4.4: its source libffi 3.4.4 is not a pinned input" in text


def test_sbom_of_the_real_build(dist: Path, tmp_path: Path) -> None:
    text = (dist / sbom.SBOM_NAME).read_text()
    assert sbom.schema_errors(text) == []
    document = json.loads(text)
    facts = sbom.facts(document)
    assert facts.archives == {
        archive(dist, k).name: hashlib.sha256(archive(dist, k).read_bytes()).hexdigest()
        for k in ("full", "install_only", "stripped")
    }
    fips = unpack(archive(dist, "install_only"), tmp_path) / "python/share/ssl/ossl-modules/fips.so"
    assert facts.fips_module == hashlib.sha256(fips.read_bytes()).hexdigest()
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    # CPython and every library a Linux CPython links (each row of the catalog).
    expected = [lock.get("cpython", "3.13.15"), *(library.pin for library in catalog.used_on("linux").values())]
    assert facts.sources == {pin.filename: pin.sha256 for pin in expected}
    toolchain = load_toolchain(TOOLCHAINS_DIR, TARGET, PINS_SCHEMA)
    # The compiler's packages, and the ziglang wheel the generated glibc sysroot comes from.
    generator = glibc_sysroot.generator_toolchain(toolchain, str(toolchain.target["glibc_floor"]))
    packages = [*toolchain.all_packages(), *generator.all_packages()]
    assert facts.toolchain == {pin.filename: pin.sha256 for pin in packages}
    patches = sorted((PATCHES_DIR / "cpython/3.13").glob("*.patch"))
    assert set(facts.patches) >= {p.relative_to(REPO_ROOT).as_posix() for p in patches}


def test_audit_finds_a_tampered_sbom(dist: Path, tmp_path: Path) -> None:
    copy = copy_dist(dist, tmp_path / "dist")
    document = json.loads((copy / sbom.SBOM_NAME).read_text())
    for component in document["components"]:
        if component["name"] == "clang-19":
            component["hashes"][0]["content"] = "f" * 64
    (copy / sbom.SBOM_NAME).unlink()
    (copy / sbom.SBOM_NAME).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    problems, _ = provenance.audit(copy)
    assert f"{sbom.SBOM_NAME}: sha256 differs from the provenance (changed after the build?)" in problems
    assert any(p.startswith(f"{sbom.SBOM_NAME}: toolchain package clang-19_") for p in problems)
