"""The actions `scons` would declare for one configuration, without running anything."""

from __future__ import annotations

from pathlib import Path

import SCons.Environment

from hermetic import scons_glue
from hermetic.action import Action
from pydist import graph, settings


def declared_actions(
    tmp_path: Path, tuning_value: str, target: str = "x86_64-unknown-linux-gnu", py: str = "3.11.2"
) -> dict[str, Action]:
    """Every sandboxed action of a pgo+lto build of `py` for `target` with ``tuning=`tuning_value```, by name."""
    scons_glue._REGISTRY.clear()
    env = SCons.Environment.Environment(ENV={}, tools=[])
    config = settings.resolve(
        {
            "target": target,
            "py": py,
            "options": "pgo+lto",
            "tuning": tuning_value,
            "build_dir": str(tmp_path / f"build-{target}-{tuning_value}"),
            "dist_dir": str(tmp_path / f"dist-{target}-{tuning_value}"),
            "tag": "t",
        }
    )
    graph.declare(env, config, checking_host=False, build_host="x86_64-linux")
    return {action.name: action for action, _runner in scons_glue._REGISTRY.values()}
