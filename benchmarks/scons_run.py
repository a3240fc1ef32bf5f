"""What the build benchmarks share: running scons on this checkout, and digesting what it produced."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def scons(*args: str) -> str:
    """Run ``scons -Q`` on this checkout and return its output; exit with its last lines if it fails."""
    result = subprocess.run([sys.executable, "-m", "SCons", "-Q", *args], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"scons {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def artifact_digests(root: Path, *directories: Path) -> dict[str, str]:
    """sha256 of every archive under `directories`, keyed by its path relative to `root`."""
    digests = {}
    for directory in directories:
        for path in sorted(directory.rglob("*.tar.*")):
            relative = path.relative_to(root)
            # Scratch trees of actions and of runtime tests are not artifacts.
            if not {"work", "tests"} & set(relative.parts):
                digests[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests
