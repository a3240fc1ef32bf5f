"""The distribution half of the graph: full archive, install_only, install_only_stripped, SHA256SUMS, the SBOM
and the provenance.

Each archive is checked before it appears: the full archive's PYTHON.json must validate, and each
install_only archive is unpacked in a fresh directory of a sandbox and must pass the runtime tests
(``in_sandbox/runtime_tests.py``), or it is not produced.

These steps run in this process, so their key cannot come from an action description alone: it digests the
code that runs them, derived from the import statements of this module and, transitively, of every module
of ``site_scons/`` they reach (see :func:`rule_code_files`), plus the data files they read. Editing any of
those files rebuilds what the steps made; editing anything else (a test, the README) does not.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cyclonedx

from hermetic import log, scons_glue
from hermetic.action import DEPS, FILES, OUT, Action, ActionRunner, InputFile, Step
from hermetic.archive import extract_tar, open_tar
from hermetic.fetch import Fetcher, sha256_file
from hermetic.lock import SourcesLock
from hermetic.pins import Pin
from hermetic.sandbox import bubblewrap_version
from hermetic.toolchain import Toolchain
from pydist import distribution, provenance, sbom
from pydist.distribution import DistNames, DistributionError
from pydist.libraries import bash, sh
from pydist.matrix import BuildRequest
from pydist.validate import validate

HERE = Path(__file__).resolve().parent
SITE_SCONS = HERE.parent
REPO_ROOT = SITE_SCONS.parent
RUNTIME_TESTS = InputFile(
    path=HERE / "in_sandbox" / "runtime_tests.py", label="site_scons/pydist/in_sandbox/runtime_tests.py"
)

# Bump when what these rules write changes in a way their code digest would not show.
DIST_RULE_VERSION = 1

# The module whose import closure is the code of the in-process steps (they are all defined here).
RULE_MODULES = ("pydist.dist_graph",)
# Files the in-process steps read that are not Python modules.
RULE_DATA_FILES = (distribution.PYTHON_JSON_SCHEMA, *sorted((HERE / "in_sandbox").glob("*.*")))


def _module_file(name: str, source_root: Path) -> Path | None:
    """The file of module `name` under `source_root` (a package's ``__init__.py``), or None if not there."""
    base = source_root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(name: str, path: Path) -> Iterator[str]:
    """Every module name an import statement in `path` may load (anywhere: function bodies too), with the
    packages above it, and ``from X import y`` also as ``X.y`` in case y is a submodule."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*anchor, *([node.module] if node.module else [])])
            found = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for full in found:
            parts = full.split(".")
            yield from (".".join(parts[:i]) for i in range(1, len(parts) + 1))


def module_closure(roots: Iterable[str], source_root: Path) -> list[Path]:
    """The source files of `roots` and of every module they import, transitively, found under `source_root`
    (third-party and standard-library modules are not followed: their versions are pinned elsewhere)."""
    files: dict[str, Path] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in files or not name:
            continue
        path = _module_file(name, source_root)
        if path is None:
            continue
        files[name] = path
        pending.extend(_imported_names(name, path))
    return sorted(set(files.values()))


def rule_code_files(source_root: Path = SITE_SCONS, data_files: Iterable[Path] = RULE_DATA_FILES) -> list[Path]:
    """Every file whose content shapes what the in-process steps write: their modules' import closure
    within ``site_scons/`` and the data files they read."""
    return sorted({*module_closure(RULE_MODULES, source_root), *data_files})


def _digest_of(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 over (repository path, sha256) pairs: an edit, a rename, an added or removed file all change it."""
    digest = hashlib.sha256()
    for label, file_digest in sorted(entries):
        digest.update(f"{label}\0{file_digest}\n".encode())
    return digest.hexdigest()


@cache
def _rule_code() -> tuple[tuple[str, str], ...]:
    """(repository path, sha256) of every file of :func:`rule_code_files`, computed once per build."""
    return tuple((p.relative_to(REPO_ROOT).as_posix(), sha256_file(p)) for p in rule_code_files())


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
                "options": str(self.request.options),
            },
            "code": _digest_of(_rule_code()),
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
        "files": [{"path": path, "sha256": digest} for path, digest in _rule_code()],
        "toolchain": {},
        "host_tools": {},
    }
    key = hashlib.sha256(json.dumps(description, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return {"key": key, "description": description, "dep_artifacts": inputs}


def builder_version() -> dict[str, str]:
    """What built it: this repository's commit, SCons, bubblewrap."""
    import SCons

    return {
        "fips-python-standalone": _repository_commit(),
        "scons": SCons.__version__,
        "bubblewrap": bubblewrap_version(),
    }


def _repository_commit() -> str:
    """HEAD of this checkout, marked when it has uncommitted changes; a phrase when git cannot tell."""
    try:
        head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain"], capture_output=True, text=True)
    except OSError:
        return "unknown (git is not installed)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


# Where the FIPS module is in an install_only archive (the SBOM hashes the shipped bytes).
FIPS_MODULE = "share/ssl/ossl-modules/fips.so"


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


def sbom_inputs(ctx: DistContext, names: DistNames, archives: list[Path], artifacts: list[Path]) -> sbom.SbomInputs:
    """What the SBOM of this build lists: the archives, what the artifacts were built from, the toolchain."""
    built = built_components(ctx, artifacts)
    cpython, openssl = built.pop(ctx.request.python.name), built.pop("openssl")
    install_only = next(a for a in archives if "-install_only-" in a.name)
    compiler, sysroot = ctx.toolchain.compiler, ctx.toolchain.sysroot
    toolchain = [(pin, "compiler") for pin in (compiler.packages.packages if compiler else ())]
    toolchain += [(pin, "sysroot") for pin in (sysroot.packages if sysroot else ())]
    return sbom.SbomInputs(
        distribution=names.directory,
        tag=names.tag,
        archives=tuple((a.name, sha256_file(a)) for a in archives),
        cpython=cpython,
        openssl=openssl,
        libraries=tuple(built[name] for name in sorted(built)),
        fips_module=(FIPS_MODULE, member_sha256(install_only, f"python/{FIPS_MODULE}")),
        toolchain=tuple(toolchain),
        source_date_epoch=ctx.lock.source_date_epoch,
    )


def declare_distribution(
    env: Any,
    ctx: DistContext,
    names: DistNames,
    dist_dir: Path,
    cpython_node: Any,
    openssl_node: Any,
    library_nodes: list[Any],
) -> list[Any]:
    """Declare the archives, SHA256SUMS, the SBOM and the provenance of one build; returns their nodes."""
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

    def write_sbom(targets: list[Path], sources: list[Path]) -> None:
        archives, artifacts = sources[:3], sources[3:]
        with log.step(f"write {sbom.SBOM_NAME}"):
            sbom.write_sbom(targets[0], sbom_inputs(ctx, names, archives, artifacts))

    # Its own key: the SBOM's bytes also depend on the CycloneDX library that writes them.
    [sbom_node] = scons_glue.declare_function(
        env,
        [str(out_dir / sbom.SBOM_NAME)],
        [full_node, install_only_node, stripped_node, cpython_node, *library_nodes],
        {**ctx.identity(sbom.SBOM_NAME), "cyclonedx-python-lib": cyclonedx.__version__},
        write_sbom,
    )

    def provenance_statement(targets: list[Path], sources: list[Path]) -> None:
        full_archive, install_only_archive, stripped_archive, _sums, sbom_file, cpython_artifact, *artifacts = sources
        openssl_artifact = openssl_path.resolve()
        digest = {p: sha256_file(p) for p in (full_archive, install_only_archive, stripped_archive)}
        sbom_read = {p.name: d for p, d in digest.items()}
        sbom_read |= {a.name: sha256_file(a) for a in (cpython_artifact, *artifacts)}
        extra = [
            (_in_process_record(ctx, "write-sbom", sbom_read), sha256_file(sbom_file)),
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
            # The full archive is an input too: the runtime tests take CPython's test suite from it.
            inputs = {
                tested.name: digest[tested],
                full_archive.name: digest[full_archive],
                openssl_artifact.name: sha256_file(openssl_artifact),
            }
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
                "options": str(ctx.request.options),
                "tag": names.tag,
            },
            internal={
                "source_date_epoch": ctx.lock.source_date_epoch,
                "sources_lock_sha256": sha256_file(ctx.lock.path),
                "toolchain": ctx.toolchain.identity_digest(),
            },
            builder_version=builder_version(),
            sbom=sbom_file,
        )
        staged = targets[0].with_name(f".{targets[0].name}.part")
        staged.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        staged.replace(targets[0])

    version = builder_version()
    [provenance_node] = scons_glue.declare_function(
        env,
        [str(out_dir / provenance.PROVENANCE_NAME)],
        [full_node, install_only_node, stripped_node, sums_node, sbom_node, cpython_node, *library_nodes],
        {**ctx.identity("provenance"), "builder": version},
        provenance_statement,
    )
    return [full_node, install_only_node, stripped_node, sums_node, sbom_node, provenance_node]


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
