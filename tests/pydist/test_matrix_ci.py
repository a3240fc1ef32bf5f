"""The CI build matrix: one declaration (matrix.ci_builds) that the workflows read through `pydist matrix`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from pydist import matrix
from pydist.__main__ import main


def copy_layout(dest: Path) -> Path:
    """The parts of the repository ci_builds reads: toolchain pins and the CPython patch series."""
    shutil.copytree(REPO_ROOT / "toolchains", dest / "toolchains")
    shutil.copytree(REPO_ROOT / "patches" / "cpython", dest / "patches" / "cpython")
    return dest


def test_release_builds_are_every_target_patched_minor_and_release_option() -> None:
    builds = matrix.ci_builds()
    combos = {(b.target, b.python, b.options) for b in builds}
    # A minor's series is patches/cpython/X.Y; a release's own (3.11.2) adds to its minor's.
    minors = sorted(
        p.name for p in (REPO_ROOT / "patches" / "cpython").iterdir() if p.is_dir() and p.name.count(".") == 1
    )
    expected = {
        (target, minor, options)
        for target in matrix.TARGETS
        for minor in minors
        for options in matrix.RELEASE_OPTIONS
        if not (options.startswith("freethreaded") and minor < "3.13")
    }
    assert combos == expected
    assert ("x86_64-unknown-linux-gnu", "3.11", "freethreaded+pgo+lto") not in combos
    assert len({b.artifact for b in builds}) == len(builds)  # artifact names are unique in a run


def test_each_build_runs_on_a_host_its_toolchain_allows() -> None:
    for build in matrix.ci_builds():
        assert build.host in matrix.build_hosts(build.target, REPO_ROOT / "toolchains")
        assert build.runner == matrix.CI_RUNNERS[build.host]
    # aarch64 Linux is built natively on an Arm runner, and cross-built on x86_64 then run natively there.
    aarch64 = [b for b in matrix.ci_builds() if b.target == "aarch64-unknown-linux-gnu"]
    assert {(b.runner, b.test_runner) for b in aarch64} == {
        ("ubuntu-24.04", "ubuntu-24.04-arm"),
        ("ubuntu-24.04-arm", ""),
    }


def test_each_build_host_of_a_target_gets_its_jobs(tmp_path: Path) -> None:
    builds = matrix.ci_builds()
    assert {b.python for b in builds} == set(matrix.buildable_minors()) == {"3.11", "3.13"}
    native = [b for b in builds if b.target == "aarch64-unknown-linux-gnu" and b.host == "aarch64-linux"]
    assert {b.runner for b in native} == {"ubuntu-24.04-arm"}
    assert all(b.test_runner == "" for b in native)  # built natively: no separate native test job
    cross = [b for b in builds if b.target == "aarch64-unknown-linux-gnu" and b.host == "x86_64-linux"]
    assert len(cross) == len(native) == 3
    # A pin that drops a host drops its jobs.
    root = copy_layout(tmp_path)
    pin = root / "toolchains" / "aarch64-unknown-linux-gnu.toml"
    pin.write_text(
        pin.read_text().replace('build_hosts = ["x86_64-linux", "aarch64-linux"]', 'build_hosts = ["x86_64-linux"]')
    )
    assert not [b for b in matrix.ci_builds(root) if b.host == "aarch64-linux"]


def test_the_command_prints_a_github_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--json", "--runner", "macos"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {e["runner"] for e in document["include"]} == {"macos-15"}
    assert {e["target"] for e in document["include"]} == {"aarch64-apple-darwin"}
    assert set(document["include"][0]) == {"target", "python", "options", "host", "runner", "test_runner", "artifact"}

    assert main(["matrix", "--json", "--runner", "linux", "--tests"]) == 0
    tests = json.loads(capsys.readouterr().out)["include"]
    assert tests and {e["runner"] for e in tests} == {"ubuntu-24.04-arm"}

    assert main(["matrix", "--json", "--target", "x86_64-unknown-linux-gnu", "--tests"]) == 0
    assert json.loads(capsys.readouterr().out) == {"include": []}


def test_an_unknown_target_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--target", "riscv64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "riscv64" in err[0] and "x86_64-unknown-linux-gnu" in err[0]


def test_the_suite_gate_runs_each_linux_release_build_once_on_its_own_architecture() -> None:
    builds = matrix.ci_builds()
    jobs = matrix.suite_jobs(builds)
    linux = {(b.target, b.python, b.options) for b in builds if b.runner_os == "linux"}
    assert [(j["target"], j["python"], j["options"]) for j in jobs] == sorted(linux)
    by_artifact = {b.artifact: b for b in builds}
    for job in jobs:
        build = by_artifact[job["artifact"]]
        assert (build.target, build.python, build.options) == (job["target"], job["python"], job["options"])
        arch = job["target"].split("-")[0]
        # A runner of the target's architecture: natively, never under qemu.
        assert job["runner"] == {"x86_64": "ubuntu-24.04", "aarch64": "ubuntu-24.04-arm"}[arch], job
        if any(b.host == f"{arch}-linux" for b in builds if b.target == job["target"]):
            assert build.host == f"{arch}-linux", "the build made on the target's own architecture is preferred"


def test_pydist_matrix_lists_the_suite_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--suite", "--json"]) == 0
    include = json.loads(capsys.readouterr().out)["include"]
    assert include == matrix.suite_jobs(matrix.ci_builds())
