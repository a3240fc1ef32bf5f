"""Evidence, on a Linux host, that the macOS rules hold: the libraries and OpenSSL with ``fips.dylib``,
cross-compiled for ``arm64-apple-macos11`` by the same recipes a Mac runs, in the real sandbox.

A Linux host cannot build the macOS target (``scons target=aarch64-apple-darwin`` is refused there), but with
the pinned clang 19 and ``ld64.lld`` and the macOS libc headers and ``libSystem.tbd`` of the pinned ziglang
wheel (``[evidence]`` in ``toolchains/aarch64-apple-darwin.toml``) it can build everything that needs no
framework and runs no target program during its build. These artifacts are evidence, never a release: they
are cached under ``<cache>/macos-evidence/`` by action key and checked by the Mach-O validator
(``tests/integration/test_macos_cross.py``; ``python -m pydist.macos_evidence`` builds them and prints the
checks).

Left out (``NOT_CROSS_BUILT``): ncurses, libedit and SQLite, whose builds run programs they compile with the
target's compiler (a Mac runs them; Linux cannot), util-linux (Linux only), and CPython (its configure refuses
to cross-compile for a Darwin host, and ``_scproxy`` needs frameworks the wheel does not have).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hermetic import log, scratch
from hermetic.action import ActionRunner
from hermetic.archive_extract import extract_tar
from hermetic.content_store import ContentStore, sha256_file
from hermetic.debian import archives_from_apt
from hermetic.errors import HermeticError, ToolchainError
from hermetic.fetch import Fetcher
from hermetic.lock import load_lock
from hermetic.pins import load_toml
from hermetic.sandbox import Bubblewrap, Mount
from hermetic.toolchain import (
    COMPILER_MOUNT,
    SYSROOT_MOUNT,
    Materialized,
    Toolchain,
    host_platform,
    load_compiler,
    load_sdk,
    load_toolchain,
    materialize_toolchain,
)
from pydist import catalog, graph
from pydist.compile_env import CompileEnv
from pydist.paths import LOCK_FILE, PINS_SCHEMA, TOOLCHAINS_DIR
from pydist.platforms.macos import MacOSPlatform

TRIPLE = "aarch64-apple-darwin"
# The libraries a Linux host can cross-compile for macOS, and why the others are not (each row says: most need to
# run a program built for the build host, while a Mac has one compiler for both, so their recipes are fine there).
LIBRARIES = tuple(name for name, library in catalog.libraries().items() if library.macos_cross is None)
NOT_CROSS_BUILT = {name: lib.macos_cross for name, lib in catalog.libraries().items() if lib.macos_cross is not None}


def evidence_toolchain(build_host: str | None = None) -> Toolchain:
    """The macOS target's toolchain as the pin's ``[evidence]`` table gives it for `build_host`: the pinned
    clang (with a launcher aimed at the target and LLVM's Mach-O tools under Xcode's names) and the macOS libc
    SDK as the sysroot, run in bubblewrap like every Linux action."""
    host = build_host or host_platform()
    path = TOOLCHAINS_DIR / f"{TRIPLE}.toml"
    evidence = load_toml(path, PINS_SCHEMA, "toolchain").get("evidence", {})
    if host not in evidence:
        raise ToolchainError(
            f"{path.name} names no evidence toolchain for {host}",
            hint=f"cross-compile the macOS evidence on one of: {', '.join(evidence) or 'none'}",
        )
    table = evidence[host]
    target = load_toolchain(TOOLCHAINS_DIR, TRIPLE, PINS_SCHEMA, build_host=host)
    compiler = load_compiler(TOOLCHAINS_DIR / table["compiler"], PINS_SCHEMA)
    packages = dataclasses.replace(
        compiler.packages,
        target_triples=(*compiler.packages.target_triples, str(target.target["clang_triple"])),
        tools=tuple(sorted({**dict(compiler.packages.tools), **table.get("tools", {})}.items())),
    )
    return dataclasses.replace(
        target,
        compiler=dataclasses.replace(compiler, packages=packages),
        sysroot=load_sdk(TOOLCHAINS_DIR / table["sdk"], PINS_SCHEMA),
        xcode=None,
        sandbox="bubblewrap",
    )


def evidence_platform(build_host: str | None = None) -> MacOSPlatform:
    """The macOS platform with the evidence toolchain."""
    toolchain = evidence_toolchain(build_host)
    return MacOSPlatform(toolchain=toolchain, build_host=toolchain.build_host)


def make_fetcher(cache_root: Path) -> Fetcher:
    """A fetcher for the evidence's pins: Debian packages through apt's archive, wheels through pip's index."""
    return Fetcher(ContentStore(cache_root / "downloads"), resolve=graph.resolver(archives_from_apt()))


@dataclass(frozen=True)
class EvidenceBuild:
    """Where the evidence is built, and how.

    Attributes:
        cache_root: (Path) the shared cache: downloads, toolchains, and ``macos-evidence/`` artifacts.
        work_root: (Path) work trees and logs of the actions.
        jobs: (int) make's parallelism.
    """

    cache_root: Path
    work_root: Path
    jobs: int = 2

    @property
    def artifacts(self) -> Path:
        """Cached artifacts, one per action key: ``<name>-<key>.tar.zst`` with a ``.sha256`` beside it."""
        return self.cache_root / "macos-evidence"

    def runner(self) -> ActionRunner:
        """The action runner (the real sandbox)."""
        return ActionRunner(
            fetcher=make_fetcher(self.cache_root),
            toolchain_root=self.cache_root / "toolchains",
            work_root=self.work_root / "work",
            log_root=self.work_root / "logs",
            jobs=self.jobs,
        )

    def build(self, names: Sequence[str] = LIBRARIES, platform: MacOSPlatform | None = None) -> dict[str, Path]:
        """Cross-compile `names` (and what they need) or reuse their cached artifacts; name -> artifact."""
        platform = platform or evidence_platform()
        lock = load_lock(LOCK_FILE, PINS_SCHEMA)
        ce = CompileEnv(platform=platform)
        runner = self.runner()
        recipes = {r.name: r for r in graph.library_recipes(platform)}
        built: dict[str, Path] = {}
        for name in _with_dependencies(names, recipes):
            recipe = recipes[name]
            action = graph.library_action(recipe, lock.get(name), ce, lock)
            artifact = self.artifacts / f"{action.name}-{action.key()[:20]}.tar.zst"
            if not _cached(artifact):
                self.artifacts.mkdir(parents=True, exist_ok=True)
                runner.run(action, artifact, [built[d] for d in recipe.deps])
                _record_digest(artifact)
            built[name] = artifact
        return built

    def materialized(self, platform: MacOSPlatform | None = None) -> Materialized:
        """The evidence toolchain's compiler and SDK directories (unpacked once, shared by checkouts)."""
        platform = platform or evidence_platform()
        return materialize_toolchain(platform.toolchain, make_fetcher(self.cache_root), self.cache_root / "toolchains")


def _with_dependencies(names: Sequence[str], recipes: Mapping[str, object]) -> list[str]:
    """`names` with their dependencies first, in a stable order."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name not in LIBRARIES or name not in recipes:
            why = NOT_CROSS_BUILT.get(name, "no such library")
            raise ToolchainError(f"{name} is not cross-built for macOS here: {why}", hint=f"choose from {LIBRARIES}")
        for dep in getattr(recipes[name], "deps", ()):
            visit(dep)
        if name not in order:
            order.append(name)

    for name in names:
        visit(name)
    return order


def _cached(artifact: Path) -> bool:
    """Whether `artifact` was built before and is intact (its digest recorded when it was made)."""
    digest = artifact.with_name(artifact.name + ".sha256")
    if not artifact.is_file() or not digest.is_file():
        return False
    if sha256_file(artifact) == digest.read_text().strip():
        return True
    log.warn(f"{artifact} is damaged; building it again")
    return False


def _record_digest(artifact: Path) -> None:
    scratch.write_text(artifact.with_name(artifact.name + ".sha256"), sha256_file(artifact) + "\n")


def unpack(artifacts: dict[str, Path], dest: Path) -> Path:
    """Unpack every artifact into `dest` (as the install root ``/build/deps`` they were configured for)."""
    for artifact in artifacts.values():
        extract_tar(artifact, dest)
    return dest


def run_in_sandbox(
    materialized: Materialized, work: Path, script: str, *, mounts: Sequence[Mount] = (), jobs: int = 2
) -> str:
    """Run `script` (sh) with the evidence toolchain in bubblewrap, `work` as the writable ``/build/out`` (and
    `mounts`); return its output, or raise ToolchainError with its last line."""
    scratch = work.parent / f".{work.name}.sandbox"
    scratch.mkdir(parents=True, exist_ok=True)
    log_file = scratch / "log"
    log_file.write_text("")
    mounts = [
        Mount(work, "/build/out", writable=True),
        Mount(materialized.compiler, COMPILER_MOUNT),
        Mount(materialized.sysroot, SYSROOT_MOUNT),
        *mounts,
    ]
    env = {
        "PATH": f"{COMPILER_MOUNT}/bin:/usr/bin:/bin",
        "LC_ALL": "C",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "SOURCE_DATE_EPOCH": "0",
        "MAKEFLAGS": f"-j{jobs}",
    }
    argv = ["/bin/sh", "-ec", script]
    rc = Bubblewrap(scratch).run(argv, mounts=mounts, env=env, cwd="/build/out", log_file=log_file)
    output = log_file.read_text()
    if rc != 0:
        last = (output.strip().splitlines() or ["no output"])[-1]
        raise ToolchainError(f"sandboxed step failed (exit {rc}): {last}", hint=f"full output: {log_file}")
    return output


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pydist.macos_evidence``: build (or reuse) the cross-compiled artifacts and list them."""
    from pydist.settings import default_cache_root

    parser = argparse.ArgumentParser(prog="python -m pydist.macos_evidence", description=__doc__.split("\n\n")[0])
    parser.add_argument("libraries", nargs="*", default=list(LIBRARIES), help="default: all that cross-build")
    parser.add_argument("--cache-root", type=Path, default=default_cache_root())
    parser.add_argument("--work", type=Path, default=Path("build") / "macos-evidence")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        built = EvidenceBuild(args.cache_root, args.work.resolve(), args.jobs).build(args.libraries)
    except HermeticError as e:
        log.say(f"error: {e.one_line()}")
        return e.exit_code
    for name, artifact in built.items():
        log.say(f"{name}: {artifact} ({artifact.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
