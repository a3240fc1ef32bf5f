"""The in-process steps of a distribution: each archive, the checksums, the SBOM and the provenance.

Each archive is checked before it appears: the full archive's PYTHON.json must validate, and each
install_only archive is unpacked in a fresh directory of a sandbox and must pass the runtime tests
(``in_sandbox/runtime_tests.py``), or it is not produced. Every step writes to a staging name and renames.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermetic import log, scratch
from hermetic.action import Action
from hermetic.archive_extract import extract_tar
from hermetic.archive_read import open_tar
from hermetic.content_store import sha256_file
from hermetic.pins import Pin
from hermetic.sandbox import bubblewrap_version
from pydist import distribution, provenance, sbom
from pydist.archive_actions import report_path, runtime_test_action, strip_action
from pydist.dist_context import DistContext, rule_code
from pydist.distribution import DistNames, DistributionError
from pydist.paths import REPO_ROOT
from pydist.targets import SYSROOT_GENERATOR
from pydist.validate import validate


def _publish(staged: Path, final: Path) -> None:
    """Move a checked archive into place (atomically: same file system)."""
    staged.replace(final)
    if not any(staged.parent.iterdir()):
        staged.parent.rmdir()


def validated(archives: list[Path], label: str, work_root: Path) -> None:
    """Run the validator on `archives` (the last one is the new one); fail with every violation shown.

    It unpacks them in the build's work directory (not the system's temporary one), where a killed run's
    leftovers are found and replaced by the next run's."""
    work = work_root / f"validate-{label}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        with log.step(f"validate {label}"):
            report = validate(archives, work=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if report.ok:
        log.say(f"  {report.summary()}")
        return
    for violation in sorted(report.violations)[:100]:
        log.say(f"  {violation}")
    raise DistributionError(
        f"{label}: {len(report.violations)} violation(s), e.g. {sorted(report.violations)[0]}",
        hint=f"it is kept in {archives[-1].parent} for inspection: python -m pydist validate <archive>",
    )


@dataclass(frozen=True)
class DistSteps:
    """The bodies of the distribution's in-process steps, each called by SCons with (targets, sources).

    `openssl_artifact` is OpenSSL's (its ``openssl`` program runs the runtime tests); `fips_artifact` holds the
    FIPS provider that ships: the same artifact, or the provider's own (``fips_provider=``)."""

    ctx: DistContext
    names: DistNames
    openssl_artifact: Path
    fips_artifact: Path
    build_python_artifacts: tuple[Path, ...] = ()

    def full(self, targets: list[Path], sources: list[Path]) -> None:
        """The full archive, from the CPython artifact, the shipped provider's artifact, OpenSSL's (for its ``openssl``
        program) and the license sources."""
        [archive] = targets
        cpython_artifact, fips_artifact = sources[:2]
        work = self.ctx.work_root / f"dist-{self.names.directory}"
        shutil.rmtree(work, ignore_errors=True)
        with log.step(f"unpack {cpython_artifact.name}"):
            extract_tar(cpython_artifact, work / "cpython")
        extract_tar(fips_artifact, work / "fips")
        extract_tar(self.openssl_artifact, work / "openssl")
        licenses = [(pin, self.ctx.fetcher.fetch(pin)) for pin in self.ctx.license_pins]
        staged = scratch.staged_path(archive)
        with log.step(f"assemble {archive.name}"):
            distribution.assemble_full(
                out=staged,
                work=work / "tree",
                cpython_tree=work / "cpython",
                fips_tree=work / "fips",
                openssl_tree=work / "openssl",
                licenses=licenses,
                request=self.ctx.request,
                platform=self.ctx.platform,
                object_format=self.ctx.object_format,
                source_date_epoch=self.ctx.lock.source_date_epoch,
                fips_provider=self.ctx.fips_provider.record(),
            )
        validated([staged], archive.name, self.ctx.work_root)
        _publish(staged, archive)
        shutil.rmtree(work)

    def install_only(self, targets: list[Path], sources: list[Path]) -> None:
        """The install_only archive, converted from the full one, validated and runtime-tested."""
        archive, _report = targets
        staged = scratch.staged_path(archive)
        full_archive = sources[0]
        with log.step(f"convert {archive.name}"):
            distribution.convert_install_only(full_archive, staged, self.ctx.lock.source_date_epoch)
        validated([full_archive, staged], archive.name, self.ctx.work_root)
        self._runtime_tests(staged)
        _publish(staged, archive)

    def stripped(self, targets: list[Path], sources: list[Path]) -> None:
        """The install_only_stripped archive, stripped in the sandbox, validated and runtime-tested."""
        archive, _report = targets
        staged = scratch.staged_path(archive)
        install_only_archive, _openssl, full_archive = sources
        self.ctx.runner.run(strip_action(self.ctx, install_only_archive), staged, [])
        validated([full_archive, install_only_archive, staged], archive.name, self.ctx.work_root)
        self._runtime_tests(staged)
        _publish(staged, archive)

    def _runtime_tests(self, archive: Path) -> None:
        self.ctx.runner.run(
            runtime_test_action(self.ctx, archive), report_path(self.ctx, archive), [self.openssl_artifact]
        )

    def sums(self, targets: list[Path], sources: list[Path]) -> None:
        """SHA256SUMS of the three archives."""
        distribution.write_sha256sums(targets[0], sources)

    def write_sbom(self, targets: list[Path], sources: list[Path]) -> None:
        """The CycloneDX SBOM, from the archives and the artifacts' action records."""
        archives, artifacts = sources[:3], sources[3:]
        with log.step(f"write {sbom.SBOM_NAME}"):
            sbom.write_sbom(targets[0], sbom_inputs(self.ctx, self.names, archives, artifacts))

    def provenance_statement(self, targets: list[Path], sources: list[Path]) -> None:
        """provenance.json: the archives' digests, every pinned input and every action that ran."""
        full_archive, install_only_archive, stripped_archive, _sums, sbom_file, cpython_artifact, *artifacts = sources
        # The SBOM step read what ships; a cross build's build Python (last in `sources`) is only in the records.
        shipped = [a for a in artifacts if a not in self.build_python_artifacts]
        ctx = self.ctx
        digest = {p: sha256_file(p) for p in (full_archive, install_only_archive, stripped_archive)}
        document = provenance.build_statement(
            archives=[full_archive, install_only_archive, stripped_archive],
            artifacts=[cpython_artifact, *artifacts],
            extra_actions=self._step_records(digest, sbom_file, cpython_artifact, shipped),
            pins=self._pins(),
            external=self.build_parameters(),
            internal={
                "source_date_epoch": ctx.lock.source_date_epoch,
                "sources_lock_sha256": sha256_file(ctx.lock.path),
                "toolchain": ctx.toolchain.identity_digest(),
            },
            builder_version=builder_version(ctx),
            sbom=sbom_file,
        )
        scratch.write_text(targets[0], json.dumps(document, indent=2, sort_keys=True) + "\n")

    def build_parameters(self) -> dict[str, Any]:
        """The provenance's external parameters: what was asked for, including which FIPS provider ships."""
        ctx = self.ctx
        return {
            "target": ctx.request.target,
            "python": ctx.request.python_version,
            "options": str(ctx.request.options),
            "tag": self.names.tag,
            "fips_provider": ctx.fips_provider.record(),
        }

    def _pins(self) -> list[tuple[Any, str]]:
        emulator = self.ctx.toolchain.emulator
        pins = [(pin, "source") for pin in self.ctx.license_pins]
        pins += build_time_pins(self.ctx)
        pins += [(pin, "emulator") for pin in (emulator.packages.packages if emulator else ())]
        return pins

    def _step_records(
        self, digest: dict[Path, str], sbom_file: Path, cpython_artifact: Path, artifacts: list[Path]
    ) -> list[tuple[dict[str, Any], str]]:
        """(record, output digest) of every step these rules ran: in-process ones and sandboxed ones."""
        ctx, openssl = self.ctx, self.openssl_artifact
        full_archive, install_only_archive, stripped_archive = digest
        sbom_read = {p.name: d for p, d in digest.items()}
        sbom_read |= {a.name: sha256_file(a) for a in (cpython_artifact, *artifacts)}
        assembled = {
            cpython_artifact.name: sha256_file(cpython_artifact),
            self.fips_artifact.name: sha256_file(self.fips_artifact),
            **{pin.filename: pin.sha256 for pin in ctx.license_pins},
        }
        records = [
            (in_process_record(ctx, "write-sbom", sbom_read), sha256_file(sbom_file)),
            (in_process_record(ctx, "assemble-full-archive", assembled), digest[full_archive]),
            (
                in_process_record(ctx, "convert-install-only", {full_archive.name: digest[full_archive]}),
                digest[install_only_archive],
            ),
            (
                action_record(
                    strip_action(ctx, install_only_archive), {install_only_archive.name: digest[install_only_archive]}
                ),
                digest[stripped_archive],
            ),
        ]
        for tested in (install_only_archive, stripped_archive):
            # The full archive is an input too: the runtime tests take CPython's test suite from it.
            inputs = {
                tested.name: digest[tested],
                full_archive.name: digest[full_archive],
                openssl.name: sha256_file(openssl),
            }
            report = sha256_file(report_path(ctx, tested))
            records.append((action_record(runtime_test_action(ctx, tested), inputs), report))
        return records


def action_record(action: Action, inputs: dict[str, str]) -> dict[str, Any]:
    """An action's record for the provenance; archives it read as input files are listed as inputs."""
    description = action.description()
    description["files"] = [f for f in description["files"] if f["path"] not in inputs]
    return {"key": action.key(), "description": description, "dep_artifacts": inputs}


def in_process_record(ctx: DistContext, name: str, inputs: dict[str, str]) -> dict[str, Any]:
    """A step this process ran itself (no external program): recorded with the digest of its code."""
    description = {
        "name": name,
        "rule": "in-process",
        "target": ctx.toolchain.triple,
        "sandbox": {"kind": "in-process", "network": False},
        "source": None,
        "patches": [],
        "files": [{"path": path, "sha256": digest} for path, digest in rule_code()],
        "toolchain": {},
        "host_tools": {},
    }
    key = hashlib.sha256(json.dumps(description, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return {"key": key, "description": description, "dep_artifacts": inputs}


def builder_version(ctx: DistContext) -> dict[str, str]:
    """What built it: this repository's commit, SCons, and the sandbox that ran the steps."""
    import SCons

    sandbox = bubblewrap_version() if ctx.toolchain.sandbox == "bubblewrap" else ctx.toolchain.sandbox
    return {"fips-python-standalone": _repository_commit(), "scons": SCons.__version__, "sandbox": sandbox}


def _repository_commit() -> str:
    """HEAD of this checkout, marked when it has uncommitted changes; a phrase when git cannot tell."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain"], capture_output=True, text=True)
    except OSError:
        return "unknown (git is not installed)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def member_sha256(archive: Path, name: str) -> str:
    """sha256 of the regular member `name` of `archive`; DistributionError if it has none."""
    with open_tar(archive) as tar:
        for member in tar:
            if member.name == name and member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                digest = hashlib.sha256()
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                return digest.hexdigest()
    raise DistributionError(f"{archive.name}: has no {name}")


def built_components(ctx: DistContext, artifacts: list[Path]) -> dict[str, sbom.BuiltComponent]:
    """What each artifact's action built, by source name: the pinned source, the patches and the libraries
    it was built against, as its action record (``.hermetic/*.action.json``) says."""
    pins = {pin.sha256: pin for pin in ctx.license_pins}
    built = {}
    for artifact in artifacts:
        for record in provenance.action_records(artifact):
            description = record["description"]
            source = description.get("source")
            if not source:
                continue
            if source["sha256"] not in pins:
                raise DistributionError(f"{artifact.name}: built from {source['name']} {source['version']}, not a pin")
            pin = pins[source["sha256"]]
            built[pin.name] = sbom.BuiltComponent(
                pin=pin,
                patches=tuple((p["path"], p["sha256"]) for p in description["patches"]),
                deps=tuple(description["deps"]),
            )
    return built


def build_time_pins(ctx: DistContext) -> list[tuple[Pin, str]]:
    """(package, role) of every compiler, sysroot and tool (BOLT) package the build used, each once: the
    target's toolchain and, for a cross build, the build Python's. A generated sysroot's role is the wheel it
    was generated from (its link stubs and headers); an emulator's guest libraries ran the target's programs. A
    tool pin repeats the compiler's shared libraries, and a cross compiler is the build host's own, so a package
    keeps its first role."""
    found: dict[str, tuple[Pin, str]] = {}
    for toolchain in (ctx.toolchain, ctx.build_python_toolchain):
        if toolchain is None:
            continue
        compiler, sysroot, guest = toolchain.compiler, toolchain.sysroot, toolchain.guest
        generator = toolchain.available_tools.get(SYSROOT_GENERATOR) if sysroot is None else None
        for role, pins in (
            ("compiler", compiler.packages.packages if compiler else ()),
            ("sysroot", sysroot.packages if sysroot else generator.packages.packages if generator else ()),
            ("tool", [pin for tool in toolchain.tools for pin in tool.packages.packages]),
            ("emulator", guest.packages if guest and toolchain.emulator else ()),
        ):
            for pin in pins:
                found.setdefault(pin.sha256, (pin, role))
    return list(found.values())


def sbom_inputs(ctx: DistContext, names: DistNames, archives: list[Path], artifacts: list[Path]) -> sbom.SbomInputs:
    """What the SBOM of this build lists: the archives, what the artifacts were built from, the toolchain."""
    built = built_components(ctx, artifacts)
    cpython, openssl = built.pop(ctx.request.python.name), built.pop("openssl")
    provider = built.pop(ctx.fips_provider.pin.name) if ctx.fips_provider.pin else openssl
    install_only = next(a for a in archives if "-install_only-" in a.name)
    toolchain = build_time_pins(ctx)
    return sbom.SbomInputs(
        distribution=names.directory,
        tag=names.tag,
        archives=tuple((a.name, sha256_file(a)) for a in archives),
        cpython=cpython,
        openssl=openssl,
        fips_provider=provider,
        libraries=tuple(built[name] for name in sorted(built)),
        fips_module=(ctx.fips_module, member_sha256(install_only, f"python/{ctx.fips_module}")),
        toolchain=tuple(toolchain),
        source_date_epoch=ctx.lock.source_date_epoch,
    )
