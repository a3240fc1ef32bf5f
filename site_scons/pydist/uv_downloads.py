"""The downloads list uv reads to install our Pythons (``--python-downloads-json-url`` or
``UV_PYTHON_DOWNLOADS_JSON_URL``).

uv's format is a JSON object of entries (the keys are only names; uv matches on the fields): ``name``,
``arch`` ``{family, variant}``, ``os``, ``libc``, ``major``, ``minor``, ``patch``, ``prerelease``, ``url``,
``sha256``, ``variant`` and ``build``. An entry points at our ``install_only_stripped`` archive, as uv's own
list does for python-build-standalone (``install_only`` when no stripped one is given); the stripped archive
keeps ``fips.so`` byte-identical, so FIPS mode works from it. A top-level ``version`` key would make uv refuse
the file, so there is none. Freethreaded builds become ``"variant": "freethreaded"``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermetic import scratch
from hermetic.content_store import sha256_file
from hermetic.errors import ConfigError
from pydist import matrix
from pydist.targets import all_targets

# How each target triple is spelled in uv's fields: arch family, os, libc (its toolchain file's [target] says).
UV_PLATFORMS = {triple: target.uv_platform for triple, target in all_targets().items()}
# Which archive an entry points at, most preferred first.
PREFERRED_KINDS = ("install_only_stripped", "install_only")
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)((?:a|b|rc)\d+)?$")
_INSTALL_ONLY = re.compile(
    r"^cpython-(?P<version>[0-9][0-9a-z.]*)-(?P<target>"
    + "|".join(re.escape(t) for t in matrix.TARGETS)
    + r")-(?:(?P<flavor>[a-z+]+)-)?(?P<kind>install_only|install_only_stripped)-(?P<tag>[A-Za-z0-9._]+)\.tar\.gz$"
)


@dataclass(frozen=True, kw_only=True)
class InstallOnlyArchive:
    """What an install_only archive's name says (``DistNames`` conventions).

    Attributes:
        filename: (str) the archive's file name.
        version: (str) full CPython version, e.g. ``3.13.15``.
        target: (str) target triple.
        options: (str) the option set it was built with, e.g. ``freethreaded+pgo+lto``.
        kind: (str) ``install_only`` or ``install_only_stripped``.
        tag: (str) the build tag.
    """

    filename: str
    version: str
    target: str
    options: str
    kind: str
    tag: str

    @property
    def variant(self) -> str | None:
        """uv's variant: ``freethreaded``, ``debug``, ``freethreaded+debug`` or None (the default build)."""
        tokens = self.options.split("+")
        wanted = [v for v in ("freethreaded", "debug") if v in tokens]
        return "+".join(wanted) or None


def parse_install_only(filename: str) -> InstallOnlyArchive | None:
    """The parts of an install_only(_stripped) archive name, or None when `filename` is not one."""
    found = _INSTALL_ONLY.match(filename)
    if not found or not _VERSION.match(found["version"]):
        return None
    flavor = found["flavor"] or ""
    # Release builds leave pgo+lto out of the name (DistNames): put it back.
    options = "+".join(filter(None, [flavor, "pgo+lto"])) if flavor in ("", "freethreaded") else flavor
    if options not in matrix.OPTIONS:
        return None
    return InstallOnlyArchive(
        filename=filename,
        version=found["version"],
        target=found["target"],
        options=options,
        kind=found["kind"],
        tag=found["tag"],
    )


def entry(archive: InstallOnlyArchive, *, url: str, sha256: str) -> tuple[str, dict[str, Any]]:
    """uv's key and entry for one archive served at `url`."""
    major, minor, patch, prerelease = _VERSION.match(archive.version).groups()  # type: ignore[union-attr]
    family, os_name, libc = UV_PLATFORMS[archive.target]
    variant = archive.variant
    suffix = f"+{variant}" if variant else ""
    key = f"cpython-{archive.version}{suffix}-{os_name}-{family}-{libc}"
    return key, {
        "name": "cpython",
        "arch": {"family": family, "variant": None},
        "os": os_name,
        "libc": libc,
        "major": int(major),
        "minor": int(minor),
        "patch": int(patch),
        "prerelease": prerelease or "",
        "url": url,
        "sha256": sha256,
        "variant": variant,
        "build": archive.tag,
    }


def downloads(archives: dict[str, str], base_url: str) -> dict[str, dict[str, Any]]:
    """uv's downloads list for archives (file name -> sha256) published under `base_url`.

    Names that are not install_only archives are ignored. Of the archives of one build, the stripped one is
    listed. Two builds that would be the same uv entry (say noopt and pgo+lto of one version) are refused:
    uv could not tell them apart.
    """
    chosen: dict[str, tuple[InstallOnlyArchive, str]] = {}
    for name in sorted(archives):
        archive = parse_install_only(name)
        if archive is None:
            continue
        key, _ = entry(archive, url="", sha256="")
        held = chosen.get(key)
        if held and held[0].options != archive.options:
            raise ConfigError(
                f"{held[0].filename} and {name} would be the same uv entry {key}",
                hint="publish one option set per Python version and target",
            )
        if held is None or PREFERRED_KINDS.index(archive.kind) < PREFERRED_KINDS.index(held[0].kind):
            chosen[key] = (archive, archives[name])
    base = base_url.rstrip("/")
    return dict(
        entry(archive, url=f"{base}/{urllib.parse.quote(archive.filename)}", sha256=digest)
        for archive, digest in (chosen[key] for key in sorted(chosen))
    )


def archives_in(paths: list[Path]) -> dict[str, str]:
    """install_only archives among `paths` (files, or directories searched one level deep) -> sha256."""
    found: dict[str, str] = {}
    for path in paths:
        if not path.exists():
            raise ConfigError(
                f"{path}: no such file or directory", hint="pass archives or the directories holding them"
            )
        for file in sorted(path.iterdir()) if path.is_dir() else [path]:
            if file.is_file() and parse_install_only(file.name):
                found[file.name] = sha256_file(file)
    if not found:
        raise ConfigError(
            f"no install_only archives in {', '.join(map(str, paths))}",
            hint="pass a dist/<build> directory or the release's cpython-*-install_only*.tar.gz files",
        )
    return found


def write_json(path: Path, document: object) -> None:
    """Write `document` as JSON to `path` atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch.write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
