"""Temporary names beside an output, and what a killed run left of them.

Every output is written under a temporary name in its own directory and renamed into place, so no half-written
file ever carries its final name. The temporary names are made here, and only here, so that the next run can
find what a run killed with SIGKILL left behind (:func:`leftovers`) and remove it before it builds:

- ``.<name>.part``: a file written whole, then renamed (:func:`write_text`);
- ``.<name>.<random>.part``: a file streamed by a writer that may run twice at once (:func:`unique_part`);
- ``.<name>.tree``: a directory a step assembles the output from;
- ``.staging/<name>`` (and the above inside it): an output that must pass checks before it appears.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from hermetic import failpoint

PART = ".part"
TREE = ".tree"
STAGING = ".staging"


def part_path(final: Path) -> Path:
    """The temporary name of `final` while it is written whole by one writer."""
    return final.with_name(f".{final.name}{PART}")


def tree_path(final: Path) -> Path:
    """The directory a step may assemble `final` from."""
    return final.with_name(f".{final.name}{TREE}")


def staged_path(final: Path) -> Path:
    """Where `final` is written before its checks pass (its directory's staging directory is created)."""
    staging = final.parent / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    return staging / final.name


def unique_part(final: Path) -> tuple[int, Path]:
    """An open descriptor and the path of a new temporary file for `final`, unique to this writer."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=PART)
    return fd, Path(name)


def write_text(final: Path, text: str) -> None:
    """Write `text` to `final` atomically: to its temporary name, then renamed into place."""
    part = part_path(final)
    try:
        part.write_text(text)
        failpoint.reached(f"write {final.name}")
        part.replace(final)
    except BaseException:
        part.unlink(missing_ok=True)  # an error, not a kill: nothing is left for the next run to find
        raise


def leftovers(final: Path) -> Iterator[Path]:
    """What a killed run may have left of `final`: its temporary files and trees, staged or not."""
    for directory in (final.parent, final.parent / STAGING):
        if not directory.is_dir():
            continue
        yield from directory.glob(f".{_escaped(final.name)}.*{PART}")
        yield from (p for p in (part_path(directory / final.name), tree_path(directory / final.name)) if _exists(p))
        staged = directory / final.name
        if directory.name == STAGING and _exists(staged):
            yield staged


def remove_leftovers(finals: Iterable[Path]) -> list[Path]:
    """Remove every leftover of `finals` (and staging directories left empty); return what was removed.

    Only call it while no other process can be writing these outputs (the build directory's lock is held).
    """
    removed = []
    for final in finals:
        for path in sorted(set(leftovers(final))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        staging = final.parent / STAGING
        if staging.is_dir() and not any(staging.iterdir()):
            staging.rmdir()
    return removed


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _escaped(name: str) -> str:
    """`name` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
