"""Pinned blobs: every input the build fetches is named, sized, hashed and licensed here."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from hermetic.errors import LockError


@dataclass(frozen=True, kw_only=True)
class Pin:
    """One pinned file.

    Attributes:
        name: (str) package name, e.g. ``openssl`` or ``libc6``.
        version: (str) the version of the contents, e.g. ``3.5.7``.
        filename: (str) the canonical file name, used in distdirs and in ``build/``.
        size: (int) exact size in bytes.
        sha256: (str) lowercase hex digest of the file.
        urls: (tuple[str, ...]) where to get it, upstream first; ``debian:`` and
            ``debian-security:`` URLs are resolved against the host's apt configuration.
        license: (str | None) SPDX expression of the contents.
        license_file: (str | None) path of the license text inside the unpacked tree.
        note: (str | None) why this pin is special (e.g. a Debian repack).
    """

    name: str
    version: str
    filename: str
    size: int
    sha256: str
    urls: tuple[str, ...]
    license: str | None = None
    license_file: str | None = None
    note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``name-version``, unique within one lock."""
        return f"{self.name}-{self.version}"

    def identity(self) -> dict[str, Any]:
        """The fields that determine the bytes: what an action key records for this input."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Pin:
        """Build a pin from one validated table of a lock or toolchain file."""
        known = {"name", "version", "filename", "size", "sha256", "urls", "license", "license_file", "note"}
        return cls(
            name=data["name"],
            version=str(data["version"]),
            filename=data["filename"],
            size=int(data["size"]),
            sha256=data["sha256"].lower(),
            urls=tuple(data["urls"]),
            license=data.get("license"),
            license_file=data.get("license_file"),
            note=data.get("note"),
            extra={k: v for k, v in data.items() if k not in known},
        )


def load_toml(path: Path, schema_path: Path, definition: str) -> dict[str, Any]:
    """Parse a TOML pin file and validate it against ``$defs/<definition>`` of a JSON Schema file."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise LockError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise LockError(f"{path}: not valid TOML: {e}") from None
    document = json.loads(schema_path.read_text())
    schema = {"$defs": document["$defs"], "$ref": f"#/$defs/{definition}"}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise LockError(f"{path}: {where}: {error.message}", hint=f"see {schema_path.name}")
    return data
