"""The actions `scons` would declare for one configuration, without running anything."""

from __future__ import annotations

import hashlib
from pathlib import Path

import SCons.Environment

from hermetic import scons_glue
from hermetic.action import Action
from pydist import graph, settings


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
