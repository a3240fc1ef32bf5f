"""Python package index files as pinned inputs: ``pypi:<project>/<version>/<filename>`` URLs.

The index's host is never written into the repository. A ``pypi:`` URL is resolved when a file is fetched by
asking pip, the index's own client, which file it would install (``pip install --dry-run --report``): pip uses
whatever index and mirrors its configuration names (``PIP_INDEX_URL``, ``pip.conf``), and reports the URL.
The file itself is then downloaded and verified against the pin like any other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hermetic import log

SCHEME = "pypi"
# How long pip may take to look a file up on the index (it fetches the project page and the metadata only).
RESOLVE_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class IndexFile:
    """A distribution file of one release of a project, named by a ``pypi:`` URL."""

    project: str
    version: str
    filename: str

    @classmethod
    def parse(cls, url: str) -> IndexFile | None:
        """The file a ``pypi:<project>/<version>/<filename>`` URL names (None: another kind of URL)."""
        scheme, sep, rest = url.partition(":")
        if not sep or scheme != SCHEME:
            return None
        parts = rest.strip("/").split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{url}: expected pypi:<project>/<version>/<filename>")
        return cls(*parts)

    def pip_arguments(self) -> list[str]:
        """What makes pip pick exactly this wheel: its python, ABI and platform tags, no dependencies."""
        if not self.filename.endswith(".whl"):
            return ["--no-binary", ":all:", f"{self.project}=={self.version}"]
        python, abi, platforms = self.filename.removesuffix(".whl").split("-")[-3:]
        implementation = python.rstrip("0123456789.").split(".")[0] or "py"
        args = ["--only-binary", ":all:", "--implementation", implementation]
        for tag in abi.split("."):
            args += ["--abi", tag]
        for tag in platforms.split("."):
            args += ["--platform", tag]
        return [*args, f"{self.project}=={self.version}"]


def resolve(
    url: str, *, pip: Sequence[str] = (sys.executable, "-m", "pip"), env: Mapping[str, str] | None = None
) -> list[str]:
    """The download URL of a ``pypi:`` URL's file on the configured index (other URLs pass through).

    Returns no URL (and warns) when pip cannot find that exact file; the fetcher then reports the pin as
    unobtainable and names a distdir as the way out.
    """
    wanted = IndexFile.parse(url)
    if wanted is None:
        return [url]
    with tempfile.TemporaryDirectory(prefix="pypi-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        command = [
            *pip,
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(Path(tmp) / "target"),
            "--report",
            str(report),
            *wanted.pip_arguments(),
        ]
        try:
            done = subprocess.run(
                command,
                env=dict(env if env is not None else os.environ),
                capture_output=True,
                text=True,
                timeout=RESOLVE_TIMEOUT_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warn(f"{wanted.filename}: asking pip for its URL failed ({e})")
            return []
        if done.returncode != 0 or not report.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            log.warn(f"{wanted.filename}: pip cannot find {wanted.project}=={wanted.version} ({last})")
            return []
        found = [item["download_info"]["url"] for item in json.loads(report.read_text()).get("install", [])]
    urls = [u for u in found if u.split("#", 1)[0].rsplit("/", 1)[-1] == wanted.filename]
    if not urls:
        log.warn(f"{wanted.filename}: pip would install {', '.join(found) or 'nothing'} instead")
    return urls
