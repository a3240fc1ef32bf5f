"""Toolchains are inputs: pinned packages, materialized into content-addressed directories.

A Linux toolchain is a compiler (Debian packages of clang/lld/llvm for the build host) plus a sysroot for
the target (Debian packages of an old glibc). Each is unpacked into ``<cache>/toolchains/<kind>-<id>``, where
``<id>`` is derived from the package hashes, so two checkouts share it and a different pin never reuses it.
A set can also take parts of a zip package (a wheel: ``extract``) and finish them with named steps (``finish``),
as the macOS libc SDK a Linux host cross-compiles against is made from the ziglang wheel.
A tool pin (``toolchains/tools/*.toml``) is a set of its own for a program only some actions use (BOLT):
a target's pin names it per build host, but it enters an action's key, and is mounted at ``/tools/<name>``,
only for the actions that ask for it (:meth:`Toolchain.with_tools`), so every other action keeps its key.
A macOS toolchain is the host's Xcode, checked against pinned versions instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermetic import log, tapi
from hermetic.archive_extract import extract_deb, extract_zip
from hermetic.content_store import sha256_file
from hermetic.errors import ConfigError, ToolchainError
from hermetic.fetch import Fetcher
from hermetic.pins import Pin, load_toml

# Bump when the layout a materialized directory gets changes: it is part of every toolchain identity.
MATERIALIZER_VERSION = 2

# Where the sandbox shows the compiler and the sysroot, identical on every machine.
COMPILER_MOUNT = "/toolchain"
SYSROOT_MOUNT = "/sysroot"
# Where it shows the libraries an emulator runs the target's programs with (a sysroot may hold only link stubs).
GUEST_MOUNT = "/guest"
# Where a tool pin an action asks for is shown: /tools/<name>.
TOOLS_MOUNT = "/tools"


# Keys of a target table that describe the target to other tools and to checks (uv's spelling, the pattern the
# interpreter-loop check looks for, the CPU type the validator expects), not to the compiler: they stay out of the
# identity, so adding one does not change every action key (a check's own command carries what it uses).
DESCRIPTIVE_TARGET_KEYS = frozenset({"uv_platform", "dispatch_jump", "macho_cputype"})

# How messages name the build hosts (``<arch>-<os>``).
HOST_DESCRIPTIONS = {
    "x86_64-linux": "an x86_64 Linux host (Debian 12 or newer)",
    "aarch64-linux": "an aarch64 Linux host (Debian 12 or newer)",
    "aarch64-macos": "a macOS host on Apple silicon (arm64) with the pinned Xcode",
    "x86_64-macos": "a macOS host on Intel (x86_64) with the pinned Xcode",
}


def host_platform() -> str:
    """The build host as ``<arch>-<os>``, e.g. ``x86_64-linux`` or ``aarch64-macos``."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    system = {"darwin": "macos"}.get(platform.system().lower(), platform.system().lower())
    return f"{arch}-{system}"


def host_glibc() -> tuple[int, int] | None:
    """The glibc version of the build host, or None when it is not a glibc system."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    if not text.startswith("glibc "):
        return None
    major, minor = text.split()[1].split(".")[:2]
    return int(major), int(minor)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class PackageSet:
    """A set of pinned packages unpacked together into one content-addressed directory.

    Attributes:
        kind: (str) ``compiler`` or ``sysroot``: the directory name prefix.
        packages: (tuple[Pin, ...]) the ``.deb`` files.
        tools: (tuple[tuple[str, str], ...]) ``bin/<name>`` launchers to create, as (name, program).
        tools_dir: (str) where the launched programs are, relative to the unpacked packages.
        lib_dirs: (tuple[str, ...]) where the programs' shared libraries are, relative to the packages.
        target_triples: (tuple[str, ...]) triples that get ``bin/<triple>-clang[++]`` launchers.
        extract: (tuple[tuple[str, str], ...]) for zip packages (wheels): the (member path, destination)
            pairs to unpack, nothing else; empty: the whole archive.
        finish: (tuple[str, ...]) names of :data:`FINISHERS` run over the unpacked tree, in order.
        mount: (str) where the sandbox shows the unpacked set (the launchers in ``bin/`` name programs there).
        launcher_config: (tuple[tuple[str, tuple[str, ...]], ...]) per target triple, clang options its
            launchers read from a configuration file (``bin/<triple>.cfg``): options for every compile and link
            that the driver applies only where they mean something (no unused-argument warnings).
    """

    kind: str
    packages: tuple[Pin, ...]
    tools: tuple[tuple[str, str], ...] = ()
    tools_dir: str = ""
    lib_dirs: tuple[str, ...] = ()
    target_triples: tuple[str, ...] = ()
    extract: tuple[tuple[str, str], ...] = ()
    finish: tuple[str, ...] = ()
    mount: str = COMPILER_MOUNT
    launcher_config: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.finish if name not in FINISHERS]
        if unknown:
            raise ToolchainError(f"unknown finishing step(s) {', '.join(unknown)}; known: {', '.join(FINISHERS)}")

    @property
    def id(self) -> str:
        """Short content id: changes whenever a package, a tool link or the materializer changes."""
        layout: list[Any] = [self.tools_dir, self.tools, self.lib_dirs, self.target_triples]
        if self.extract or self.finish:  # absent for .deb sets, whose ids stay what they were
            layout += [self.extract, self.finish]
        if self.mount != COMPILER_MOUNT:  # absent for the compiler's sets, whose ids stay what they were
            layout.append(self.mount)
        if self.launcher_config:
            layout.append([[triple, list(options)] for triple, options in self.launcher_config])
        return _digest([MATERIALIZER_VERSION, self.kind, sorted(p.sha256 for p in self.packages), layout])[:20]

    def identity(self) -> list[dict[str, Any]]:
        """Every package's identity (and what is taken from them, and how it is changed), for action keys and
        provenance."""
        identity: list[dict[str, Any]] = [p.identity() for p in self.packages]
        if self.extract or self.finish:
            identity.append({"extract": [list(pair) for pair in self.extract], "finish": list(self.finish)})
        if self.launcher_config:
            identity.append({"launcher_config": {triple: list(options) for triple, options in self.launcher_config}})
        return identity


@dataclass(frozen=True, kw_only=True)
class Compiler:
    """A pinned compiler for one build host (see ``toolchains/compilers/*.toml``)."""

    name: str
    version: str
    build_host: str
    min_host_glibc: str
    packages: PackageSet


@dataclass(frozen=True, kw_only=True)
class EmulatorPin:
    """A pinned user-mode emulator for one build host (see ``toolchains/emulators/*.toml``).

    Attributes:
        name: (str) e.g. ``qemu-user``.
        version: (str) its version.
        programs: (dict[str, str]) guest architecture -> program, relative to the unpacked packages.
        packages: (PackageSet) the ``.deb`` files.
    """

    name: str
    version: str
    programs: dict[str, str]
    packages: PackageSet

    def identity(self) -> dict[str, Any]:
        """For action keys and provenance."""
        return {"name": self.name, "version": self.version, "packages": self.packages.identity()}


@dataclass(frozen=True, kw_only=True)
class ToolPin:
    """A pinned program for one build host that only some actions use (see ``toolchains/tools/*.toml``).

    Attributes:
        name: (str) what actions ask for, e.g. ``bolt``; shown at ``/tools/<name>``.
        version: (str) its version.
        packages: (PackageSet) the ``.deb`` files, with ``bin/`` launchers for the programs.
    """

    name: str
    version: str
    packages: PackageSet

    @property
    def mount(self) -> str:
        """Where the sandbox shows it."""
        return self.packages.mount

    def identity(self) -> dict[str, Any]:
        """For action keys and provenance."""
        return {
            "name": self.name,
            "version": self.version,
            "packages": self.packages.identity(),
            "tools": dict(self.packages.tools),
            "mount": self.mount,
        }


@dataclass(frozen=True, kw_only=True)
class Toolchain:
    """Everything needed to compile for one target triple.

    Attributes:
        triple: (str) the target, e.g. ``x86_64-unknown-linux-gnu``.
        os: (str) ``linux`` or ``macos``.
        arch: (str) ``x86_64`` or ``aarch64``.
        build_hosts: (tuple[str, ...]) hosts (``<arch>-<os>``) that can build this target.
        build_host: (str) the host this toolchain was chosen for (its compiler and emulator are that host's).
        target: (dict) compiler triple, floors and the hardening flags every action uses.
        compiler: (Compiler | None) pinned compiler packages for the build host (Linux targets).
        sysroot: (PackageSet | None) pinned sysroot packages; None when the sysroot is an artifact of the build
            that each action receives as a dependency (Linux targets: pydist.glibc_sysroot generates it).
        emulator: (EmulatorPin | None) runs the target's programs on a build host of another architecture.
        guest: (PackageSet | None) the target's own runtime libraries (its glibc and loader) the emulator runs
            the target's programs with, shown at ``/guest``.
        xcode: (dict | None) pinned Xcode, clang and SDK versions (macOS targets).
        sandbox: (str) ``bubblewrap``, or ``unsandboxed`` where the build host has no bubblewrap (macOS).
        platform: (dict) facts about the target that shape the build graph, not an action's output
            (e.g. ``cpython_cross_answers``); not part of the identity.
        validate: (dict) what the validator checks the target's binaries against; not part of the identity.
        source: (Path) the pin file it came from.
        available_tools: (dict[str, ToolPin]) tool pins the target names for the build host; not part of the
            identity until an action asks for one.
        tools: (tuple[ToolPin, ...]) the tools this toolchain's actions use (see :meth:`with_tools`).
    """

    triple: str
    os: str
    arch: str
    build_hosts: tuple[str, ...]
    build_host: str
    target: dict[str, Any]
    compiler: Compiler | None
    sysroot: PackageSet | None
    xcode: dict[str, str] | None
    source: Path
    emulator: EmulatorPin | None = None
    guest: PackageSet | None = None
    sandbox: str = "bubblewrap"
    platform: dict[str, Any] = field(default_factory=dict)
    validate: dict[str, Any] = field(default_factory=dict)
    available_tools: dict[str, ToolPin] = field(default_factory=dict)
    tools: tuple[ToolPin, ...] = ()

    def with_tools(self, names: tuple[str, ...]) -> Toolchain:
        """This toolchain with the tool pins `names` mounted and in the identity (for the actions that use
        them); a ConfigError names a tool the target does not pin for this build host."""
        missing = [name for name in names if name not in self.available_tools]
        if missing:
            raise ConfigError(
                f"{self.triple} pins no {missing[0]} for the build host {self.build_host}",
                hint=f"tools pinned there: {', '.join(sorted(self.available_tools)) or 'none'}",
            )
        return dataclasses.replace(self, tools=tuple(self.available_tools[name] for name in sorted(set(names))))

    def identity(self) -> dict[str, Any]:
        """The canonical description of the toolchain: part of every action key."""
        target = {key: value for key, value in self.target.items() if key not in DESCRIPTIVE_TARGET_KEYS}
        ident: dict[str, Any] = {"triple": self.triple, "target": target}
        if self.compiler is not None:
            ident["compiler"] = {
                "name": self.compiler.name,
                "version": self.compiler.version,
                "packages": self.compiler.packages.identity(),
                "tools": dict(self.compiler.packages.tools),
            }
            ident["materializer"] = MATERIALIZER_VERSION
        if self.sysroot is not None:
            ident["sysroot"] = self.sysroot.identity()
        if self.emulator is not None:
            ident["emulator"] = self.emulator.identity()
            if self.guest is not None:
                ident["guest"] = self.guest.identity()
        if self.xcode is not None:
            ident["xcode"] = self.xcode
        if self.tools:  # absent when no tool is used, so those actions' keys stay what they were
            ident["tools"] = [tool.identity() for tool in self.tools]
        return ident

    def identity_digest(self) -> str:
        """sha256 of :meth:`identity`."""
        return _digest(self.identity())

    def all_packages(self) -> list[Pin]:
        """Every pinned file this toolchain needs fetched."""
        if self.compiler is None:
            return []
        sysroot = self.sysroot.packages if self.sysroot else ()
        emulator = self.emulator.packages.packages if self.emulator else ()
        guest = self.guest.packages if self.guest and self.emulator else ()
        tools = [pin for tool in self.tools for pin in tool.packages.packages]
        return [*self.compiler.packages.packages, *sysroot, *emulator, *guest, *tools]

    def check_host(self, host: str | None = None) -> None:
        """Stop at once, with the host it needs, when this machine cannot build the target."""
        host = host or self.build_host
        if host not in self.build_hosts:
            needs = " or ".join(HOST_DESCRIPTIONS.get(h, h) for h in self.build_hosts)
            raise ConfigError(
                f"target {self.triple} cannot be built on this host ({host})",
                hint=f"run the build on {needs}",
            )
        if self.compiler is not None:
            have = host_glibc()
            need = _version_tuple(self.compiler.min_host_glibc)
            if have is None or have < need:
                shown = ".".join(map(str, have)) if have else "none"
                raise ConfigError(
                    f"the pinned {self.compiler.name} {self.compiler.version} needs glibc >= "
                    f"{self.compiler.min_host_glibc} on the build host, this host has {shown}",
                    hint="build on Debian 12 or newer",
                )

    def sandbox_env(self) -> dict[str, str]:
        """Environment entries that describe the toolchain inside the sandbox."""
        if self.compiler is None:
            return {}
        return {"HERMETIC_TOOLCHAIN": self.identity_digest()[:20]}

    def bin_path(self) -> str:
        """The sandbox PATH entries that hold the pinned tools: the compiler's, then each used tool pin's."""
        return ":".join([f"{COMPILER_MOUNT}/bin", *(f"{tool.mount}/bin" for tool in self.tools)])


def load_compiler(path: Path, schema: Path) -> Compiler:
    """Read a compiler pin file."""
    data = load_toml(path, schema, "compiler")
    return Compiler(
        name=data["name"],
        version=data["version"],
        build_host=data["build_host"],
        min_host_glibc=data["min_host_glibc"],
        packages=PackageSet(
            kind="compiler",
            packages=tuple(Pin.from_mapping(p) for p in data["package"]),
            tools=tuple(sorted(data["tools"].items())),
            tools_dir=data["bin_dir"],
            lib_dirs=tuple(data["lib_dirs"]),
            target_triples=tuple(data.get("target_triples", ())),
        ),
    )


def load_emulator(path: Path, schema: Path) -> EmulatorPin:
    """Read an emulator pin file."""
    data = load_toml(path, schema, "emulator")
    return EmulatorPin(
        name=data["name"],
        version=data["version"],
        programs={arch: f"{data['bin_dir']}/{program}" for arch, program in data["programs"].items()},
        packages=PackageSet(kind="emulator", packages=tuple(Pin.from_mapping(p) for p in data["package"])),
    )


def load_tool(path: Path, schema: Path, name: str) -> ToolPin:
    """Read a tool pin file (``toolchains/tools/*.toml``) for the tool an action asks for as `name`."""
    data = load_toml(path, schema, "tool")
    return ToolPin(
        name=name,
        version=data["version"],
        packages=PackageSet(
            kind=f"tool-{name}",
            packages=tuple(Pin.from_mapping(p) for p in data["package"]),
            tools=tuple(sorted(data["tools"].items())),
            tools_dir=data["bin_dir"],
            lib_dirs=tuple(data.get("lib_dirs", ())),
            mount=f"{TOOLS_MOUNT}/{name}",
        ),
    )


def load_toolchain(toolchains_dir: Path, triple: str, schema: Path, *, build_host: str | None = None) -> Toolchain:
    """Read ``toolchains/<triple>.toml`` with the compiler (and emulator) pins it names for `build_host`
    (default: this machine). A host the target cannot be built on gets no compiler; ``check_host`` says why."""
    path = toolchains_dir / f"{triple}.toml"
    data = load_toml(path, schema, "toolchain")
    if data["triple"] != triple:
        raise ToolchainError(f"{path}: declares triple {data['triple']!r}, expected {triple!r}")
    host = build_host or host_platform()
    compiler = sysroot = emulator = guest = None
    if data["os"] == "linux":
        if "sysroot" in data:
            sysroot = PackageSet(
                kind="sysroot", packages=tuple(Pin.from_mapping(p) for p in data["sysroot"]["package"])
            )
        if host in data["compilers"]:
            compiler = _target_compiler(load_compiler(toolchains_dir / data["compilers"][host], schema), data, host)
        if host in data.get("emulators", {}):
            emulator = load_emulator(toolchains_dir / data["emulators"][host], schema)
        if "guest" in data:
            guest = PackageSet(kind="guest", packages=tuple(Pin.from_mapping(p) for p in data["guest"]["package"]))
    tools = {
        name: load_tool(toolchains_dir / pin_file, schema, name)
        for name, pin_file in data.get("tools", {}).get(host, {}).items()
    }
    return Toolchain(
        triple=triple,
        os=data["os"],
        arch=data["arch"],
        build_hosts=tuple(data["build_hosts"]),
        build_host=host,
        target=dict(data["target"]),
        compiler=compiler,
        sysroot=sysroot,
        emulator=emulator,
        guest=guest,
        xcode=dict(data["xcode"]) if "xcode" in data else None,
        sandbox=data.get("sandbox", "bubblewrap"),
        platform=dict(data.get("platform", {})),
        validate=dict(data.get("validate", {})),
        source=path,
        available_tools=tools,
    )


def _target_compiler(compiler: Compiler, data: dict[str, Any], host: str) -> Compiler:
    """The compiler pin as one target uses it: with that target's extra packages for the build host and its clang
    options in the launchers' configuration (both in this target's own copy: other targets' keys stay)."""
    packages = compiler.packages
    extras = tuple(Pin.from_mapping(p) for p in data.get("compiler_extras", {}).get(host, ()))
    if extras:
        packages = dataclasses.replace(packages, packages=(*packages.packages, *extras))
    options = tuple(data["target"].get("clang_config", ()))
    if options:
        packages = dataclasses.replace(packages, launcher_config=((data["target"]["clang_triple"], options),))
    return dataclasses.replace(compiler, packages=packages)


def load_sdk(path: Path, schema: Path) -> PackageSet:
    """Read an SDK pin file (``toolchains/sdks/*.toml``): packages, what to take from them, how to finish it."""
    data = load_toml(path, schema, "sdk")
    return PackageSet(
        kind="sdk",
        packages=tuple(Pin.from_mapping(p) for p in data["package"]),
        extract=tuple(sorted(data.get("extract", {}).items())),
        finish=tuple(data.get("finish", ())),
    )


# ------------------------------------------------------------------------------------------ materializing

# Steps a pin file may ask for after its packages are unpacked, by name (the name is part of the directory's id).
FINISHERS: dict[str, Callable[[Path], object]] = {
    # LLVM 19's ld64.lld rejects the arm64e.x1 targets current macOS .tbd stubs list (see hermetic.tapi).
    "tbd-arm64e.x1-as-arm64": tapi.rewrite_tree,
}

_MARKER = ".materialized.json"
# The sha256 of every file, beside the marker (which keeps its older size-only format, so checkouts of older
# versions sharing this cache still accept the directory).
_DIGESTS = ".materialized.sha256.json"
_STAGING_SUFFIX = ".staging"
# A staging directory this old belongs to no running unpack (one takes seconds to minutes).
_STALE_STAGING_SECONDS = 24 * 3600

# Directories whose every file was hashed against the manifest by this process (later uses check sizes only).
_VERIFIED: set[Path] = set()


def _manifest(root: Path) -> dict[str, int]:
    """Relative path -> size of every regular file (symlinks map to -1)."""
    result: dict[str, int] = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel in (_MARKER, _DIGESTS):
                continue
            result[rel] = -1 if path.is_symlink() else path.lstat().st_size
    return result


def _digests(root: Path, files: dict[str, int]) -> dict[str, str]:
    """sha256 of every regular file named in `files`."""
    return {rel: sha256_file(root / rel) for rel, size in sorted(files.items()) if size != -1}


def _write_json(path: Path, data: Any) -> None:
    """Write `data` to `path` atomically (two processes may record the same digests at once)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data, sort_keys=True))
    Path(tmp).chmod(0o644)
    os.replace(tmp, path)


def _damage(root: Path, deep: bool) -> str | None:
    """What is wrong with a materialized directory (None: intact). `deep` re-hashes every file."""
    try:
        recorded: dict[str, int] = json.loads((root / _MARKER).read_text())["files"]
    except FileNotFoundError:
        return "it has no manifest" if root.exists() else "missing"
    except (ValueError, KeyError, OSError):
        return "its manifest is unreadable"
    for rel, size in recorded.items():
        path = root / rel
        if size == -1:
            if not path.is_symlink():
                return f"{rel} is no longer a symlink"
        elif not path.is_file() or path.is_symlink() or path.stat().st_size != size:
            return f"{rel} is missing or has another size"
    if not deep:
        return None
    try:
        digests: dict[str, str] = json.loads((root / _DIGESTS).read_text())
    except (FileNotFoundError, ValueError):
        # Unpacked by an older version that recorded sizes only: record the digests from now on.
        _write_json(root / _DIGESTS, _digests(root, recorded))
        return None
    for rel, expected in digests.items():
        if sha256_file(root / rel) != expected:
            return f"{rel} differs from what was unpacked (sha256)"
    return None


def _intact(root: Path) -> str | None:
    """Check `root` against its manifest: every file's digest once per process, sizes on later calls."""
    problem = _damage(root, deep=root not in _VERIFIED)
    if problem is None:
        _VERIFIED.add(root)
    return problem


def materialize(packages: PackageSet, fetcher: Fetcher, root: Path) -> Path:
    """Unpack `packages` into ``root/<kind>-<id>`` once; later calls verify and reuse it.

    A damaged directory (a file missing, resized or changed in place) is detected through its manifest of
    sha256 digests and unpacked again. An unpack that was killed leaves a staging directory, removed by the
    next run.
    """
    final = root / f"{packages.kind}-{packages.id}"
    if _intact(final) is None:
        return final
    root.mkdir(parents=True, exist_ok=True)
    with fetcher.store.locked(f"materialize-{packages.kind}-{packages.id}"):
        problem = _intact(final)
        if problem is None:
            return final
        if final.exists():
            log.warn(f"{final} is damaged ({problem}); unpacking it again")
            shutil.rmtree(final)
        _remove_stale_staging(root)
        # Named after the id: under this lock, a leftover of the same name is an interrupted earlier unpack.
        staging = root / f".{packages.kind}-{packages.id}{_STAGING_SUFFIX}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(mode=0o755)
        try:
            for pin in packages.packages:
                _unpack(fetcher.fetch(pin), staging, pin, packages)
            for name in packages.finish:
                FINISHERS[name](staging)
            _link_tools(staging, packages)
            files = _manifest(staging)
            _write_json(staging / _DIGESTS, _digests(staging, files))
            _write_json(staging / _MARKER, {"id": packages.id, "files": files})
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    _VERIFIED.add(final)
    return final


def _unpack(path: Path, staging: Path, pin: Pin, packages: PackageSet) -> None:
    """Unpack one package: a zip file (a wheel) as selected by ``packages.extract``, else a .deb."""
    if pin.filename.endswith((".whl", ".zip")):
        extract_zip(path, staging, select=packages.extract, label=pin.filename)
    elif packages.extract:
        raise ToolchainError(f"{pin.filename}: only zip packages (wheels) can be unpacked selectively")
    else:
        extract_deb(path, staging, label=pin.filename)


def _remove_stale_staging(root: Path) -> None:
    """Remove staging directories left by unpacks killed long ago (their names end in ``.staging``, or are the
    random names older versions used)."""
    now = time.time()
    for entry in root.iterdir():
        if not entry.name.startswith(".") or not entry.is_dir():
            continue
        if now - entry.stat().st_mtime > _STALE_STAGING_SECONDS:
            log.warn(f"removing {entry}, left by an interrupted toolchain unpack")
            shutil.rmtree(entry, ignore_errors=True)


def _link_tools(root: Path, packages: PackageSet) -> None:
    """Create ``bin/<tool>`` launchers so the sandbox PATH finds exactly the pinned programs.

    Each launcher sets LD_LIBRARY_PATH for its program only (the pinned libraries it loads), so
    nothing else in the sandbox, and nothing a build records, sees the toolchain's library path.
    """
    if not packages.tools:
        return
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    lib_path = ":".join(f"{packages.mount}/{d}" for d in packages.lib_dirs)
    for name, program in packages.tools:
        if not (root / packages.tools_dir / program).exists():
            raise ToolchainError(f"pinned {packages.kind} packages lack {packages.tools_dir}/{program}")
        launcher = bin_dir / name
        target = f"{packages.mount}/{packages.tools_dir}/{program}"
        launcher.write_text(f'#!/bin/sh\nLD_LIBRARY_PATH={lib_path} exec {target} "$@"\n')
        launcher.chmod(0o755)
    config = dict(packages.launcher_config)
    for triple in packages.target_triples:
        flags = f"--target={triple} --sysroot={SYSROOT_MOUNT}"
        if triple in config:
            (bin_dir / f"{triple}.cfg").write_text("".join(f"{option}\n" for option in config[triple]))
            flags += f" --config={packages.mount}/bin/{triple}.cfg"
        for driver in ("clang", "clang++"):
            launcher = bin_dir / f"{triple}-{driver}"
            launcher.write_text(f'#!/bin/sh\nexec {COMPILER_MOUNT}/bin/{driver} {flags} "$@"\n')
            launcher.chmod(0o755)


@dataclass(frozen=True)
class Materialized:
    """Host directories of a materialized Linux toolchain.

    Attributes:
        compiler: (Path) the unpacked compiler packages with their ``bin/`` launchers.
        sysroot: (Path | None) the unpacked sysroot, when it is made of pinned packages.
        emulators: (dict[str, Path]) guest architecture -> the emulator program that runs it on this host.
        guest: (Path | None) the unpacked runtime libraries the emulator runs the target's programs with.
        tools: (dict[str, Path]) where the sandbox shows each used tool pin -> the directory it is unpacked in.
    """

    compiler: Path
    sysroot: Path | None
    emulators: dict[str, Path] = field(default_factory=dict)
    guest: Path | None = None
    tools: dict[str, Path] = field(default_factory=dict)


def materialize_toolchain(toolchain: Toolchain, fetcher: Fetcher, root: Path) -> Materialized:
    """Fetch and unpack the compiler, sysroot, emulator (and its guest libraries) and used tools of a Linux
    toolchain (idempotent)."""
    if toolchain.compiler is None:
        raise ToolchainError(f"{toolchain.triple} has no compiler to materialize on {toolchain.build_host}")
    compiler = materialize(toolchain.compiler.packages, fetcher, root)
    sysroot = materialize(toolchain.sysroot, fetcher, root) if toolchain.sysroot is not None else None
    emulators: dict[str, Path] = {}
    guest = None
    if toolchain.emulator is not None:
        unpacked = materialize(toolchain.emulator.packages, fetcher, root)
        emulators = {arch: unpacked / program for arch, program in toolchain.emulator.programs.items()}
        guest = materialize(toolchain.guest, fetcher, root) if toolchain.guest is not None else None
    tools = {tool.mount: materialize(tool.packages, fetcher, root) for tool in toolchain.tools}
    return Materialized(compiler=compiler, sysroot=sysroot, emulators=emulators, guest=guest, tools=tools)


def check_xcode(toolchain: Toolchain) -> None:
    """On macOS, verify the host's Xcode, its clang and its macOS SDK are the pinned versions (asking ``xcrun``,
    which answers for the Xcode that ``xcode-select`` or ``DEVELOPER_DIR`` chose)."""
    assert toolchain.xcode is not None
    pinned = toolchain.xcode
    select = f"select Xcode {pinned['xcode_version']} with xcode-select (or DEVELOPER_DIR)"
    try:
        xcode = _xcrun("xcodebuild", "-version").splitlines()[0].removeprefix("Xcode").strip()
        sdk = _xcrun("--sdk", "macosx", "--show-sdk-version").strip()
        clang = _xcrun("clang", "--version")
    except (OSError, subprocess.CalledProcessError, IndexError):
        raise ToolchainError(
            "xcrun failed: Xcode is not installed (the command line tools alone are not enough)",
            hint=f"install Xcode {pinned['xcode_version']} and {select}",
        ) from None
    if xcode != pinned["xcode_version"]:
        raise ToolchainError(f"Xcode {xcode} found, {pinned['xcode_version']} pinned", hint=select)
    if sdk != pinned["sdk_version"]:
        raise ToolchainError(f"macOS SDK {sdk} found, {pinned['sdk_version']} pinned", hint=select)
    if pinned["clang_version"] not in clang:
        found = clang.splitlines()[0] if clang.strip() else "nothing"
        raise ToolchainError(f"xcrun clang is {found!r}, {pinned['clang_version']!r} pinned", hint=select)


def _xcrun(*args: str) -> str:
    """What ``xcrun ARGS`` prints (it runs the selected Xcode's tool)."""
    return subprocess.run(["xcrun", *args], capture_output=True, text=True, check=True).stdout
