"""What the host tools the sandbox exposes (make, perl, sed, ...) *are*, for action keys.

An action key must change when something that shapes the output changes, and must not change otherwise, or
a shared cache never hits. A tool is identified by its release, not by the bytes of its binary:

1. on a dpkg host, the package that owns the binary and its upstream version (``perl-base 5.36.0``), with the
   epoch and the distribution's revision left out: a distribution's security rebuild changes every byte of a
   binary but not what it does to our outputs, and GitHub's runner images take such rebuilds every week;
2. elsewhere (macOS), the first line of the tool's ``--version`` that names a version (``GNU Make 3.81``);
3. when neither says anything, the sha256 of the binary (``sha256:<hex>``), the strict fallback.

A binary's digest was also weaker than it looked: it missed what the tool loads (perl's modules under
``/usr/share/perl``, grep's libpcre). The package's version covers the whole package.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

MISSING = "missing"
_TIMEOUT_SECONDS = 20
_ENV = {"LC_ALL": "C", "PATH": "/usr/bin:/bin"}
# A Debian version: [epoch:]upstream[-revision]
_DEBIAN_VERSION = re.compile(r"^(?:\d+:)?(?P<upstream>.+?)(?:-[^-]*)?$")


def identify(tools: Sequence[str], search_path: str = "/usr/bin:/bin") -> dict[str, str]:
    """The identity of each tool found on `search_path` (``missing`` for a tool that is absent)."""
    found = {tool: shutil.which(tool, path=search_path) for tool in tools}
    binaries = {tool: Path(path).resolve() for tool, path in found.items() if path is not None}
    packaged = dpkg_versions(binaries.values())
    identity = {}
    for tool in tools:
        binary = binaries.get(tool)
        if binary is None:
            identity[tool] = MISSING
        else:
            identity[tool] = packaged.get(binary) or self_reported_version(binary) or f"sha256:{_digest(binary)}"
    return identity


def upstream_version(debian_version: str) -> str:
    """``1:2.3.4-5ubuntu1`` → ``2.3.4``: the release of the software, without the distribution's packaging."""
    match = _DEBIAN_VERSION.match(debian_version.strip())
    return match.group("upstream") if match else debian_version.strip()


def dpkg_versions(binaries: Iterable[Path]) -> dict[Path, str]:
    """``package upstream-version`` of each binary dpkg knows; empty on a host without dpkg."""
    binaries = list(binaries)
    if not binaries or shutil.which("dpkg-query", path=_ENV["PATH"]) is None:
        return {}
    # dpkg records a file under the path its package shipped it at; with a merged /usr, /bin/sed is /usr/bin/sed.
    aliases = {alias: binary for binary in binaries for alias in _merged_usr_aliases(binary)}
    owners = _owners(aliases)
    versions = _package_versions(sorted(set(owners.values())))
    result = {}
    for alias, package in owners.items():
        if package in versions:
            result[aliases[alias]] = f"{package} {upstream_version(versions[package])}"
    return result


def self_reported_version(binary: Path) -> str | None:
    """The first line of ``binary --version`` that holds a version number, or None."""
    output = _run([str(binary), "--version"])
    for line in (output or "").splitlines():
        if re.search(r"\d+\.\d+", line):
            return line.strip()[:120]
    return None


def _merged_usr_aliases(binary: Path) -> list[str]:
    text = str(binary)
    if text.startswith("/usr/bin/") or text.startswith("/usr/sbin/"):
        return [text, text.removeprefix("/usr")]
    return [text]


def _owners(aliases: dict[str, Path]) -> dict[str, str]:
    """path → owning package, from ``dpkg-query --search`` (paths no package owns are left out)."""
    output = _run(["dpkg-query", "--search", *aliases], check=False) or ""
    owners = {}
    for line in output.splitlines():
        if line.startswith("diversion "):
            continue
        packages, sep, path = line.partition(": ")
        if sep and path in aliases and "," not in packages:
            owners[path] = packages.split(":")[0]  # drop ":amd64"
    return owners


def _package_versions(packages: list[str]) -> dict[str, str]:
    if not packages:
        return {}
    output = _run(["dpkg-query", "--show", "--showformat=${Package} ${Version}\\n", *packages], check=False) or ""
    versions = {}
    for line in output.splitlines():
        package, _, version = line.partition(" ")
        if version:
            versions[package] = version
    return versions


def _run(argv: list[str], *, check: bool = True) -> str | None:
    """stdout of `argv`, or None when it cannot run (or fails, when `check`)."""
    try:
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=_ENV,
            timeout=_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if check and result.returncode != 0:
        return None
    return result.stdout


def _digest(binary: Path) -> str:
    return hashlib.sha256(binary.read_bytes()).hexdigest()
