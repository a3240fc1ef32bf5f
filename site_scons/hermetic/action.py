"""Hermetic actions: an explicit, canonical description, and a runner that executes it in the sandbox.

An :class:`Action` says everything that shapes its output: the pinned source and patches, the toolchain
identity, the host tools, the environment and every step's argv. Its canonical JSON is hashed into the
*action key*, which the build graph feeds into the SCons signature, so a cache entry is reused exactly when
nothing relevant changed. The same description is stored inside the artifact for auditors.

Inside the sandbox every action sees the same paths:

======================  ==============================================  ==========
``/build/src``          the unpacked, patched source tree                read-write
``/build/out``          where the step installs; packed as the artifact  read-write
``/build/deps``         the artifacts of the dependencies, merged        read-only
``/build/patches``      the patches, in order                            read-only
``/build/files``        helper files from the repository (scripts)       read-only
``/build/tmp``          HOME and TMPDIR                                  read-write
``/toolchain``          the pinned compiler                              read-only
``/sysroot``            the sysroot (pinned packages, or an artifact)     read-only
``/guest``              the target's runtime libraries for the emulator  read-only
``/tools/<name>``       a pinned tool the action asks for (BOLT)         read-only
======================  ==============================================  ==========
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elftools.elf.enums import ENUM_E_MACHINE

from hermetic import cancel, failpoint, log
from hermetic.archive_extract import extract_tar
from hermetic.archive_pack import Compression, pack_tree, pinned_settings
from hermetic.content_store import sha256_file
from hermetic.errors import ActionError, HermeticError
from hermetic.fetch import Fetcher
from hermetic.pins import Pin
from hermetic.sandbox import Bubblewrap, Emulator, Mount, Sandbox, Unsandboxed, host_tools_identity
from hermetic.toolchain import (
    COMPILER_MOUNT,
    GUEST_MOUNT,
    SYSROOT_MOUNT,
    Materialized,
    Toolchain,
    materialize_toolchain,
)

# Bump when the runner changes in a way that can change outputs: part of every action key.
RUNNER_VERSION = 1

SRC = "/build/src"
OUT = "/build/out"
DEPS = "/build/deps"
PATCHES = "/build/patches"
FILES = "/build/files"
TMP = "/build/tmp"

# Where an artifact keeps the record of the action that produced it.
RECORD_DIR = ".hermetic"


@dataclass(frozen=True, kw_only=True)
class Step:
    """One command of an action.

    Attributes:
        name: (str) short label shown in progress and logs, e.g. ``configure``.
        argv: (tuple[str, ...]) the command, run without a shell unless it is ``sh -c``.
        cwd: (str) in-sandbox working directory.
        env: (Mapping[str, str]) additions to the action's environment for this step only.
    """

    name: str
    argv: tuple[str, ...]
    cwd: str = SRC
    env: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Canonical form for the action key."""
        return {
            "name": self.name,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "env": dict(sorted(self.env.items())),
        }


def sh(name: str, script: str) -> Step:
    """A step run by ``/bin/sh -c`` (for variable expansion and ``&&`` chains)."""
    return Step(name=name, argv=("/bin/sh", "-ec", script))


def bash(name: str, script: str) -> Step:
    """A step run by bash with errexit and pipefail (for scripts that need bash features)."""
    return Step(name=name, argv=("/bin/bash", "-eo", "pipefail", "-c", script))


def cmd(name: str, *argv: str, cwd: str | None = None) -> Step:
    """A step run directly, without a shell."""
    return Step(name=name, argv=argv) if cwd is None else Step(name=name, argv=argv, cwd=cwd)


@dataclass(frozen=True, kw_only=True)
class InputFile:
    """A file of the repository an action reads (a patch, a helper script), identified in action keys by
    its path in the repository and its sha256."""

    path: Path
    label: str
    # The file's name inside the sandbox's files directory (default: its own name).
    sandbox_name: str = ""

    @property
    def name_inside(self) -> str:
        """The file's name in the sandbox's files directory."""
        return self.sandbox_name or self.path.name

    @functools.cached_property
    def sha256(self) -> str:
        """Digest of the file when the key was first computed (the runner checks the file still has it)."""
        return sha256_file(self.path)

    def copy_to(self, dest: Path) -> None:
        """Copy the file for the sandbox, refusing one edited since the action's key was computed (it would
        be cached under a key that does not describe it)."""
        shutil.copy2(self.path, dest)
        if sha256_file(dest) != self.sha256:
            raise ActionError(
                f"{self.label} changed while the build was running", hint="run the build again to use the new version"
            )

    def describe(self) -> dict[str, str]:
        """Canonical form for the action key."""
        return {"path": self.label, "sha256": self.sha256}


# Patches are input files applied to the source tree in order.
Patch = InputFile


@dataclass(frozen=True, kw_only=True)
class Action:
    """Everything that determines one artifact.

    Attributes:
        name: (str) what is built, e.g. ``openssl-3.5.7``.
        rule: (str) the rule that made this action, e.g. ``library``.
        rule_version: (int) bumped by the rule when its recipe semantics change.
        target: (str) the target triple.
        source: (Pin | None) the pinned source tarball unpacked into ``/build/src``.
        patches: (tuple[Patch, ...]) applied in order with ``patch -p1``.
        files: (tuple[InputFile, ...]) shown read-only as ``/build/files/<name>``.
        deps: (tuple[str, ...]) names of the dependency artifacts merged into ``/build/deps``.
        toolchain: (Toolchain) the compiler and sysroot.
        env: (Mapping[str, str]) the complete environment of every step (plus per-step additions).
        steps: (tuple[Step, ...]) the commands.
        output: (str) the in-sandbox directory packed as the artifact.
        source_date_epoch: (int) the fixed timestamp used instead of "now".
        dep_mounts: (Mapping[str, tuple[str, str]]) dependencies shown at a directory of their own instead of
            merged into ``/build/deps``: name -> (a directory inside the artifact, where the sandbox shows it),
            e.g. a cross build's build Python at its configured prefix.
        tmpfs: (tuple[str, ...]) empty directories laid over paths of the sandbox (hiding what is under them).
        host_etc: (tuple[str, ...]) files of the host's /etc the sandbox's /etc gets (e.g. ``services``), for steps
            that run programs as a user would; build steps get none.
        host_compilers: (bool) the sandbox shows the host's compilers and headers instead of blocking them, for
            steps that run programs as a user's machine would (CPython's test suite); never for builds.
    """

    name: str
    rule: str
    rule_version: int
    target: str
    source: Pin | None
    patches: tuple[Patch, ...]
    deps: tuple[str, ...]
    toolchain: Toolchain
    env: Mapping[str, str]
    steps: tuple[Step, ...]
    output: str
    source_date_epoch: int
    files: tuple[InputFile, ...] = ()
    output_prefix: str = ""
    output_compression: Compression = "zst"
    record: bool = True
    dep_mounts: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    tmpfs: tuple[str, ...] = ()
    host_etc: tuple[str, ...] = ()
    host_compilers: bool = False

    @property
    def label(self) -> str:
        """How progress lines name this action."""
        return f"{self.name} ({self.target})"

    def full_env(self) -> dict[str, str]:
        """The environment every step starts from: fixed values, the toolchain's, then the rule's."""
        env = {
            "PATH": f"{self.toolchain.bin_path()}:/usr/bin:/bin",
            "LC_ALL": "C",
            "LANG": "C",
            "TZ": "UTC",
            "HOME": TMP,
            "TMPDIR": TMP,
            "USER": "build",
            "SOURCE_DATE_EPOCH": str(self.source_date_epoch),
            "PKG_CONFIG_LIBDIR": f"{DEPS}/lib/pkgconfig:{DEPS}/share/pkgconfig",
            "PKG_CONFIG_PATH": "",
        }
        env.update(self.toolchain.sandbox_env())
        env.update(self.env)
        return env

    def description(self) -> dict[str, Any]:
        """The canonical description of the action: no host paths, no times, nothing machine-specific."""
        return {
            "runner_version": RUNNER_VERSION,
            "rule": self.rule,
            "rule_version": self.rule_version,
            "name": self.name,
            "target": self.target,
            "source": self.source.identity() if self.source else None,
            "patches": [p.describe() for p in self.patches],
            "files": [f.describe() for f in self.files],
            "deps": list(self.deps),
            "toolchain": self.toolchain.identity(),
            "host_tools": host_tools_identity(),
            "sandbox": {"kind": self.toolchain.sandbox, "network": False},
            "env": dict(sorted(self.full_env().items())),
            "steps": [s.describe() for s in self.steps],
            **({"dep_mounts": {k: list(v) for k, v in sorted(self.dep_mounts.items())}} if self.dep_mounts else {}),
            **({"tmpfs": list(self.tmpfs)} if self.tmpfs else {}),
            **({"host_etc": list(self.host_etc)} if self.host_etc else {}),
            **({"host_compilers": True} if self.host_compilers else {}),
            "output": {
                "dir": self.output,
                "prefix": self.output_prefix,
                "compression": self.output_compression,
                "settings": pinned_settings(),
                "record": self.record,
            },
        }

    def canonical_json(self) -> str:
        """The description serialized canonically (sorted keys, no whitespace)."""
        return json.dumps(self.description(), sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        """The action key: sha256 of the canonical description."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


@dataclass
class _Progress:
    fetcher: Fetcher
    step: str = "preparing"
    log_path: Path | None = None

    def status(self) -> str:
        if self.step == "fetching inputs":
            return f"{self.step}: {self.fetcher.status() or 'unpacking'}"
        last = log.tail(self.log_path, 1) if self.log_path else []
        line = last[0].strip() if last else ""
        return f"{self.step}: {line[:100]}" if line else self.step


class ActionRunner:
    """Executes actions: prepares inputs, runs the steps sandboxed, packs the output atomically."""

    def __init__(
        self,
        *,
        fetcher: Fetcher,
        toolchain_root: Path,
        work_root: Path,
        log_root: Path,
        jobs: int,
        keep_failed: bool = True,
    ) -> None:
        self.fetcher = fetcher
        self.toolchain_root = toolchain_root
        self.work_root = work_root
        self.log_root = log_root
        self.jobs = jobs
        self.keep_failed = keep_failed

    def log_path(self, action: Action) -> Path:
        """Where the log of `action` is written."""
        return self.log_root / f"{action.name}.log"

    def run(self, action: Action, artifact: Path, dep_artifacts: Sequence[Path]) -> None:
        """Build `artifact` from `action`; on failure show the log's tail and raise ActionError.

        A stop request (SIGINT/SIGTERM/SIGHUP) ends the running step's process group within seconds and
        raises CancelledError; the work tree and the log are kept, and no artifact appears.
        """
        progress = _Progress(self.fetcher)
        with log.step(f"build {action.label}", progress.status):
            work = _WorkTree(self.work_root / action.name)
            try:
                self._run(action, artifact, dep_artifacts, work, progress)
            except OSError as e:
                raise _os_error(action, e, work.root) from None

    def _run(
        self, action: Action, artifact: Path, dep_artifacts: Sequence[Path], work: _WorkTree, progress: _Progress
    ) -> None:
        work.create()
        self.log_root.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path(action)
        progress.log_path = log_file
        started = time.time()
        log_file.write_text(f"# {action.label}\n# action key {action.key()}\n")

        progress.step = "fetching inputs"
        toolchain = None
        if action.toolchain.compiler is not None:
            toolchain = materialize_toolchain(action.toolchain, self.fetcher, self.toolchain_root)
        dep_digests = self._prepare_inputs(action, work, dep_artifacts)
        cancel.check(f"preparing {action.label}")
        sandbox = _sandbox(action.toolchain, work.sandbox, toolchain, action)
        mounts = work.mounts(toolchain)
        mounts += [Mount(work.mounted(name) / inner, target) for name, (inner, target) in action.dep_mounts.items()]
        mounts += [Mount(None, target) for target in action.tmpfs]
        base_env = action.full_env()
        # Parallelism does not shape the output, so it stays out of the action key.
        base_env["MAKEFLAGS"] = f"-j{self.jobs}"

        for index, patch in enumerate(action.patches):
            progress.step = f"patch {patch.path.name}"
            argv = ("patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-i", _patch_path(index, patch))
            rc = self._run_step(sandbox, argv, mounts, base_env, SRC, log_file)
            self._check_step(action, progress.step, rc, log_file, work)
            if rc != 0:
                self._fail(
                    action,
                    log_file,
                    work.root,
                    f"{patch.label} does not apply to {action.source and action.source.id}",
                    hint="refresh the patch against this version or drop it",
                )
        for step in action.steps:
            progress.step = step.name
            failpoint.reached(f"step {action.name} {step.name}")
            rc = self._run_step(sandbox, step.argv, mounts, {**base_env, **step.env}, step.cwd, log_file)
            self._check_step(action, step.name, rc, log_file, work)
            if rc != 0:
                message, hint = _step_failure(action, step.name, rc, log_file, work.root)
                self._fail(action, log_file, work.root, message, hint)

        progress.step = "packing"
        self._pack(action, artifact, work, dep_digests, sandbox, log_file)
        with open(log_file, "a") as f:
            f.write(f"# finished in {time.time() - started:.1f}s -> {artifact.name}\n")
        shutil.rmtree(work.root)

    def _prepare_inputs(self, action: Action, work: _WorkTree, dep_artifacts: Sequence[Path]) -> dict[str, str]:
        """Unpack the source and the dependencies, copy patches and helper files; return the deps' digests."""
        if action.source is not None:
            extract_tar(self.fetcher.fetch(action.source), work.src, strip="auto", label=action.source.filename)
        for index, patch in enumerate(action.patches):
            patch.copy_to(work.patches / Path(_patch_path(index, patch)).name)
        for file in action.files:
            file.copy_to(work.files / file.name_inside)
        dep_digests = {}
        # The artifacts come in the order of action.deps (the graph declares them so).
        for name, dep in zip(action.deps, dep_artifacts, strict=True):
            cancel.check(f"unpacking {dep.name} for {action.label}")
            extract_tar(dep, work.mounted(name) if name in action.dep_mounts else work.deps, label=str(dep))
            dep_digests[dep.name] = sha256_file(dep)
        return dep_digests

    def _pack(
        self,
        action: Action,
        artifact: Path,
        work: _WorkTree,
        dep_digests: dict[str, str],
        sandbox: Sandbox,
        log_file: Path,
    ) -> None:
        out_dir = work.out / Path(action.output).relative_to(OUT)
        if not out_dir.is_dir():
            self._fail(action, log_file, work.root, f"{action.label}: produced no {action.output}")
        if action.record:
            record = out_dir / RECORD_DIR / f"{action.name}.action.json"
            record.parent.mkdir(parents=True, exist_ok=True)
            facts = {
                "key": action.key(),
                "description": action.description(),
                "dep_artifacts": dep_digests,
                "sandbox": sandbox.version(),
            }
            record.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
        pack_tree(
            out_dir,
            artifact,
            mtime=action.source_date_epoch,
            prefix=action.output_prefix,
            compression=action.output_compression,
        )

    @staticmethod
    def _run_step(
        sandbox: Sandbox,
        argv: Sequence[str],
        mounts: Sequence[Mount],
        env: Mapping[str, str],
        cwd: str,
        log_file: Path,
    ) -> int:
        with open(log_file, "a") as f:
            f.write(f"\n$ {' '.join(argv)}\n")
        return sandbox.run(argv, mounts=mounts, env=env, cwd=cwd, log_file=log_file)

    @staticmethod
    def _check_step(action: Action, step: str, rc: int, log_file: Path, work: _WorkTree) -> None:
        """Raise CancelledError when the step ended because the build was asked to stop."""
        if not cancel.cancelled():
            return
        with open(log_file, "a") as f:
            f.write(f"\n# interrupted by {cancel.signal_name()} during '{step}' (exit status {rc})\n")
        raise cancel.stopped(
            f"{action.label}: interrupted by {cancel.signal_name()} during step '{step}'",
            hint=f"log: {log_file}; work tree kept in {work.root}",
        )

    def _fail(self, action: Action, log_file: Path, work: Path, message: str, hint: str | None = None) -> None:
        lines = log.tail(log_file, 25)
        log.say(f"---- last {len(lines)} lines of {log_file} ----")
        for line in lines:
            log.say(f"| {line}")
        log.say("----")
        if not self.keep_failed:
            shutil.rmtree(work, ignore_errors=True)
        kept = f"; its work tree is kept in {work}" if self.keep_failed else ""
        raise ActionError(message, hint=f"{hint or f'full log: {log_file}'}{kept}")


# How the tools of a step say that the disk filled up (strerror of ENOSPC and EDQUOT).
_DISK_FULL_SAYINGS = ("No space left on device", "Disk quota exceeded")


def _step_failure(action: Action, step: str, rc: int, log_file: Path, work: Path) -> tuple[str, str | None]:
    """The one line and hint for a step that exited `rc`: a full disk is named as such (the step's tools said so,
    or nothing is left where its work tree is), since the tool's own exit code says nothing about it."""
    try:
        said = any(saying in line for line in log.tail(log_file, 200) for saying in _DISK_FULL_SAYINGS)
        stat = shutil.disk_usage(work)
        full = said or stat.free < 64 * 1024
    except OSError:
        full = False
    if full:
        return (
            f"{action.label}: step '{step}' failed (exit code {rc}): no space left on the device holding {work}",
            f"free space there, or pass build_dir= on a larger file system; full log: {log_file}",
        )
    return f"{action.label}: step '{step}' failed (exit code {rc})", None


def _patch_path(index: int, patch: Patch) -> str:
    """Where the `index`-th patch is shown in the sandbox (numbered, so they apply in order)."""
    return f"{PATCHES}/{index:04d}-{patch.path.name}"


@dataclass(frozen=True)
class _WorkTree:
    """The host directories of one action's sandbox, under one root."""

    root: Path

    @property
    def src(self) -> Path:
        """Shown as /build/src."""
        return self.root / "src"

    @property
    def out(self) -> Path:
        """Shown as /build/out."""
        return self.root / "out"

    @property
    def deps(self) -> Path:
        """Shown as /build/deps."""
        return self.root / "deps"

    @property
    def patches(self) -> Path:
        """Shown as /build/patches."""
        return self.root / "patches"

    @property
    def files(self) -> Path:
        """Shown as /build/files."""
        return self.root / "files"

    @property
    def sandbox(self) -> Path:
        """The sandbox's own scratch files (generated /etc)."""
        return self.root / "sandbox"

    def mounted(self, dep: str) -> Path:
        """Where a dependency shown at a directory of its own is unpacked."""
        path = self.root / "mounted" / dep
        path.mkdir(parents=True, exist_ok=True)
        return path

    def create(self) -> None:
        """Start from empty directories (a failed or interrupted earlier run left its tree for inspection)."""
        if self.root.exists():
            shutil.rmtree(self.root)
        for name in _WORK_DIRS:
            (self.root / name).mkdir(parents=True)

    def mounts(self, toolchain: Materialized | None) -> list[Mount]:
        """What the sandbox shows, and where (the pinned compiler and sysroot, when the toolchain has them)."""
        mounts = [
            Mount(self.src, SRC, writable=True),
            Mount(self.out, OUT, writable=True),
            Mount(self.root / "tmp", TMP, writable=True),
            Mount(self.deps, DEPS),
            Mount(self.patches, PATCHES),
            Mount(self.files, FILES),
        ]
        if toolchain is not None:
            mounts.append(Mount(toolchain.compiler, COMPILER_MOUNT))
            if toolchain.sysroot is not None:
                mounts.append(Mount(toolchain.sysroot, SYSROOT_MOUNT))
            if toolchain.guest is not None:
                mounts.append(Mount(toolchain.guest, GUEST_MOUNT))
            mounts += [Mount(unpacked, mount) for mount, unpacked in sorted(toolchain.tools.items())]
        return mounts


def _sandbox(toolchain: Toolchain, scratch: Path, materialized: Materialized | None, action: Action) -> Sandbox:
    """The sandbox the toolchain's pin asks for; a foreign target's programs run under its emulators."""
    if toolchain.sandbox == "unsandboxed":
        return Unsandboxed(scratch)  # the host's own /etc and compilers are there already
    program = materialized.emulators.get(toolchain.arch) if materialized is not None else None
    emulators = []
    if program is not None:
        # The target's ELF machine (its toolchain file's [target], checked when the targets were read). The
        # emulator runs programs with the guest's libraries; a sysroot of pinned packages serves when there are none.
        machine = ENUM_E_MACHINE[toolchain.target["elf_machine"]]
        libraries = GUEST_MOUNT if materialized is not None and materialized.guest is not None else SYSROOT_MOUNT
        emulators = [Emulator(toolchain.arch, program, libraries, machine)]
    return Bubblewrap(scratch, emulators, host_etc=action.host_etc, host_compilers=action.host_compilers)


_WORK_DIRS = ("src", "out", "deps", "patches", "files", "tmp", "sandbox")


def _os_error(action: Action, error: OSError, work: Path) -> HermeticError:
    """One line for a host failure while preparing or packing an action (full disk, permissions)."""
    where = error.filename or work
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ActionError(
            f"{action.label}: no space left on the device holding {where}",
            hint="free space there, or pass build_dir= on a larger file system",
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ActionError(
            f"{action.label}: cannot write {where} ({error.strerror})",
            hint="make it writable, or pass build_dir= somewhere writable",
        )
    return ActionError(f"{action.label}: {error.strerror or error} ({where})", hint=f"work tree: {work}")
