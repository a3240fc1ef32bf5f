"""The sandboxed steps on a build's archives, as declared for a real configuration (nothing runs): the runtime
tests get every file they run, laid out as in the repository, and what the catalogue says of each library."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shlex
import subprocess
from pathlib import Path

import pytest
from declared_graph import declared_build

from hermetic.action import FILES, Action
from pydist import catalog
from pydist.archive_actions import (
    CHILD_PROGRAMS,
    RUNTIME_TESTS,
    RUNTIME_TESTS_DIR,
    library_version_facts,
    runtime_test_action,
)
from pydist.dist_context import RULE_DATA_FILES
from pydist.paths import RUNTIME_CHILDREN
from pydist.python_minors import MINORS


@pytest.fixture(scope="module")
def action(tmp_path_factory: pytest.TempPathFactory) -> Action:
    """The runtime tests of a py=3.13 noopt build for x86_64 Linux."""
    tmp_path = tmp_path_factory.mktemp("declared")
    _, [steps] = declared_build(tmp_path)
    return runtime_test_action(steps.ctx, tmp_path / "dist" / "x-install_only-t.tar.gz")


def step_script(action: Action, name: str) -> str:
    [step] = [step for step in action.steps if step.name == name]
    assert step.argv[:2] == ("/bin/sh", "-ec")
    return step.argv[2]


def test_every_child_program_is_an_input_of_the_runtime_tests_and_of_the_in_process_key(action: Action) -> None:
    children = sorted(RUNTIME_CHILDREN.glob("*.py"))
    assert len(children) > 10
    assert [file.path for file in CHILD_PROGRAMS] == children
    given = {file.path for file in action.files}
    assert set(children) <= given
    labels = {f"site_scons/pydist/in_sandbox/children/{path.name}" for path in children}
    assert {file.label for file in CHILD_PROGRAMS} == labels
    # The in-process steps record which runtime tests ran: the same files key them.
    assert set(children) <= set(RULE_DATA_FILES)


def test_the_sandbox_gets_each_file_under_its_own_name(action: Action) -> None:
    # The sandbox shows the action's files in one directory: two files of one name would be one.
    names = [file.name_inside for file in action.files]
    assert len(names) == len(set(names)), names


def test_the_runtime_tests_run_laid_out_as_in_the_repository(action: Action) -> None:
    names = [step.name for step in action.steps]
    assert names.index("lay out the runtime tests") < names.index("runtime tests")
    copies = [shlex.split(command) for command in step_script(action, "lay out the runtime tests").split(" && ")]
    assert copies[0] == ["mkdir", "-p", f"{RUNTIME_TESTS_DIR}/children"]
    assert copies[1] == ["cp", f"{FILES}/runtime_tests.py", f"{RUNTIME_TESTS_DIR}/"]
    children = [f"{FILES}/{file.name_inside}" for file in CHILD_PROGRAMS]
    assert copies[2] == ["cp", *children, f"{RUNTIME_TESTS_DIR}/children/"]
    argv = shlex.split(step_script(action, "runtime tests"))
    assert argv[:4] == ["/build/tmp/dist/python/bin/python3", "-E", "-s", f"{RUNTIME_TESTS_DIR}/runtime_tests.py"]


def test_laid_out_runtime_tests_finds_every_child_program(action: Action, tmp_path: Path) -> None:
    # The layout step, run for real on copies of the action's files (the sandbox's paths moved under tmp_path).
    files, program = tmp_path / "files", tmp_path / "program"
    files.mkdir()
    for file in (RUNTIME_TESTS, *CHILD_PROGRAMS):
        file.copy_to(files / file.name_inside)
    script = step_script(action, "lay out the runtime tests")
    script = script.replace(RUNTIME_TESTS_DIR, str(program)).replace(FILES, str(files))
    subprocess.run(["/bin/sh", "-ec", script], check=True)
    spec = importlib.util.spec_from_file_location("laid_out_runtime_tests", program / "runtime_tests.py")
    assert spec and spec.loader
    laid_out = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(laid_out)
    for file in CHILD_PROGRAMS:
        found = Path(laid_out.child(file.path.stem))
        assert found.is_file() and found.read_bytes() == file.path.read_bytes(), found


def by_library(facts: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row.pop("library"): row for row in facts}


def test_the_library_facts_follow_the_catalogue_rows() -> None:
    facts = by_library(library_version_facts(catalog.used_on("linux"), MINORS["3.13"]))
    assert list(facts) == list(catalog.used_on("linux"))  # every library the target uses, in the lock's order
    assert facts["openssl"] == {
        "display": "OpenSSL",
        "version": catalog.libraries()["openssl"].pin.version,
        "module": "ssl",
        "expression": "ssl.OPENSSL_VERSION.split()[1]",
    }
    assert facts["sqlite"]["module"] == "sqlite3" and facts["zlib"]["expression"] == "zlib.ZLIB_RUNTIME_VERSION"
    assert facts["bzip2"]["unreadable"] == catalog.libraries()["bzip2"].runtime_version
    assert "util-linux" in facts and "util-linux" not in by_library(
        library_version_facts(catalog.used_on("macos"), MINORS["3.13"])
    )
    # Each row is read, or says why not; never both, never neither.
    for row in facts.values():
        assert len({"module", "unreadable", "not_built"} & set(row)) == 1, row
        assert ("module" in row) == ("expression" in row), row


def test_a_library_whose_modules_the_minor_lacks_is_skipped_with_the_minors_reason() -> None:
    zstd = catalog.libraries()["zstd"]
    assert isinstance(zstd.runtime_version, catalog.RuntimeVersion)  # readable where the minor has _zstd
    assert by_library(library_version_facts({"zstd": zstd}, MINORS["3.13"]))["zstd"] == {
        "display": "zstd",
        "version": zstd.pin.version,
        "not_built": "_zstd comes with Python 3.14",
    }
    newer = by_library(library_version_facts({"zstd": zstd}, MINORS["3.14"]))["zstd"]
    assert (newer["module"], newer["expression"]) == ("_zstd", "_zstd.zstd_version")
    # Not built wins over a row's own reason; one module of two left is enough to read the version.
    unreadable = dataclasses.replace(zstd, runtime_version="not exposed: for this test")
    assert "not_built" in by_library(library_version_facts({"zstd": unreadable}, MINORS["3.13"]))["zstd"]
    two = dataclasses.replace(zstd, modules=("_zstd", "_sqlite3"))
    assert "module" in by_library(library_version_facts({"zstd": two}, MINORS["3.13"]))["zstd"]


def test_the_runtime_tests_get_the_facts_as_one_json_argument(action: Action) -> None:
    argv = shlex.split(step_script(action, "runtime tests"))
    facts = json.loads(argv[argv.index("--libraries") + 1])
    assert facts == library_version_facts(catalog.used_on("linux"), MINORS["3.13"])
    # No library has a flag of its own any more.
    assert not {"--openssl", "--sqlite"} & set(argv)
