"""The Debian archive as a mirror: its base URLs come from the host's apt configuration.

Pins name Debian files as ``debian:pool/main/...`` (main archive) or ``debian-security:pool/updates/...``
(security archive). The archive host is never written into the repository: it is read from apt's
``sources.list`` and deb822 ``*.sources`` files, or given by the user.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

SCHEMES = ("debian", "debian-security")

# Only sources whose suite is a Debian release serve Debian's pool; third-party apt repositories do not.
_DEBIAN_SUITES = frozenset(
    [
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "duke",
        "sid",
        "oldoldstable",
        "oldstable",
        "stable",
        "testing",
        "unstable",
        "experimental",
    ]
)


@dataclass(frozen=True)
class DebianArchives:
    """Base URLs of the Debian main and security archives (each may be unknown)."""

    main: tuple[str, ...] = ()
    security: tuple[str, ...] = ()

    def resolve(self, url: str) -> list[str]:
        """Expand a ``debian:``/``debian-security:`` URL into real URLs; pass others through."""
        scheme, sep, rest = url.partition(":")
        if not sep or scheme not in SCHEMES:
            return [url]
        bases = self.main if scheme == "debian" else self.security
        return [f"{base.rstrip('/')}/{rest.lstrip('/')}" for base in bases]


def base_url_problem(url: str) -> str | None:
    """None if `url` can be an archive's base URL (``http(s)://host/path``), else what is wrong with it."""
    if not url.isprintable() or " " in url:
        return "contains spaces or control characters"
    try:
        parts = urllib.parse.urlparse(url)
        parts.port  # noqa: B018 (parsing the port is the check: a bad one raises)
    except ValueError as e:
        return f"is not a URL ({e})"
    if parts.scheme not in ("http", "https"):
        return f"is not an http:// or https:// URL (scheme {parts.scheme or '(none)'}:)"
    if not parts.hostname:
        return "has no host"
    if parts.query or parts.fragment:
        return "has a query or fragment; give the archive's base URL"
    return None


def _deb822_paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        line = raw.rstrip()
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
            continue
        if line[0] in " \t" and key:
            current[key] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def _entries(apt_dir: Path) -> list[tuple[str, str]]:
    """(uri, suite) pairs of every enabled ``deb`` source in apt's configuration."""
    entries: list[tuple[str, str]] = []
    list_files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in list_files:
        if not path.is_file():
            continue
        for raw in path.read_text(errors="replace").splitlines():
            words = raw.split("#", 1)[0].split()
            if len(words) < 3 or words[0] != "deb":
                continue
            words = words[1:]
            if words[0].startswith("["):
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2:
                entries.append((words[0], words[1]))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for para in _deb822_paragraphs(path.read_text(errors="replace")):
            if para.get("Enabled", "yes").lower() == "no" or "deb" not in para.get("Types", "").split():
                continue
            for uri in para.get("URIs", "").split():
                for suite in para.get("Suites", "").split():
                    entries.append((uri, suite))
    return entries


def archives_from_apt(apt_dir: Path = Path("/etc/apt")) -> DebianArchives:
    """Find the Debian main and security archive base URLs in apt's configuration."""
    main: list[str] = []
    security: list[str] = []
    for uri, suite in _entries(apt_dir):
        if not uri.startswith(("http://", "https://")) or suite.split("-")[0].split("/")[0] not in _DEBIAN_SUITES:
            continue
        target = security if suite.endswith(("-security", "/updates")) else main
        if uri not in target:
            target.append(uri)
    return DebianArchives(main=tuple(main), security=tuple(security))
