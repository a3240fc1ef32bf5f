"""The sources lock: one file listing every pinned source the build may fetch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hermetic.errors import LockError
from hermetic.pins import Pin, load_toml


@dataclass(frozen=True)
class SourcesLock:
    """All source pins, plus the project-wide SOURCE_DATE_EPOCH.

    Attributes:
        path: (Path) the lock file.
        source_date_epoch: (int) the timestamp every action and archive uses instead of "now".
        pins: (tuple[Pin, ...]) the sources, in file order.
    """

    path: Path
    source_date_epoch: int
    pins: tuple[Pin, ...]

    def __iter__(self) -> Iterator[Pin]:
        return iter(self.pins)

    def versions(self, name: str) -> list[str]:
        """Every pinned version of `name`, in file order."""
        return [p.version for p in self.pins if p.name == name]

    def get(self, name: str, version: str | None = None) -> Pin:
        """The pin of `name` (at `version`, required when several versions are pinned)."""
        matches = [p for p in self.pins if p.name == name and (version is None or p.version == version)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            known = ", ".join(self.versions(name)) or "none"
            wanted = f"{name} {version}" if version else name
            raise LockError(f"{self.path.name}: no pin for {wanted} (pinned versions: {known})")
        raise LockError(f"{self.path.name}: several versions of {name} are pinned; name one")


def load_lock(path: Path, schema_path: Path) -> SourcesLock:
    """Read and validate the sources lock; duplicate pins are an error."""
    data = load_toml(path, schema_path, "sourcesLock")
    pins = tuple(Pin.from_mapping(entry) for entry in data["source"])
    seen: set[str] = set()
    for pin in pins:
        if pin.id in seen:
            raise LockError(f"{path.name}: {pin.id} is pinned twice", hint="keep one entry")
        seen.add(pin.id)
    return SourcesLock(path=path, source_date_epoch=int(data["source_date_epoch"]), pins=pins)
