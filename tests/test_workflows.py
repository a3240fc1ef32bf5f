"""The GitHub Actions workflows are actionlint-clean (with shellcheck on their `run:` scripts), and the check
can fail: a broken workflow is reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent  # actionlint and shellcheck come with the dev dependencies


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "actionlint"), "-oneline", "-no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_the_workflows_are_actionlint_clean() -> None:
    assert {p.name for p in WORKFLOWS} >= {"linux.yml", "macos.yml", "release.yml"}
    assert (BIN / "shellcheck").is_file()  # so the run: scripts are checked too
    result = actionlint(*WORKFLOWS)
    assert result.stdout == "" and result.returncode == 0, result.stdout + result.stderr


def test_a_broken_workflow_is_reported(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    broken = workflows / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-24.04\n"
        "    strategy:\n"
        "      matrix: ${{ fromJSON(needs.setup.outputs.matrix) }}\n"  # no job named setup is needed
        "    steps:\n"
        "      - uses: actions/checkout@v5\n"
        "      - run: echo ${{ matrix.target }} $UNQUOTED_VARIABLE\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert 'property "setup" is not defined' in result.stdout
    assert "SC2086" in result.stdout  # shellcheck ran on the run: script
