"""The distribution half of the graph: full archive, install_only, install_only_stripped, SHA256SUMS.

Each archive is checked before it appears: the full archive's PYTHON.json must validate, and each
install_only archive is unpacked in a fresh directory of a sandbox and must pass the runtime tests
(``in_sandbox/runtime_tests.py``), or it is not produced.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermetic import log, scons_glue
from hermetic.action import DEPS, FILES, OUT, Action, ActionRunner, InputFile, Step
from hermetic.archive import extract_tar
from hermetic.fetch import Fetcher, sha256_file
from hermetic.lock import SourcesLock
from hermetic.pins import Pin
from hermetic.toolchain import Toolchain
from pydist import distribution, provenance
from pydist.distribution import DistNames, DistributionError
from pydist.libraries import bash, sh
from pydist.matrix import BuildRequest
from pydist.validate import validate

HERE = Path(__file__).resolve().parent
RUNTIME_TESTS = InputFile(
    path=HERE / "in_sandbox" / "runtime_tests.py", label="site_scons/pydist/in_sandbox/runtime_tests.py"
)

# Bump when what these rules write changes in a way their code digest would not show.
DIST_RULE_VERSION = 1


def code_digest(*paths: Path) -> str:
    """sha256 over the source of in-process rules: editing them rebuilds what they made."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class DistContext:
    """What the distribution rules share."""

    request: BuildRequest
    lock: SourcesLock
    toolchain: Toolchain
    runner: ActionRunner
    fetcher: Fetcher
    work_root: Path
    tests_root: Path
    license_pins: tuple[Pin, ...]
    object_format: str

    def identity(self, rule: str) -> dict[str, Any]:
        """The settings every distribution rule's signature includes."""
        return {
            "rule": rule,
            "rule_version": DIST_RULE_VERSION,
            "request": {
                "target": self.request.target,
                "python": self.request.python.identity(),
                "options": self.request.options,
            },
            "code": code_digest(
                HERE / "distribution.py",
                HERE / "dist_graph.py",
                RUNTIME_TESTS.path,
                distribution.PYTHON_JSON_SCHEMA,
                *sorted((HERE / "validate").glob("*.py")),
            ),
            "toolchain": self.toolchain.identity_digest(),
            "licenses": [pin.identity() for pin in self.license_pins],
            "source_date_epoch": self.lock.source_date_epoch,
        }


def _staged(final: Path) -> Path:
    """Where an archive is written before its checks pass (same name, in a .staging directory)."""
    staging = final.parent / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    return staging / final.name


def _publish(staged: Path, final: Path) -> None:
    """Move a checked archive into place (atomically: same file system)."""
    staged.replace(final)
    if not any(staged.parent.iterdir()):
        staged.parent.rmdir()


def validated(archives: list[Path], label: str) -> None:
    """Run the validator on `archives` (the last one is the new one); fail with every violation shown."""
    with log.step(f"validate {label}"):
        report = validate(archives)
    if report.ok:
        log.say(f"  {report.summary()}")
        return
    for violation in sorted(report.violations)[:100]:
        log.say(f"  {violation}")
    raise DistributionError(
        f"{label}: {len(report.violations)} violation(s), e.g. {sorted(report.violations)[0]}",
        hint=f"it is kept in {archives[-1].parent} for inspection: python -m pydist validate <archive>",
    )


def runtime_tests(ctx: DistContext, archive: Path, openssl_artifact: Path) -> None:
    """Unpack `archive` in a fresh sandbox and run the runtime tests on it; raise ActionError if any fails."""
    ctx.runner.run(runtime_test_action(ctx, archive), report_path(ctx, archive), [openssl_artifact])


def report_path(ctx: DistContext, archive: Path) -> Path:
    """Where the runtime tests of `archive` leave their report."""
    return ctx.tests_root / f"{archive.name}.report.tar.zst"


def runtime_test_action(ctx: DistContext, archive: Path) -> Action:
    """The sandboxed action that unpacks an install_only archive and runs the runtime tests on it.

    CPython's test package and test extension modules, which install_only archives leave out, come from
    the full archive beside it (an archive under test sits in its dist directory, or in .staging below
    it, and the full archive is named after that directory), so test_hashlib, test_hmac and test_ssl run
    against the archive under test, in and outside FIPS mode, with the reviewed FIPS skip list."""
    sqlite = ctx.lock.get("sqlite")
    openssl = ctx.lock.get("openssl")
    dist_dir = archive.parent.parent if archive.parent.name == ".staging" else archive.parent
    full = dist_dir / f"{dist_dir.name}.tar.zst"
    skips = HERE / "in_sandbox" / f"fips_skips_{ctx.request.python_minor}.txt"
    tests = "/build/tmp/cpython-tests"
    stdlib = "/build/tmp/full/python/install/lib/python3*"
    test_modules = ("_test*", "_ctypes_test*", "_xxtestfuzz*")
    return _archive_action(
        ctx,
        "runtime-tests",
        archive,
        deps=("openssl",),
        steps=(
            sh("unpack", f"mkdir -p /build/tmp/dist && tar -xzf {FILES}/{archive.name} -C /build/tmp/dist"),
            sh(
                "unpack CPython's tests",
                f"mkdir -p /build/tmp/full {tests} && tar --zstd -xf {FILES}/{full.name} -C /build/tmp/full "
                "--wildcards 'python/install/lib/python3*/test/*' "
                + " ".join(f"'python/install/lib/python3*/lib-dynload/{m}'" for m in test_modules)
                + f" && mv {stdlib}/test {tests}/ && mv {stdlib}/lib-dynload/* {tests}/",
            ),
            sh(
                "runtime tests",
                f"/build/tmp/dist/python/bin/python3 -E -s {FILES}/{RUNTIME_TESTS.path.name} "
                "/build/tmp/dist/python "
                f"--openssl {openssl.version} --sqlite {sqlite.version} --openssl-cli {DEPS}/bin/openssl "
                f"--cpython-tests {tests} --fips-skips {FILES}/{skips.name} "
                f"--report {OUT}/report.json",
            ),
        ),
        helpers=(
            RUNTIME_TESTS,
            InputFile(path=skips, label=f"site_scons/pydist/in_sandbox/{skips.name}"),
            InputFile(path=full, label=full.name),
        ),
        output=OUT,
    )


def _archive_action(
    ctx: DistContext,
    rule: str,
    archive: Path,
    *,
    deps: tuple[str, ...],
    steps: tuple[Step, ...],
    helpers: tuple[InputFile, ...] = (),
    **output: Any,
) -> Action:
    """A sandboxed step on one archive of this distribution, named after its rule and the archive."""
    return Action(
        name=f"{rule}-{archive.name.removesuffix('.tar.gz')}",
        rule=rule,
        rule_version=1,
        target=ctx.toolchain.triple,
        source=None,
        patches=(),
        deps=deps,
        toolchain=ctx.toolchain,
        env={},
        steps=steps,
        source_date_epoch=ctx.lock.source_date_epoch,
        files=(InputFile(path=archive, label=archive.name), *helpers),
        record=False,
        **output,
    )


def _record(action: Action, inputs: dict[str, str]) -> dict[str, Any]:
    """An action's record for the provenance; archives it read as input files are listed as inputs."""
    description = action.description()
    description["files"] = [f for f in description["files"] if f["path"] not in inputs]
    return {"key": action.key(), "description": description, "dep_artifacts": inputs}


def _in_process_record(ctx: DistContext, name: str, inputs: dict[str, str]) -> dict[str, Any]:
    """A step this process ran itself (no external program): recorded with the digest of its code."""
    description = {
        "name": name,
        "rule": "in-process",
        "target": ctx.toolchain.triple,
        "sandbox": {"kind": "in-process", "network": False},
        "source": None,
        "patches": [],
        "files": [{"path": f"site_scons/pydist/{n}", "sha256": code_digest(HERE / n)} for n in ("distribution.py",)],
        "toolchain": {},
        "host_tools": {},
    }
    key = hashlib.sha256(json.dumps(description, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return {"key": key, "description": description, "dep_artifacts": inputs}


def builder_version() -> dict[str, str]:
    """What built it: this repository's commit, SCons, bubblewrap."""
    import SCons

    result = subprocess.run(["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain"], capture_output=True, text=True)
    commit = result.stdout.strip() if result.returncode == 0 else "unknown (not a git checkout)"
    if result.returncode == 0 and dirty.stdout.strip():
        commit += " (with uncommitted changes)"
    bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    return {"fips-python-standalone": commit, "scons": SCons.__version__, "bubblewrap": bwrap}


def declare_distribution(
    env: Any,
    ctx: DistContext,
    names: DistNames,
    dist_dir: Path,
    cpython_node: Any,
    openssl_node: Any,
    library_nodes: list[Any],
) -> list[Any]:
    """Declare the archives, SHA256SUMS and provenance of one build; returns their nodes."""
    out_dir = dist_dir / names.directory
    openssl_path = Path(str(openssl_node))

    def full(targets: list[Path], sources: list[Path]) -> None:
        [archive] = targets
        cpython_artifact, openssl_artifact = sources
        work = ctx.work_root / f"dist-{names.directory}"
        shutil.rmtree(work, ignore_errors=True)
        with log.step(f"unpack {cpython_artifact.name}"):
            extract_tar(cpython_artifact, work / "cpython")
        extract_tar(openssl_artifact, work / "openssl")
        licenses = [(pin, ctx.fetcher.fetch(pin)) for pin in ctx.license_pins]
        staged = _staged(archive)
        with log.step(f"assemble {archive.name}"):
            distribution.assemble_full(
                out=staged,
                work=work / "tree",
                cpython_tree=work / "cpython",
                openssl_tree=work / "openssl",
                licenses=licenses,
                request=ctx.request,
                object_format=ctx.object_format,
                source_date_epoch=ctx.lock.source_date_epoch,
            )
        validated([staged], archive.name)
        _publish(staged, archive)
        shutil.rmtree(work)

    def install_only(targets: list[Path], sources: list[Path]) -> None:
        archive, _report = targets
        staged = _staged(archive)
        full_archive = sources[0]
        with log.step(f"convert {archive.name}"):
            distribution.convert_install_only(full_archive, staged, ctx.lock.source_date_epoch)
        validated([full_archive, staged], archive.name)
        runtime_tests(ctx, staged, openssl_path.resolve())
        _publish(staged, archive)

    def stripped(targets: list[Path], sources: list[Path]) -> None:
        archive, _report = targets
        staged = _staged(archive)
        install_only_archive, _openssl, full_archive = sources
        ctx.runner.run(strip_action(ctx, install_only_archive), staged, [])
        validated([full_archive, install_only_archive, staged], archive.name)
        runtime_tests(ctx, staged, openssl_path.resolve())
        _publish(staged, archive)

    def sums(targets: list[Path], sources: list[Path]) -> None:
        distribution.write_sha256sums(targets[0], sources)

    def declare(
        name: str, sources: list[Any], work: Callable[[list[Path], list[Path]], None], tested: bool = False
    ) -> Any:
        # A runtime-tested archive has its test report as a second target, cached and restored with it.
        targets = [out_dir / name, *([report_path(ctx, out_dir / name)] if tested else [])]
        nodes = scons_glue.declare_function(env, [str(t) for t in targets], sources, ctx.identity(name), work)
        return nodes[0]

    # The license tarballs are pinned by sha256, and the pins are part of ctx.identity().
    full_node = declare(names.full, [cpython_node, openssl_node], full)
    install_only_node = declare(names.install_only, [full_node, openssl_node], install_only, tested=True)
    stripped_node = declare(
        names.install_only_stripped, [install_only_node, openssl_node, full_node], stripped, tested=True
    )
    sums_node = declare("SHA256SUMS", [full_node, install_only_node, stripped_node], sums)

    def provenance_statement(targets: list[Path], sources: list[Path]) -> None:
        full_archive, install_only_archive, stripped_archive, _sums, cpython_artifact, *artifacts = sources
        openssl_artifact = openssl_path.resolve()
        digest = {p: sha256_file(p) for p in (full_archive, install_only_archive, stripped_archive)}
        extra = [
            (
                _in_process_record(
                    ctx,
                    "assemble-full-archive",
                    {
                        cpython_artifact.name: sha256_file(cpython_artifact),
                        openssl_artifact.name: sha256_file(openssl_artifact),
                        **{pin.filename: pin.sha256 for pin in ctx.license_pins},
                    },
                ),
                digest[full_archive],
            ),
            (
                _in_process_record(ctx, "convert-install-only", {full_archive.name: digest[full_archive]}),
                digest[install_only_archive],
            ),
            (
                _record(
                    strip_action(ctx, install_only_archive),
                    {install_only_archive.name: digest[install_only_archive]},
                ),
                digest[stripped_archive],
            ),
        ]
        for tested in (install_only_archive, stripped_archive):
            inputs = {tested.name: digest[tested], openssl_artifact.name: sha256_file(openssl_artifact)}
            extra.append((_record(runtime_test_action(ctx, tested), inputs), sha256_file(report_path(ctx, tested))))
        compiler, sysroot = ctx.toolchain.compiler, ctx.toolchain.sysroot
        pins = [(pin, "source") for pin in ctx.license_pins]
        pins += [(pin, "compiler") for pin in (compiler.packages.packages if compiler else ())]
        pins += [(pin, "sysroot") for pin in (sysroot.packages if sysroot else ())]
        document = provenance.build_statement(
            archives=[full_archive, install_only_archive, stripped_archive],
            artifacts=[cpython_artifact, *artifacts],
            extra_actions=extra,
            pins=pins,
            external={
                "target": ctx.request.target,
                "python": ctx.request.python_version,
                "options": ctx.request.options,
                "tag": names.tag,
            },
            internal={
                "source_date_epoch": ctx.lock.source_date_epoch,
                "sources_lock_sha256": sha256_file(ctx.lock.path),
                "toolchain": ctx.toolchain.identity_digest(),
            },
            builder_version=builder_version(),
        )
        staged = targets[0].with_name(f".{targets[0].name}.part")
        staged.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        staged.replace(targets[0])

    version = builder_version()
    [provenance_node] = scons_glue.declare_function(
        env,
        [str(out_dir / provenance.PROVENANCE_NAME)],
        [full_node, install_only_node, stripped_node, sums_node, cpython_node, *library_nodes],
        {**ctx.identity("provenance"), "builder": version},
        provenance_statement,
    )
    return [full_node, install_only_node, stripped_node, sums_node, provenance_node]


def strip_action(ctx: DistContext, install_only: Path) -> Action:
    """Strip debug info from every ELF file of an install_only archive except the FIPS module, whose
    bytes are what fipsmodule.cnf's module-mac covers; then prove fips.so is unchanged."""
    script = (
        "cp -a /build/tmp/in/python /build/out/python\n"
        "find /build/out/python -type f ! -path '*/share/ssl/ossl-modules/fips.so' -print0 |\n"
        "  while IFS= read -r -d '' f; do\n"
        "    if [ \"$(head -c 4 \"$f\" | od -An -c | tr -d ' ')\" = '177ELF' ]; then\n"
        '      llvm-strip --strip-debug "$f"; fi; done\n'
        "module=share/ssl/ossl-modules/fips.so\n"
        "cmp /build/tmp/in/python/$module /build/out/python/$module\n"
    )
    return _archive_action(
        ctx,
        "strip",
        install_only,
        deps=(),
        steps=(
            sh("unpack", f"mkdir -p /build/tmp/in && tar -xzf {FILES}/{install_only.name} -C /build/tmp/in"),
            bash("strip", script),
        ),
        output=f"{OUT}/python",
        output_prefix="python",
        output_compression="gz",
    )
