"""Every patch in patches/ says why it exists on its first line, and names a real package and series."""

from __future__ import annotations

import re

from conftest import REPO_ROOT
from hermetic.lock import load_lock
from pydist.paths import LOCK_FILE, PINS_SCHEMA

PATCHES = sorted((REPO_ROOT / "patches").rglob("*.patch"))


def test_there_are_patches() -> None:
    assert PATCHES


def test_each_patch_starts_with_a_one_line_reason() -> None:
    for patch in PATCHES:
        lines = patch.read_text().splitlines()
        reason = lines[0]
        assert reason and not reason.startswith(("---", "diff", "+++", "@@")), patch
        assert len(reason) > 20 and reason.endswith((".", ")")), f"{patch}: first line must be the reason"
        assert lines[1] == "", f"{patch}: a blank line must follow the reason"


def test_each_patch_series_matches_a_pinned_version() -> None:
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    for patch in PATCHES:
        package, series = patch.relative_to(REPO_ROOT / "patches").parts[:2]
        versions = lock.versions(package)
        assert any(v == series or v.startswith(series + ".") for v in versions), (
            f"{patch}: no pinned {package} {series}"
        )
        assert re.fullmatch(r"\d{4}-[a-z0-9-]+\.patch", patch.name), patch.name
