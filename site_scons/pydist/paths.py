"""Where the repository keeps what the rules read: pins, schemas, patches, helper scripts."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = REPO_ROOT / "sources.lock.toml"
SCHEMA_DIR = REPO_ROOT / "schema"
PINS_SCHEMA = SCHEMA_DIR / "pins.schema.json"
PYTHON_JSON_SCHEMA = SCHEMA_DIR / "python-json.schema.json"
TOOLCHAINS_DIR = REPO_ROOT / "toolchains"
PATCHES_DIR = REPO_ROOT / "patches"
# Scripts that run inside the sandbox with the built interpreter (standard library only).
IN_SANDBOX = Path(__file__).resolve().parent / "in_sandbox"
# The child programs in_sandbox/runtime_tests.py runs with the interpreter under test, one file each.
RUNTIME_CHILDREN = IN_SANDBOX / "children"
# Modules the distribution ships into the standard library of every install (standard library only).
SHIPPED = Path(__file__).resolve().parent / "shipped"


def repo_label(path: Path) -> str:
    """`path` relative to the repository, as action keys and provenance name repository files."""
    return str(path.resolve().relative_to(REPO_ROOT))
