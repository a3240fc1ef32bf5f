"""The adapter between hermetic actions and SCons: signatures, caching, named tasks, error reporting.

Each action becomes one SCons target whose sources are a ``Value`` node holding the action's canonical
description and the artifacts of its dependencies. So the SCons build signature (and with it the CacheDir
key) changes exactly when the action key or a dependency's content changes.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import SCons.Action
import SCons.Errors
import SCons.Script

from hermetic.action import Action, ActionRunner
from hermetic.errors import ConfigError, HermeticError

# target path -> (action, runner); filled while the graph is declared, read when SCons runs a target.
_REGISTRY: dict[str, tuple[Action, ActionRunner]] = {}
_TASKS: dict[str, Callable[[], None]] = {}
# first target path -> in-process step (targets, sources)
_FUNCTIONS: dict[str, Callable[[list[Path], list[Path]], None]] = {}


def _execute_action(target: list[Any], source: list[Any], env: Any) -> int:
    # A fixed trampoline: SCons hashes a function action's code into the signature, so the real work
    # (whose key is explicit) is looked up instead of being referenced from here.
    node = target[0]
    action, runner = _REGISTRY[node.get_abspath()]
    deps = [Path(s.get_abspath()) for s in source[1:]]
    try:
        runner.run(action, Path(node.get_abspath()), deps)
    except HermeticError as e:
        raise SCons.Errors.BuildError(node=node, errstr=e.one_line(), exitstatus=e.exit_code) from None
    return 0


def _execute_task(target: list[Any], source: list[Any], env: Any) -> int:
    node = target[0]
    try:
        _TASKS[str(node)]()
    except HermeticError as e:
        raise SCons.Errors.BuildError(node=node, errstr=e.one_line(), exitstatus=e.exit_code) from None
    return 0


def _execute_function(target: list[Any], source: list[Any], env: Any) -> int:
    node = target[0]
    work = _FUNCTIONS[node.get_abspath()]
    try:
        work([Path(t.get_abspath()) for t in target], [Path(s.get_abspath()) for s in source[1:]])
    except HermeticError as e:
        raise SCons.Errors.BuildError(node=node, errstr=e.one_line(), exitstatus=e.exit_code) from None
    return 0


_ACTION = SCons.Action.Action(_execute_action, strfunction=None)
_TASK = SCons.Action.Action(_execute_task, strfunction=None)
_FUNCTION = SCons.Action.Action(_execute_function, strfunction=None)


def declare_action(env: Any, action: Action, runner: ActionRunner, artifact: str, deps: Sequence[Any]) -> Any:
    """Declare the SCons target `artifact`, built by running `action` after `deps` exist."""
    key = env.Value(action.canonical_json())
    [node] = env.Command(artifact, [key, *deps], _ACTION)
    _REGISTRY[node.get_abspath()] = (action, runner)
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
    return list(nodes)


def declare_task(env: Any, name: str, work: Callable[[], None], help_text: str) -> Any:
    """A named target that always runs `work` (e.g. ``scons fetch``); it produces nothing to cache."""
    alias = env.Alias(name, [], _TASK)
    env.AlwaysBuild(alias)
    _TASKS[name] = work
    return alias


_HELD_LOCKS: list[Any] = []


def lock_build_dir(build_dir: Path) -> None:
    """Hold an exclusive lock on `build_dir` for this process: two builds never share a work tree."""
    build_dir.mkdir(parents=True, exist_ok=True)
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
