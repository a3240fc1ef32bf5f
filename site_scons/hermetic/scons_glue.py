"""The adapter between hermetic actions and SCons: signatures, caching, named tasks, error reporting.

Each action becomes one SCons target whose sources are a ``Value`` node holding the action's canonical
description and the artifacts of its dependencies. So the SCons build signature (and with it the CacheDir
key) changes exactly when the action key or a dependency's content changes.
"""

from __future__ import annotations

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
from hermetic.errors import HermeticError

# target path -> (action, runner); filled while the graph is declared, read when SCons runs a target.
_REGISTRY: dict[str, tuple[Action, ActionRunner]] = {}
_TASKS: dict[str, Callable[[], None]] = {}


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


_ACTION = SCons.Action.Action(_execute_action, strfunction=None)
_TASK = SCons.Action.Action(_execute_task, strfunction=None)


def declare_action(env: Any, action: Action, runner: ActionRunner, artifact: str, deps: Sequence[Any]) -> Any:
    """Declare the SCons target `artifact`, built by running `action` after `deps` exist."""
    key = env.Value(action.canonical_json())
    [node] = env.Command(artifact, [key, *deps], _ACTION)
    _REGISTRY[node.get_abspath()] = (action, runner)
    return node


def declare_task(env: Any, name: str, work: Callable[[], None], help_text: str) -> Any:
    """A named target that always runs `work` (e.g. ``scons fetch``); it produces nothing to cache."""
    alias = env.Alias(name, [], _TASK)
    env.AlwaysBuild(alias)
    _TASKS[name] = work
    return alias


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
