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


def artifact_with_profile(path: Path) -> Path:
    """A CPython artifact holding a kept merged profile, as a trained pgo build makes it."""
    tree = path.parent / f"{path.name}.tree"
    (tree / "build").mkdir(parents=True)
    (tree / "build" / "pgo.profdata").write_bytes(b"\xfflprofi")
    pack_tree(tree, path, mtime=0, prefix="python", compression="zst")
    return path


@pytest.mark.parametrize(
    ("on", "reference"),
    [("default", ",".join(tuning.DEFAULT)), ("none", "none")],
)
def test_levers_are_built_on_top_of_the_reference_from_its_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, on: str, reference: str
) -> None:
    calls: list[tuple[str, Path | None]] = []

    def fake_build(py: str, lever: str, jobs: int, profile: Path | None = None) -> tuple[Path, str]:
        calls.append((lever, profile))
        return artifact_with_profile(tmp_path / f"built-{len(calls)}.tar.zst"), "1m00s"

    monkeypatch.setattr(levers, "build", fake_build)
    monkeypatch.setattr(levers, "REPO", tmp_path)
    args = levers.parse_args(["--on", on, "--levers", "full-lto,o3+pgo-extended", "--build-only"])
    built = levers.build_all(args, tmp_path / "keep")
    base = list(tuning.DEFAULT) if on == "default" else []
    profile = tmp_path / "keep" / "pgo.profdata"
    assert calls == [
        (reference, None),
        (",".join([*base, "full-lto"]), profile),
        # A training lever trains its own profile; a lever the reference has is not named twice.
        (",".join([*base, *(["o3"] if "o3" not in base else []), "pgo-extended"]), None),
    ]
    assert list(built) == [on, "full-lto", "o3+pgo-extended"]
    assert all(path.is_file() for path in built.values()) and profile.read_bytes() == b"\xfflprofi"


def test_the_default_lever_list_leaves_out_what_the_reference_has() -> None:
    on_default = levers.parse_args([]).levers
    assert not set(tuning.DEFAULT) & set(on_default) and "full-lto" in on_default
    assert levers.parse_args(["--on", "none"]).levers == list(tuning.LEVERS)
    with pytest.raises(SystemExit):
        levers.parse_args(["--levers", "o3,warp-speed"])
