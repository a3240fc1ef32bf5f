"""The build graph of one (target, Python, options): which actions exist and what each depends on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermetic import log, scons_glue
from hermetic.action import Action, ActionRunner, Patch
from hermetic.debian import DebianArchives, archives_from_apt
from hermetic.errors import ConfigError
from hermetic.fetch import ContentStore, Fetcher
from hermetic.lock import SourcesLock, load_lock
from hermetic.pins import Pin
from hermetic.sandbox import require_bubblewrap
from hermetic.toolchain import Toolchain, check_xcode, host_platform, load_toolchain, materialize_toolchain
from pydist import cpython, dist_graph, matrix
from pydist.compile_env import CompileEnv
from pydist.distribution import DistNames
from pydist.libraries import INSTALL_ROOT, RECIPES, LibraryRecipe
from pydist.openssl import OPENSSL
from pydist.settings import REPO_ROOT, Settings, release_tag

LOCK_FILE = REPO_ROOT / "sources.lock.toml"
PINS_SCHEMA = REPO_ROOT / "schema" / "pins.schema.json"
TOOLCHAINS_DIR = REPO_ROOT / "toolchains"
PATCHES_DIR = REPO_ROOT / "patches"

# Rule versions: bump to rebuild everything a rule made.
LIBRARY_RULE_VERSION = 1
CPYTHON_RULE_VERSION = 1

NAMED_TARGETS = {
    "dist": "the default: full, install_only and install_only_stripped archives, SHA256SUMS and provenance.json",
    "cpython": "the CPython build (install tree, objects, build facts) for target, py and options",
    "libs": "every dependency library and OpenSSL",
    "fetch": "download (or verify) every pinned file this build needs, nothing else",
    "toolchain": "fetch and unpack the pinned compiler and sysroot",
    "<library>": f"one library artifact: {', '.join([*RECIPES, 'openssl'])}",
}


def check_named_targets(requested: list[str]) -> None:
    """Refuse a command-line target that is neither a named target nor a path, listing the valid names."""
    names = [name for name in NAMED_TARGETS if not name.startswith("<")] + [*RECIPES, "openssl"]
    for target in requested:
        if target not in names and "/" not in target and not Path(target).exists():
            raise ConfigError(
                f"unknown named target {target!r}; valid: {', '.join(names)}",
                hint="see scons -h",
            )


def patches_for(package: str, version: str) -> tuple[Patch, ...]:
    """``patches/<package>/<series>/*.patch`` for every series that `version` belongs to, in order.

    A series is a version prefix: ``3.13`` applies to 3.13.15, ``3.13.15`` only to that release.
    """
    root = PATCHES_DIR / package
    if not root.is_dir():
        return ()
    series = [d for d in root.iterdir() if d.is_dir() and (version == d.name or version.startswith(d.name + "."))]
    found: list[Patch] = []
    for directory in sorted(series, key=lambda d: len(d.name)):
        for path in sorted(directory.glob("*.patch")):
            found.append(Patch(path=path, label=str(path.relative_to(REPO_ROOT))))
    return tuple(found)


@dataclass
class BuildGraph:
    """What SConstruct needs after declaring the graph."""

    lock: SourcesLock
    request: matrix.BuildRequest
    toolchain: Toolchain
    fetcher: Fetcher
    libraries: dict[str, Any]
    default: list[Any]


def make_fetcher(settings: Settings) -> Fetcher:
    """The fetcher configured from the command line and the host's apt configuration."""
    apt = archives_from_apt()
    archives = DebianArchives(
        main=(settings.debian_mirror,) if settings.debian_mirror else apt.main,
        security=(settings.debian_security_mirror,) if settings.debian_security_mirror else apt.security,
    )
    return Fetcher(
        ContentStore(settings.cache_root / "downloads"),
        distdirs=settings.distdirs,
        mirrors=settings.mirrors,
        resolve=archives.resolve,
    )


def library_action(recipe: LibraryRecipe, pin: Pin, ce: CompileEnv, lock: SourcesLock, toolchain: Toolchain) -> Action:
    """The action that builds one dependency library from its pin."""
    label = pin.id
    return Action(
        name=label,
        rule="library",
        rule_version=LIBRARY_RULE_VERSION * 1000 + recipe.version,
        target=toolchain.triple,
        source=pin,
        patches=patches_for(pin.name, pin.version),
        deps=recipe.deps,
        toolchain=toolchain,
        env=recipe.env(ce, label),
        steps=tuple(recipe.steps(ce, label)),
        output=INSTALL_ROOT,
        source_date_epoch=lock.source_date_epoch,
    )


def cpython_action(
    request: matrix.BuildRequest,
    ce: CompileEnv,
    lock: SourcesLock,
    toolchain: Toolchain,
    deps: tuple[str, ...],
) -> Action:
    """The action that configures, builds and installs CPython against the dependency artifacts."""
    label = f"cpython-{request.python_version}-{request.options}"
    patches = patches_for("cpython", request.python_version)
    if not (PATCHES_DIR / "cpython" / request.python_minor).is_dir():
        # The FIPS behaviour (finding fips.so, no silent builtin hashes) lives in these patches.
        raise ConfigError(
            f"CPython {request.python_minor} has no patch series in patches/cpython/{request.python_minor} yet, "
            "so its build would lack the FIPS changes",
            hint="use py=3.11 or py=3.13, or port patches/cpython/3.13 to that release",
        )
    return Action(
        name=label,
        rule="cpython",
        rule_version=CPYTHON_RULE_VERSION,
        target=toolchain.triple,
        source=request.python,
        patches=patches,
        deps=deps,
        toolchain=toolchain,
        env=cpython.cpython_env(request, ce, label),
        steps=tuple(cpython.cpython_steps(request, ce, label)),
        output=cpython.ARTIFACT_ROOT,
        source_date_epoch=lock.source_date_epoch,
        files=cpython.HELPER_FILES,
    )


def declare(env: Any, settings: Settings, *, checking_host: bool = True) -> BuildGraph:
    """Validate the request and declare every target of the build in `env`."""
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    request = matrix.validate_request(lock, target=settings.target, py=settings.py, options=settings.options)
    toolchain = load_toolchain(TOOLCHAINS_DIR, request.target, PINS_SCHEMA)
    if checking_host:
        toolchain.check_host()
        require_bubblewrap()
        native = matrix.DEFAULT_TARGET_FOR_HOST.get(host_platform())
        if toolchain.os == "macos":
            check_xcode(toolchain)
            raise ConfigError(
                f"{request.target}: the pinned Xcode is present, but the macOS build rules are not implemented yet",
                hint="build a Linux target on a Linux host",
            )
        if toolchain.os == "linux" and request.target != native:
            raise ConfigError(
                f"cross-building {request.target} on {host_platform()} is not implemented yet "
                "(its toolchain and sysroot are pinned; the build rules assume a native target)",
                hint=f"build target={native} here, or build on an aarch64 Linux host",
            )
    fetcher = make_fetcher(settings)
    target_dir = settings.build_dir / request.target
    runner = ActionRunner(
        fetcher=fetcher,
        toolchain_root=settings.cache_root / "toolchains",
        work_root=(target_dir / "work").resolve(),
        log_root=(target_dir / "logs").resolve(),
        jobs=settings.jobs,
    )
    ce = CompileEnv(toolchain=toolchain, build_host=host_platform())

    libraries: dict[str, Any] = {}
    for recipe in [*RECIPES.values(), OPENSSL]:
        pin = lock.get(recipe.name)
        action = library_action(recipe, pin, ce, lock, toolchain)
        artifact = str(target_dir / "deps" / f"{pin.id}.tar.zst")
        node = scons_glue.declare_action(env, action, runner, artifact, [libraries[d] for d in recipe.deps])
        env.Alias(recipe.name, node)
        libraries[recipe.name] = node
    env.Alias("libs", list(libraries.values()))

    python_action = cpython_action(request, ce, lock, toolchain, tuple(libraries))
    python_artifact = str(target_dir / f"cpython-{request.python_version}-{request.options}.tar.zst")
    python_node = scons_glue.declare_action(env, python_action, runner, python_artifact, list(libraries.values()))
    env.Alias("cpython", python_node)

    license_pins = (*(lock.get(r.name) for r in [*RECIPES.values(), OPENSSL]), request.python)
    lto = "lto" in request.optimizations.split("+")
    dist_ctx = dist_graph.DistContext(
        request=request,
        lock=lock,
        toolchain=toolchain,
        runner=runner,
        fetcher=fetcher,
        work_root=(target_dir / "work").resolve(),
        tests_root=(target_dir / "tests").resolve(),
        license_pins=license_pins,
        object_format=f"llvm-bitcode:{toolchain.compiler.version}" if lto and toolchain.compiler else "elf",
    )
    names = DistNames(request=request, tag=release_tag(settings.tag, lock.source_date_epoch))
    dist_nodes = dist_graph.declare_distribution(
        env, dist_ctx, names, settings.dist_dir, python_node, libraries["openssl"], list(libraries.values())
    )
    env.Alias("dist", dist_nodes)

    needed = [lock.get(r.name) for r in [*RECIPES.values(), OPENSSL]] + [request.python]
    needed += toolchain.all_packages()

    def fetch_all() -> None:
        with log.step(f"fetch {len(needed)} pinned files", fetcher.status):
            for pin in needed:
                fetcher.fetch(pin)
        megabytes = sum(p.size for p in needed) / 1e6
        log.say(f"  {len(needed)} files, {megabytes:.0f} MB, verified, in {fetcher.store.root}")

    def toolchain_task() -> None:
        with log.step(f"toolchain {toolchain.triple}"):
            dirs = materialize_toolchain(toolchain, fetcher, settings.cache_root / "toolchains")
        log.say(f"  compiler {dirs.compiler}\n  sysroot  {dirs.sysroot}")

    scons_glue.declare_task(env, "fetch", fetch_all, NAMED_TARGETS["fetch"])
    scons_glue.declare_task(env, "toolchain", toolchain_task, NAMED_TARGETS["toolchain"])
    default = [env.Alias("dist")]
    return BuildGraph(lock, request, toolchain, fetcher, libraries, default)
