"""The build graph of one (target, Python, options): which actions exist and what each depends on.

``declare_python`` declares the libraries and CPython of one target and can be called once per target: a cross
build declares the build host's own CPython (same version, noopt) as the build Python of the requested one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from hermetic import log, pypi, scons_glue
from hermetic.action import Action, ActionRunner, Patch
from hermetic.content_store import ContentStore
from hermetic.debian import DebianArchives, archives_from_apt
from hermetic.errors import ConfigError
from hermetic.fetch import Fetcher
from hermetic.lock import SourcesLock, load_lock
from hermetic.pins import Pin
from hermetic.sandbox import require_bubblewrap
from hermetic.toolchain import SYSROOT_MOUNT, Toolchain, check_xcode, materialize_toolchain
from pydist import bolt, cpython, dist_graph, fips_provider, glibc_sysroot, matrix, openssl, tuning
from pydist.compile_env import CompileEnv
from pydist.dist_context import DistContext
from pydist.distribution import DistNames
from pydist.libraries import INSTALL_ROOT, RECIPES, LibraryRecipe
from pydist.openssl import OPENSSL
from pydist.options import BuildOptions
from pydist.paths import LOCK_FILE, PATCHES_DIR, PINS_SCHEMA, REPO_ROOT
from pydist.platforms import Platform, load_platform
from pydist.settings import Settings, release_tag
from pydist.tuning import NO_TUNING, Tuning

# Rule versions: bump to rebuild everything a rule made.
LIBRARY_RULE_VERSION = 1
CPYTHON_RULE_VERSION = 1

# A cross build's build Python: the build host's CPython of the same version, the cheapest way.
BUILD_PYTHON_OPTIONS = BuildOptions(optimization="noopt")

NAMED_TARGETS = {
    "dist": "the default: full, install_only and install_only_stripped archives, SHA256SUMS and provenance.json",
    "cpython": "the CPython build (install tree, objects, build facts) for target, py and options",
    "libs": "every dependency library and OpenSSL",
    "fetch": "download (or verify) every pinned file this build needs, nothing else",
    "toolchain": "fetch and unpack the pinned compiler (and emulator), and generate the glibc sysroot",
    "<library>": f"one library artifact: {', '.join([*RECIPES, 'openssl'])}",
    fips_provider.TARGET: "the FIPS provider that ships (fips_provider=): its own artifact, or OpenSSL's",
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


def downloads_dir(settings: Settings) -> Path:
    """The content-addressed download cache shared by every checkout."""
    return settings.cache_root / "downloads"


def resolver(archives: DebianArchives) -> Callable[[str], list[str]]:
    """How pinned URLs become download URLs: ``pypi:`` through pip's index (the ziglang wheel), ``debian:`` and
    ``debian-security:`` through the Debian archives; others as they are."""

    def resolve(url: str) -> list[str]:
        return pypi.resolve(url) if pypi.IndexFile.parse(url) else archives.resolve(url)

    return resolve


def make_fetcher(settings: Settings) -> Fetcher:
    """The fetcher configured from the command line and the host's apt configuration."""
    apt = archives_from_apt()
    archives = DebianArchives(
        main=(settings.debian_mirror,) if settings.debian_mirror else apt.main,
        security=(settings.debian_security_mirror,) if settings.debian_security_mirror else apt.security,
    )
    return Fetcher(
        ContentStore(downloads_dir(settings)),
        distdirs=settings.distdirs,
        mirrors=settings.mirrors,
        resolve=resolver(archives),
    )


def library_action(recipe: LibraryRecipe, pin: Pin, ce: CompileEnv, lock: SourcesLock) -> Action:
    """The action that builds one dependency library from its pin."""
    label = pin.id
    return Action(
        name=label,
        rule="library",
        rule_version=LIBRARY_RULE_VERSION * 1000 + recipe.version,
        target=ce.platform.triple,
        source=pin,
        patches=patches_for(pin.name, pin.version),
        deps=recipe.deps,
        toolchain=ce.platform.toolchain,
        env=recipe.env(ce, label),
        steps=tuple(recipe.steps(ce, label)),
        output=INSTALL_ROOT,
        source_date_epoch=lock.source_date_epoch,
    )


def cpython_label(request: matrix.BuildRequest, levers: Tuning) -> str:
    """The CPython action's name (and artifact name): a variant of the default tuning carries its levers."""
    label = f"cpython-{request.python_version}-{request.options}"
    return label if levers.is_default else f"{label}-tuning-{levers.label}"


def cpython_toolchain(platform: Platform, levers: Tuning) -> Toolchain:
    """The CPython action's toolchain: the target's, plus the tools the levers use (in this key only)."""
    return platform.toolchain.with_tools((bolt.TOOL,)) if "bolt" in levers else platform.toolchain


def cpython_action(
    request: matrix.BuildRequest,
    ce: CompileEnv,
    lock: SourcesLock,
    deps: tuple[str, ...],
    levers: Tuning = NO_TUNING,
    profile: Path | None = None,
) -> Action:
    """The action that configures, builds and installs CPython against the dependency artifacts (with the
    merged PGO `profile` instead of a training run when one is given)."""
    label = cpython_label(request, levers)
    dep_mounts, tmpfs = cpython.build_python_mounts(request, ce)
    return Action(
        name=label,
        rule="cpython",
        rule_version=CPYTHON_RULE_VERSION,
        target=ce.platform.triple,
        source=request.python,
        patches=patches_for("cpython", request.python_version),
        deps=deps,
        toolchain=cpython_toolchain(ce.platform, levers),
        env=cpython.cpython_env(request, ce, label, levers),
        steps=tuple(cpython.cpython_steps(request, ce, label, levers, given_profile=profile is not None)),
        output=cpython.ARTIFACT_ROOT,
        source_date_epoch=lock.source_date_epoch,
        files=cpython.HELPER_FILES + ((cpython.given_profile_file(profile),) if profile else ()),
        dep_mounts=dep_mounts,
        tmpfs=tmpfs,
    )


@dataclass(frozen=True, kw_only=True)
class GraphContext:
    """What every part of the graph is declared with.

    Attributes:
        env: (Any) the SCons environment.
        settings: (Settings) the command line.
        lock: (SourcesLock) the sources lock.
        fetcher: (Fetcher) the one fetcher of this build.
        fips_provider: (FipsProvider) the FIPS provider the requested build ships.
    """

    env: Any
    settings: Settings
    lock: SourcesLock
    fetcher: Fetcher
    fips_provider: fips_provider.FipsProvider


@dataclass(frozen=True)
class Sysroot:
    """A sysroot this build generates: the node of its artifact, which every compiling action depends on and
    sees at ``/sysroot``."""

    node: Any

    DEP: ClassVar[str] = "sysroot"

    def add_to(self, action: Action) -> Action:
        """`action` with the sysroot as its first dependency, shown at /sysroot (the rest keep their order)."""
        return dataclasses.replace(
            action,
            deps=(self.DEP, *action.deps),
            dep_mounts={self.DEP: ("", SYSROOT_MOUNT), **action.dep_mounts},
        )


def declare_sysroot(ctx: GraphContext, platform: Platform, runner: ActionRunner) -> Sysroot | None:
    """The glibc sysroot of a Linux target whose pin names no sysroot packages, generated for its glibc floor;
    None for a target whose toolchain brings its sysroot (the macOS SDK)."""
    toolchain = platform.toolchain
    if toolchain.os != "linux" or toolchain.sysroot is not None:
        return None
    floor = str(toolchain.target["glibc_floor"])
    action = glibc_sysroot.sysroot_action(toolchain, floor, source_date_epoch=ctx.lock.source_date_epoch)
    artifact = ctx.settings.build_dir / platform.triple / "deps" / glibc_sysroot.artifact_name(toolchain.arch, floor)
    return Sysroot(scons_glue.declare_action(ctx.env, action, runner, str(artifact), []))


def declare_compiling(
    ctx: GraphContext, action: Action, runner: ActionRunner, artifact: Path, deps: list[Any], sysroot: Sysroot | None
) -> Any:
    """Declare an action that compiles for the target: with the generated sysroot among its inputs, if any."""
    if sysroot is not None:
        action, deps = sysroot.add_to(action), [sysroot.node, *deps]
    return scons_glue.declare_action(ctx.env, action, runner, str(artifact), deps)


@dataclass(frozen=True, kw_only=True)
class PythonNodes:
    """The SCons nodes of one target's libraries and CPython build; a cross build's also name the build Python's
    nodes and the toolchain they were built with (the provenance lists their actions and pins too)."""

    runner: ActionRunner
    libraries: dict[str, Any]
    cpython: Any
    levers: Tuning = NO_TUNING
    toolchain: Toolchain | None = None
    build_python: PythonNodes | None = None
    sysroot: Sysroot | None = None

    def nodes(self) -> list[Any]:
        """Every artifact node: the sysroot, the libraries, then CPython."""
        return [*([self.sysroot.node] if self.sysroot else []), *self.libraries.values(), self.cpython]


def library_recipes(platform: Platform) -> list[LibraryRecipe]:
    """The dependency libraries this target uses, OpenSSL last."""
    return [r for r in [*RECIPES.values(), OPENSSL] if platform.uses_library(r.name)]


def declare_python(ctx: GraphContext, request: matrix.BuildRequest, platform: Platform, *, named: bool) -> PythonNodes:
    """Declare the libraries and CPython of `request` for `platform` under ``build/<triple>/``.

    `named` gives them the command-line names (``zlib``, ``libs``, ``cpython``) and the ``tuning=`` levers; a
    build Python's are unnamed and untuned.
    """
    target_dir = ctx.settings.build_dir / platform.triple
    runner = ActionRunner(
        fetcher=ctx.fetcher,
        toolchain_root=ctx.settings.cache_root / "toolchains",
        work_root=(target_dir / "work").resolve(),
        log_root=(target_dir / "logs").resolve(),
        jobs=ctx.settings.jobs,
    )
    ce = CompileEnv(platform=platform)
    sysroot = declare_sysroot(ctx, platform, runner)
    libraries: dict[str, Any] = {}
    for recipe in library_recipes(platform):
        pin = ctx.lock.get(recipe.name)
        action = library_action(recipe, pin, ce, ctx.lock)
        artifact = target_dir / "deps" / f"{pin.id}.tar.zst"
        deps = [libraries[d] for d in recipe.deps]
        libraries[recipe.name] = declare_compiling(ctx, action, runner, artifact, deps, sysroot)
    deps = list(libraries.values())
    dep_names = tuple(libraries)
    build_python = None
    if not platform.native:
        build_python = declare_build_python(ctx, request, platform)
        deps.append(build_python.cpython)
        dep_names += (cpython.BUILD_PYTHON_DEP,)
    levers = cpython.tuning_for(ctx.settings.tuning if named else tuning.DEFAULT_WORD, request, ce)
    profile = ctx.settings.pgo_profile if named else None
    if profile is not None and not request.options.pgo:
        raise ConfigError(
            f"pgo_profile= applies to pgo builds only, not options={request.options}",
            hint="use options=pgo+lto, or leave pgo_profile= out",
        )
    training = sorted(levers.levers & tuning.TRAINING_LEVERS)
    if profile is not None and training:
        raise ConfigError(
            f"pgo_profile= skips the PGO training, so the {training[0]} lever (which changes it) would do nothing",
            hint=f"leave pgo_profile= out to train with {training[0]}, or drop it from tuning=",
        )
    action = cpython_action(request, ce, ctx.lock, dep_names, levers, profile)
    node = declare_compiling(ctx, action, runner, target_dir / f"{action.name}.tar.zst", deps, sysroot)
    if named:
        for name, library in libraries.items():
            ctx.env.Alias(name, library)
        ctx.env.Alias("libs", list(libraries.values()))
        ctx.env.Alias("cpython", node)
    return PythonNodes(
        runner=runner,
        libraries=libraries,
        cpython=node,
        levers=levers,
        toolchain=platform.toolchain,
        build_python=build_python,
        sysroot=sysroot,
    )


def declare_build_python(ctx: GraphContext, request: matrix.BuildRequest, platform: Platform) -> PythonNodes:
    """The build host's own CPython of `request`'s version: the build Python a cross build needs. One artifact
    per version, shared by every cross target (and by the build host's own noopt build of it)."""
    host_target = matrix.DEFAULT_TARGET_FOR_HOST.get(platform.build_host)
    if host_target is None:
        raise ConfigError(f"no target runs on the build host {platform.build_host}", hint="build on a Linux host")
    build_request = matrix.BuildRequest(target=host_target, python=request.python, options=BUILD_PYTHON_OPTIONS)
    build_platform = load_platform(host_target, platform.build_host)
    return declare_python(ctx, build_request, build_platform, named=False)


def check_host(platform: Platform) -> None:
    """Stop before any work when this machine cannot build the target, saying what it needs: another host
    (a Mac for a macOS target), bubblewrap, or the pinned Xcode, clang and SDK versions."""
    platform.check_host()
    platform.toolchain.check_host()
    if platform.toolchain.sandbox == "bubblewrap":
        require_bubblewrap()
    if platform.toolchain.xcode is not None:
        check_xcode(platform.toolchain)


def declare(
    env: Any,
    settings: Settings,
    *,
    checking_host: bool = True,
    planning: bool = False,
    build_host: str | None = None,
) -> list[Any]:
    """Validate the request and declare every target of the build in `env`; return the default targets.

    `planning` (``scons -n``) declares what would run without running it, for minors not yet buildable too.
    `build_host` (``<arch>-<os>``, default this machine) lets a test declare the graph another host would.
    """
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    request = matrix.validate_request(
        lock, target=settings.target, py=settings.py, options=settings.options, planning=planning
    )
    platform = load_platform(request.target, build_host)
    provider = fips_provider.select(
        lock,
        settings.fips_provider,
        platform,
        distdirs=settings.distdirs,
        downloads=ContentStore(downloads_dir(settings)),
    )
    if checking_host:
        check_host(platform)
    ctx = GraphContext(env=env, settings=settings, lock=lock, fetcher=make_fetcher(settings), fips_provider=provider)
    nodes = declare_python(ctx, request, platform, named=True)
    declare_dist(ctx, request, platform, nodes)
    declare_tasks(ctx, request, platform, cpython_toolchain(platform, nodes.levers))
    if nodes.sysroot is not None:
        env.Alias("toolchain", nodes.sysroot.node)
    return [env.Alias("dist")]


def declare_dist(ctx: GraphContext, request: matrix.BuildRequest, platform: Platform, nodes: PythonNodes) -> None:
    """The archives, SHA256SUMS and provenance of the requested build (``scons dist``)."""
    target_dir = ctx.settings.build_dir / platform.triple
    toolchain = platform.toolchain
    dist_ctx = DistContext(
        request=request,
        lock=ctx.lock,
        # The toolchain the CPython build used (with the tools its levers use), so the records list them.
        platform=dataclasses.replace(platform, toolchain=cpython_toolchain(platform, nodes.levers)),
        runner=nodes.runner,
        fetcher=ctx.fetcher,
        work_root=(target_dir / "work").resolve(),
        tests_root=(target_dir / "tests").resolve(),
        license_pins=(*(ctx.lock.get(r.name) for r in library_recipes(platform)), request.python, *provider_pins(ctx)),
        object_format=f"llvm-bitcode:{toolchain.compiler.version}"
        if request.options.lto and toolchain.compiler
        else platform.object_format,
        fips_provider=ctx.fips_provider,
        build_python_toolchain=nodes.build_python.toolchain if nodes.build_python else None,
    )
    names = DistNames(request=request, tag=release_tag(ctx.settings.tag, ctx.lock.source_date_epoch))
    openssl = nodes.libraries["openssl"]
    provider = declare_fips_provider(ctx, platform, nodes.runner, nodes.sysroot)
    # A provider from its own tree is one more artifact the SBOM and the provenance read, like a library's; so
    # is the generated sysroot (its action and digest go into the provenance; it ships nothing).
    libraries = {
        **({Sysroot.DEP: nodes.sysroot.node} if nodes.sysroot else {}),
        **nodes.libraries,
        **({fips_provider.PIN_NAME: provider} if provider is not None else {}),
    }
    dist_nodes = dist_graph.declare_distribution(
        ctx.env,
        dist_ctx,
        names,
        ctx.settings.dist_dir,
        nodes.cpython,
        libraries,
        nodes.build_python.nodes() if nodes.build_python else [],
        fips_node=provider if provider is not None else openssl,
    )
    ctx.env.Alias("dist", dist_nodes)
    ctx.env.Alias(fips_provider.TARGET, provider if provider is not None else openssl)


def provider_pins(ctx: GraphContext) -> tuple[Pin, ...]:
    """The FIPS provider's own source, when it has one (it ships, so its license text does too)."""
    return (ctx.fips_provider.pin,) if ctx.fips_provider.pin is not None else ()


def declare_fips_provider(
    ctx: GraphContext, platform: Platform, runner: ActionRunner, sysroot: Sysroot | None
) -> Any | None:
    """The FIPS provider built from its own pristine source tree, when ``fips_provider=`` asks for one; None
    when the provider of OpenSSL's own artifact ships (the default, whose graph this leaves untouched)."""
    pin = ctx.fips_provider.pin
    if pin is None:
        return None
    if patches_for(pin.name, pin.version):
        raise ConfigError(
            f"patches/{pin.name}/ would change the {pin.id} provider tree",
            hint="its Security Policy allows no change to the source: remove them",
        )
    action = openssl.provider_action(pin, CompileEnv(platform=platform), ctx.lock)
    artifact = ctx.settings.build_dir / platform.triple / "deps" / f"{pin.id}.tar.zst"
    return declare_compiling(ctx, action, runner, artifact, [], sysroot)


def declare_tasks(
    ctx: GraphContext, request: matrix.BuildRequest, platform: Platform, cpython_tools: Toolchain | None = None
) -> None:
    """``scons fetch`` and ``scons toolchain`` (`cpython_tools`: the CPython build's toolchain, whose tools
    are fetched too)."""
    toolchain, fetcher = platform.toolchain, ctx.fetcher
    needed = [ctx.lock.get(r.name) for r in library_recipes(platform)] + [request.python, *provider_pins(ctx)]
    needed += (cpython_tools or toolchain).all_packages()

    def fetch_all() -> None:
        with log.step(f"fetch {len(needed)} pinned files", fetcher.status):
            for pin in needed:
                fetcher.fetch(pin)
        megabytes = sum(p.size for p in needed) / 1e6
        log.say(f"  {len(needed)} files, {megabytes:.0f} MB, verified, in {fetcher.store.root}")

    def toolchain_task() -> None:
        with log.step(f"toolchain {toolchain.triple}"):
            dirs = materialize_toolchain(toolchain, fetcher, ctx.settings.cache_root / "toolchains")
        log.say(f"  compiler {dirs.compiler}")
        if dirs.sysroot is not None:
            log.say(f"  sysroot  {dirs.sysroot}")
        for arch, program in dirs.emulators.items():
            log.say(f"  {arch} emulator {program}" + (f", with the libraries in {dirs.guest}" if dirs.guest else ""))

    scons_glue.declare_task(ctx.env, "fetch", fetch_all, NAMED_TARGETS["fetch"])
    scons_glue.declare_task(ctx.env, "toolchain", toolchain_task, NAMED_TARGETS["toolchain"])
