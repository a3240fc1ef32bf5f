"""The adapter between hermetic actions and SCons: signatures, caching, named tasks, error reporting.

Each action becomes one SCons target whose sources are a ``Value`` node holding the action's canonical
description and the artifacts of its dependencies. So the SCons build signature (and with it the CacheDir
key) changes exactly when the action key or a dependency's content changes.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import SCons.Action
import SCons.Errors
import SCons.SConsign
import SCons.Script
import SCons.Taskmaster.Job

from hermetic import cancel, log, scratch
from hermetic.action import Action, ActionRunner
from hermetic.content_store import sha256_file
from hermetic.errors import ConfigError, HermeticError

# target path -> (action, runner); filled while the graph is declared, read when SCons runs a target.
_REGISTRY: dict[str, tuple[Action, ActionRunner]] = {}
_TASKS: dict[str, Callable[[], None]] = {}
# first target path -> in-process step (targets, sources)
_FUNCTIONS: dict[str, Callable[[list[Path], list[Path]], None]] = {}
# Every file target declared, for the check of what earlier builds left (remove_damaged_outputs).
_OUTPUTS: list[Any] = []


class _KeptExitStatus(SCons.Errors.BuildError):
    """A BuildError whose exit status survives SCons (which resets every plain BuildError's to 2), so a
    failed build exits with the documented code of its HermeticError."""

    @property
    def exitstatus(self) -> int:
        return self._kept_exit_status

    @exitstatus.setter
    def exitstatus(self, value: int) -> None:
        if not hasattr(self, "_kept_exit_status"):
            self._kept_exit_status = value


def _reported(node: Any, work: Callable[[], None]) -> int:
    """Run `work` for `node`; a HermeticError (or a host OSError) becomes one line and its exit code."""
    try:
        cancel.check(f"waiting to build {node}")
        work()
    except HermeticError as e:
        raise _KeptExitStatus(node=node, errstr=e.one_line(), exitstatus=e.exit_code) from None
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise _KeptExitStatus(node=node, errstr=f"{e.strerror or e}{where}", exitstatus=1) from None
    return 0


# The trampolines look the real work (whose key is explicit) up by target instead of referencing it.
def _execute_action(target: list[Any], source: list[Any], env: Any) -> int:
    node = target[0]
    action, runner = _REGISTRY[node.get_abspath()]
    deps = [Path(s.get_abspath()) for s in source[1:]]
    return _reported(node, lambda: runner.run(action, Path(node.get_abspath()), deps))


def _execute_task(target: list[Any], source: list[Any], env: Any) -> int:
    return _reported(target[0], _TASKS[str(target[0])])


def _execute_function(target: list[Any], source: list[Any], env: Any) -> int:
    work = _FUNCTIONS[target[0].get_abspath()]
    paths = [Path(t.get_abspath()) for t in target], [Path(s.get_abspath()) for s in source[1:]]
    return _reported(target[0], lambda: work(*paths))


def _planned(target: list[Any], source: list[Any], env: Any) -> str | None:
    # Progress lines come from the work itself; only a dry run (scons -n) says what would run, and why.
    if not SCons.Script.GetOption("no_exec"):
        return None
    registered = _REGISTRY.get(target[0].get_abspath())
    if registered is not None:
        action = registered[0]
        return f"would build {action.label}: action key {action.key()[:16]}, into {target[0]}"
    return f"would make {', '.join(str(t) for t in target)}"


def _trampoline(function: Callable[[list[Any], list[Any], Any], int], name: str) -> Any:
    """An SCons action calling `function`, whose signature is a fixed name instead of the function's code: the
    work's own key (a Value node source) says what shapes the output, so editing this glue never invalidates
    built artifacts or cache entries."""
    action = SCons.Action.Action(function, strfunction=_planned)
    action.funccontents = f"hermetic-trampoline-1:{name}".encode()
    return action


_ACTION = _trampoline(_execute_action, "action")
_TASK = _trampoline(_execute_task, "task")
_FUNCTION = _trampoline(_execute_function, "function")


def declare_action(env: Any, action: Action, runner: ActionRunner, artifact: str, deps: Sequence[Any]) -> Any:
    """Declare the SCons target `artifact`, built by running `action` after `deps` exist."""
    key = env.Value(action.canonical_json())
    [node] = env.Command(artifact, [key, *deps], _ACTION)
    _REGISTRY[node.get_abspath()] = (action, runner)
    _OUTPUTS.append(node)
    return node


def declare_function(
    env: Any,
    targets: Sequence[str],
    sources: Sequence[Any],
    description: dict[str, Any],
    work: Callable[[list[Path], list[Path]], None],
) -> list[Any]:
    """Declare `targets`, made in-process by ``work(target_paths, source_paths)`` from `sources`.

    `description` says everything besides the sources' contents that shapes the targets (the rule's
    version, its settings); it is part of the signature like an action key.
    """
    key = env.Value(json.dumps(description, sort_keys=True, separators=(",", ":")))
    nodes = env.Command(list(targets), [key, *sources], _FUNCTION)
    _FUNCTIONS[nodes[0].get_abspath()] = work
    _OUTPUTS.extend(nodes)
    return list(nodes)


def remove_damaged_outputs() -> list[Path]:
    """Remove every declared output whose bytes are no longer those recorded when it was built; return them.

    SCons trusts a target whose inputs did not change, even if the file itself was modified or damaged since,
    and then feeds it to every consumer. Here a target whose size or mtime differ from SCons's record is
    hashed; when its sha256 differs from the recorded one it is removed, so this build makes it again (or
    restores it from the verified cache) before anything consumes it.
    """
    removed = []
    for node in _OUTPUTS:
        path = Path(node.get_abspath())
        # Command() targets start as Entry nodes, which have no stored info until known to be files.
        stored = node.disambiguate().get_stored_info() if path.is_file() else None
        recorded = getattr(getattr(stored, "ninfo", None), "csig", None)
        if stored is None or recorded is None:  # nothing built here yet, or no record: SCons builds it anyway
            continue
        if _same_stat(path, stored.ninfo) or sha256_file(path) == recorded:
            continue
        log.warn(f"{path} changed since it was built (its sha256 is not the recorded one); removed, making it again")
        path.unlink()
        removed.append(path)
    return removed


def remove_leftovers() -> list[Path]:
    """Remove the temporary files and directories a killed build left beside the declared outputs (see
    :mod:`hermetic.scratch`); call it while holding the build directory's lock. Returns what was removed."""
    removed = scratch.remove_leftovers(Path(node.get_abspath()) for node in _OUTPUTS)
    if removed:
        shown = ", ".join(p.name for p in removed[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
        log.warn(f"removed {len(removed)} temporary file(s) left by an interrupted build: {shown}")
    return removed


def _same_stat(path: Path, ninfo: Any) -> bool:
    st = path.stat()
    return st.st_size == getattr(ninfo, "size", None) and int(st.st_mtime) == getattr(ninfo, "timestamp", None)


def declare_task(env: Any, name: str, work: Callable[[], None], help_text: str) -> Any:
    """A named target that always runs `work` (e.g. ``scons fetch``); it produces nothing to cache."""
    alias = env.Alias(name, [], _TASK)
    env.AlwaysBuild(alias)
    _TASKS[name] = work
    return alias


_HELD_LOCKS: list[Any] = []


def require_writable(directory: Path, variable: str) -> None:
    """Create `directory` if needed and prove it writable; otherwise one line naming the variable to change."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        raise ConfigError(
            f"{variable}={directory} is not usable: {e.strerror or e} ({directory.resolve()})",
            hint=f"make it writable, or pass {variable}= a writable directory",
        ) from None


def lock_build_dir(build_dir: Path) -> None:
    """Hold an exclusive lock on `build_dir` for this process: two builds never share a work tree."""
    require_writable(build_dir, "build_dir")
    # Deliberately not a context manager: the handle (and the lock) live until the process exits.
    handle = open(build_dir / ".lock", "a+")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"{build_dir} is in use by a running build ({holder})",
            hint="wait for it to finish, or pass another build_dir=",
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    _HELD_LOCKS.append(handle)
    atexit.register(_release, handle)


def _release(handle: Any) -> None:
    # The lock itself ends with the process; emptying the file keeps a stale pid from misleading anyone.
    handle.seek(0)
    handle.truncate()
    handle.close()


def report_state_write_failures() -> None:
    """Turn a failure to save SCons's build state at the end (a full disk, usually the very error the build
    already reported) into one warning line instead of a traceback; the next build then redoes what it lost."""
    original = SCons.SConsign.write

    def write() -> None:
        try:
            original()
        except OSError as e:
            log.warn(f"could not save the build state ({e.strerror or e}); the next build will check everything again")

    SCons.SConsign.write = write


def handle_stop_requests() -> None:
    """Make SIGINT/SIGTERM/SIGHUP stop running steps at once, with one line saying what was interrupted.

    SCons installs its own handlers when the build starts; they only stop new tasks from starting, and
    replace the failing task's message with "Build interrupted.". Ours take over then: they record the
    request, the running step ends its processes and fails with CancelledError, and that failure stops SCons
    (a task that starts later fails at once). The exit status is 128 + the signal's number.
    """
    original = SCons.Taskmaster.Job.Jobs._setup_sig_handler

    def setup_then_take_over(jobs: Any) -> None:
        original(jobs)
        cancel.take_over_signals()

    SCons.Taskmaster.Job.Jobs._setup_sig_handler = setup_then_take_over


@contextmanager
def reporting() -> Iterator[None]:
    """Turn a HermeticError raised while the graph is read into one line and a non-zero exit."""
    try:
        yield
    except HermeticError as e:
        if os.environ.get("HERMETIC_DEBUG"):
            raise
        sys.stderr.write(f"scons: *** {e.one_line()}\n")
        SCons.Script.Exit(e.exit_code)
