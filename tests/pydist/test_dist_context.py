"""The distribution steps' cache key is derived from the code they run, not from a hand-kept list: touching any
module of ``site_scons/`` they import (directly or not) changes it; touching an unrelated file does not.

Each key is computed by a fresh interpreter in a copy of the repository, exactly as SConstruct would compute
it there (the paths come from the copied modules' own ``__file__``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, copy_repository
from hermetic.code_identity import module_closure
from pydist import dist_context

KEY_SCRIPT = """
import json
from hermetic.code_identity import digest_of
from pydist import dist_context
files = [{"path": p, "sha256": d} for p, d in dist_context.rule_code()]
print(json.dumps({"code": digest_of(dist_context.rule_code()), "files": files}))
"""


def rule_key(repo: Path) -> dict[str, object]:
    """What the dist steps' identity and in-process records say about the code, computed in `repo`."""
    result = subprocess.run(
        [sys.executable, "-c", KEY_SCRIPT],
        cwd=repo,
        env={"PYTHONPATH": str(repo / "site_scons"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repository(tmp_path_factory.mktemp("keys") / "repo")


@pytest.fixture(scope="module")
def untouched(repo: Path) -> dict[str, object]:
    return rule_key(repo)


def relative(files: list[Path]) -> set[str]:
    return {p.relative_to(REPO_ROOT).as_posix() for p in files}


def test_the_closure_holds_the_modules_the_old_list_missed() -> None:
    files = relative(dist_context.rule_code_files())
    assert {
        "site_scons/pydist/buildpaths.py",
        "site_scons/pydist/elfinfo.py",
        "site_scons/hermetic/archive_extract.py",
        "site_scons/hermetic/archive_pack.py",
        "site_scons/hermetic/archive_read.py",
        "site_scons/hermetic/content_store.py",
        "site_scons/pydist/distribution.py",
        "site_scons/pydist/dist_graph.py",
        "site_scons/pydist/dist_steps.py",
        "site_scons/pydist/archive_actions.py",
        "site_scons/pydist/platforms/linux.py",
        "site_scons/hermetic/code_identity.py",
        "site_scons/pydist/sbom.py",
        "site_scons/pydist/provenance.py",
        "site_scons/pydist/validate/fips.py",
        "schema/python-json.schema.json",
        "site_scons/pydist/in_sandbox/runtime_tests.py",
    } <= files
    # The graph that declares the steps, the command line and the tests shape none of their outputs.
    assert not {"site_scons/pydist/graph.py", "site_scons/pydist/__main__.py", "SConstruct"} & files
    assert not [f for f in files if f.startswith("tests/")]


def test_every_repository_module_really_loaded_is_in_the_closure() -> None:
    script = (
        "import sys, json; import pydist.dist_graph; "
        "print(json.dumps(sorted(m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(REPO_ROOT / "site_scons"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    site_scons = str(REPO_ROOT / "site_scons") + "/"
    loaded = {Path(f) for f in json.loads(result.stdout) if f.startswith(site_scons)}
    assert len(loaded) > 20
    assert loaded <= set(dist_context.rule_code_files())


def test_relative_and_lazy_imports_are_followed(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "root.py").write_text("from .sub import leaf\n\ndef later():\n    import pkg.lazy\n")
    (package / "sub" / "leaf.py").write_text("from ..helper import x\nimport json\n")
    (package / "helper.py").write_text("x = 1\n")
    (package / "lazy.py").write_text("")
    (package / "unused.py").write_text("")
    found = {p.relative_to(tmp_path).as_posix() for p in module_closure(["pkg.root"], tmp_path)}
    assert found == {
        "pkg/__init__.py",
        "pkg/root.py",
        "pkg/sub/__init__.py",
        "pkg/sub/leaf.py",
        "pkg/helper.py",
        "pkg/lazy.py",
    }


@pytest.mark.parametrize(
    "path",
    [
        "site_scons/pydist/buildpaths.py",
        "site_scons/pydist/elfinfo.py",
        "site_scons/hermetic/archive_pack.py",
        "site_scons/pydist/validate/elf.py",
        "schema/python-json.schema.json",
    ],
)
def test_touching_a_file_the_steps_depend_on_changes_the_key(
    repo: Path, untouched: dict[str, object], path: str
) -> None:
    before = untouched
    original = (repo / path).read_bytes()
    try:
        (repo / path).write_bytes(original + (b"\n" if path.endswith(".json") else b"\n# touched\n"))
        after = rule_key(repo)
    finally:
        (repo / path).write_bytes(original)
    assert after["code"] != before["code"]
    changed = [f["path"] for f in after["files"] if f not in before["files"]]  # type: ignore[attr-defined]
    assert changed == [path]


@pytest.mark.parametrize(
    "path", ["tests/pydist/test_distribution.py", "site_scons/pydist/graph.py", "benchmarks/scons_run.py"]
)
def test_touching_an_unrelated_file_keeps_the_key(repo: Path, untouched: dict[str, object], path: str) -> None:
    before = untouched
    original = (repo / path).read_bytes()
    try:
        (repo / path).write_bytes(original + b"\n# touched\n")
        assert rule_key(repo) == before
    finally:
        (repo / path).write_bytes(original)
