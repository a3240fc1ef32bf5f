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
``/sysroot``            the pinned sysroot                               read-only
======================  ==============================================  ==========
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermetic import archive, log
from hermetic.archive import Compression, extract_tar, pack_tree
from hermetic.errors import ActionError
from hermetic.fetch import Fetcher, sha256_file
from hermetic.pins import Pin
from hermetic.sandbox import Bubblewrap, Mount, host_tools_identity
from hermetic.toolchain import COMPILER_MOUNT, SYSROOT_MOUNT, Toolchain, materialize_toolchain

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


@dataclass(frozen=True, kw_only=True)
class InputFile:
    """A file of the repository an action reads (a patch, a helper script), identified in action keys by
    its path in the repository and its sha256."""

    path: Path
    label: str

    @property
    def sha256(self) -> str:
        """Digest of the file."""
        return sha256_file(self.path)

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
            "sandbox": {"kind": "bubblewrap", "network": False},
            "env": dict(sorted(self.full_env().items())),
            "steps": [s.describe() for s in self.steps],
            "output": {
                "dir": self.output,
                "prefix": self.output_prefix,
                "compression": self.output_compression,
                "settings": archive.pinned_settings(),
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
    step: str = "preparing"
    log_path: Path | None = None

    def status(self) -> str:
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
        """Build `artifact` from `action`; on failure show the log's tail and raise ActionError."""
        progress = _Progress()
        with log.step(f"build {action.label}", progress.status):
            self._run(action, artifact, dep_artifacts, progress)

    def _run(self, action: Action, artifact: Path, dep_artifacts: Sequence[Path], progress: _Progress) -> None:
        work = self.work_root / action.name
        if work.exists():
            shutil.rmtree(work)
        dirs = {name: work / name for name in ("src", "out", "deps", "patches", "files", "tmp", "sandbox")}
        for path in dirs.values():
            path.mkdir(parents=True)
        self.log_root.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path(action)
        progress.log_path = log_file
        started = time.time()
        log_file.write_text(f"# {action.label}\n# action key {action.key()}\n")

        progress.step = "fetching inputs"
        toolchain = materialize_toolchain(action.toolchain, self.fetcher, self.toolchain_root)
        if action.source is not None:
            extract_tar(self.fetcher.fetch(action.source), dirs["src"], strip="auto")
        for index, patch in enumerate(action.patches):
            shutil.copyfile(patch.path, dirs["patches"] / f"{index:04d}-{patch.path.name}")
        for file in action.files:
            shutil.copy2(file.path, dirs["files"] / file.path.name)
        dep_digests = {}
        for dep in dep_artifacts:
            extract_tar(dep, dirs["deps"])
            dep_digests[dep.name] = sha256_file(dep)

        sandbox = Bubblewrap(dirs["sandbox"])
        mounts = [
            Mount(dirs["src"], SRC, writable=True),
            Mount(dirs["out"], OUT, writable=True),
            Mount(dirs["tmp"], TMP, writable=True),
            Mount(dirs["deps"], DEPS),
            Mount(dirs["patches"], PATCHES),
            Mount(dirs["files"], FILES),
            Mount(toolchain.compiler, COMPILER_MOUNT),
            Mount(toolchain.sysroot, SYSROOT_MOUNT),
        ]
        base_env = action.full_env()
        # Parallelism does not shape the output, so it stays out of the action key.
        base_env["MAKEFLAGS"] = f"-j{self.jobs}"

        for index, patch in enumerate(action.patches):
            progress.step = f"patch {patch.path.name}"
            name = f"{index:04d}-{patch.path.name}"
            argv = (
                "patch",
                "-p1",
                "--batch",
                "--forward",
                "--no-backup-if-mismatch",
                "-i",
                f"{PATCHES}/{name}",
            )
            rc = self._run_step(sandbox, argv, mounts, base_env, SRC, log_file)
            if rc != 0:
                self._fail(
                    action,
                    log_file,
                    work,
                    f"{patch.label} does not apply to {action.source and action.source.id}",
                    hint="refresh the patch against this version or drop it",
                )
        for step in action.steps:
            progress.step = step.name
            env = {**base_env, **step.env}
            rc = self._run_step(sandbox, step.argv, mounts, env, step.cwd, log_file)
            if rc != 0:
                self._fail(action, log_file, work, f"{action.label}: step '{step.name}' failed (exit code {rc})")

        progress.step = "packing"
        out_dir = dirs["out"] / Path(action.output).relative_to(OUT)
        if not out_dir.is_dir():
            self._fail(action, log_file, work, f"{action.label}: produced no {action.output}")
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
        with open(log_file, "a") as f:
            f.write(f"# finished in {time.time() - started:.1f}s -> {artifact.name}\n")
        shutil.rmtree(work)

    @staticmethod
    def _run_step(
        sandbox: Bubblewrap,
        argv: Sequence[str],
        mounts: Sequence[Mount],
        env: Mapping[str, str],
        cwd: str,
        log_file: Path,
    ) -> int:
        with open(log_file, "a") as f:
            f.write(f"\n$ {' '.join(argv)}\n")
        return sandbox.run(argv, mounts=mounts, env=env, cwd=cwd, log_file=log_file)

    def _fail(self, action: Action, log_file: Path, work: Path, message: str, hint: str | None = None) -> None:
        lines = log.tail(log_file, 25)
        log.say(f"---- last {len(lines)} lines of {log_file} ----")
        for line in lines:
            log.say(f"| {line}")
        log.say("----")
        if not self.keep_failed:
            shutil.rmtree(work, ignore_errors=True)
        kept = f"; its work tree is kept in {work}" if self.keep_failed else ""
        raise ActionError(message, hint=hint or f"full log: {log_file}{kept}")
