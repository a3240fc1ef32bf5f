"""The actions and distribution steps `scons` would declare for one configuration, without running anything."""

from __future__ import annotations

import hashlib
from pathlib import Path

import SCons.Environment

from hermetic import scons_glue
from hermetic.action import Action
from pydist import graph, settings
from pydist.dist_steps import DistSteps


def declared_actions(
    tmp_path: Path,
    tuning_value: str,
    target: str = "x86_64-unknown-linux-gnu",
    py: str = "3.11.2",
    build_host: str = "x86_64-linux",
    **variables: str,
) -> dict[str, Action]:
    """Every sandboxed action of a pgo+lto build of `py` for `target` with ``tuning=`tuning_value``` (and any
    other command-line `variables`) on `build_host`, by name."""
    scons_glue._REGISTRY.clear()
    # One build directory per configuration: SCons refuses two ways to build one file.
    name = hashlib.sha256(repr((target, py, build_host, tuning_value, sorted(variables.items()))).encode()).hexdigest()[
        :12
    ]
    env = SCons.Environment.Environment(ENV={}, tools=[])
    config = settings.resolve(
        {
            "target": target,
            "py": py,
            "options": "pgo+lto",
            "tuning": tuning_value,
            "build_dir": str(tmp_path / f"build-{name}"),
            "dist_dir": str(tmp_path / f"dist-{name}"),
            "tag": "t",
            **variables,
        }
    )
    graph.declare(env, config, checking_host=False, build_host=build_host)
    return {action.name: action for action, _runner in scons_glue._REGISTRY.values()}


def declared_build(tmp_path: Path, **arguments: str) -> tuple[dict[str, Action], list[DistSteps]]:
    """The actions (by name) and distribution steps of ``scons`` with `arguments` (py=3.13 noopt by default)."""
    scons_glue._REGISTRY.clear()
    scons_glue._FUNCTIONS.clear()
    env = SCons.Environment.Environment(ENV={}, tools=[])
    # SCons's nodes are global: each declaration gets directories of its own.
    where = tmp_path / "-".join(f"{k}={v}" for k, v in sorted(arguments.items())).replace("/", "_")
    config = settings.resolve(
        {
            "py": "3.13",
            "options": "noopt",
            "build_dir": str(where / "build"),
            "dist_dir": str(where / "dist"),
            "tag": "t",
            **arguments,
        }
    )
    build_host = "aarch64-macos" if "apple" in arguments.get("target", "") else "x86_64-linux"
    graph.declare(env, config, checking_host=False, build_host=build_host)
    actions = {action.name: action for action, _runner in scons_glue._REGISTRY.values()}
    steps: list[DistSteps] = []
    for work in scons_glue._FUNCTIONS.values():
        owner = work.__self__  # type: ignore[attr-defined]
        if not any(owner is seen for seen in steps):
            steps.append(owner)
    return actions, steps
