"""benchmarks/levers.py: the artifact it looks for is the one the build declares for each tuning= value."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from declared_graph import declared_actions

from conftest import REPO_ROOT
from hermetic.archive_pack import pack_tree

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import levers

from pydist import tuning


@pytest.mark.parametrize("lever", ["none", "o3", "bolt,o3", "no-frame-pointer"])
def test_the_artifact_name_is_the_declared_cpython_action(tmp_path: Path, lever: str) -> None:
    declared = declared_actions(tmp_path, lever)
    assert levers.artifact_name("3.11.2", lever) in declared


def test_naming_the_chosen_default_finds_the_default_artifact(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tuning, "DEFAULT", ("o3",))
    assert levers.artifact_name("3.11.2", "o3") == "cpython-3.11.2-pgo+lto" in declared_actions(tmp_path, "o3")
    assert levers.artifact_name("3.11.2", "none") == "cpython-3.11.2-pgo+lto-tuning-none"
    assert "cpython-3.11.2-pgo+lto-tuning-none" in declared_actions(tmp_path, "none")


def test_the_kept_profile_is_read_from_a_real_artifact(tmp_path: Path) -> None:
    tree = tmp_path / "out"
    (tree / "build").mkdir(parents=True)
    (tree / "build" / "pgo.profdata").write_bytes(b"\xfflprofi merged counts")
    (tree / "install").mkdir()
    artifact = tmp_path / "cpython-3.11.2-pgo+lto.tar.zst"
    pack_tree(tree, artifact, mtime=0, prefix="python", compression="zst")
    assert levers.kept_profile(artifact, tmp_path / "p").read_bytes() == b"\xfflprofi merged counts"
    (tree / "build" / "pgo.profdata").unlink()
    pack_tree(tree, artifact, mtime=0, prefix="python", compression="zst")
    with pytest.raises(SystemExit, match=r"holds no build/pgo\.profdata"):
        levers.kept_profile(artifact, tmp_path / "q")
