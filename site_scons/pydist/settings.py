"""Command-line variables of ``scons``: their defaults, help and validation."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermetic import debian, fetch, remote_cache
from hermetic.errors import ConfigError
from hermetic.remote_cache import RemoteCache
from pydist import matrix, tuning

PROJECT = "fips-python-standalone"
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_cache_root() -> Path:
    """The user cache directory shared by every checkout: downloads, toolchains, SCons cache."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / PROJECT


# name, default, help. Values are strings on the command line; they are checked by `resolve`.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("target", matrix.default_target(), f"target triple: {' | '.join(matrix.TARGETS)}"),
    ("py", matrix.DEFAULT_PYTHON, "Python to build: X.Y (newest pinned X.Y.Z) or a pinned X.Y.Z"),
    ("options", matrix.DEFAULT_OPTIONS, f"option set: {' | '.join(matrix.OPTIONS)}"),
    (
        "fips_provider",
        "",
        "the OpenSSL FIPS provider to ship: empty (or OpenSSL's own version) for the provider built with the "
        "OpenSSL Python links; a version pinned as openssl-fips in sources.lock.toml for that provider, built "
        "from its own pristine tree beside it: 3.1.2 (CMVP #4985; its tarball from distdir=) or 3.0.20 (not "
        "validated: proves the two-tree build where 3.1.2 cannot be fetched)",
    ),
    (
        "cache_root",
        str(default_cache_root()),
        "user cache for downloads and toolchains (shared by checkouts)",
    ),
    ("scons_cache", "<cache_root>/scons-cache", "SCons CacheDir for built artifacts; 'off' disables it"),
    (
        "remote_cache",
        "",
        "URL of a shared HTTP build cache behind scons_cache (/ac/ and /cas/, as bazel-remote); "
        "credentials come from $PYDIST_REMOTE_CACHE_CREDENTIALS (user:password or a token)",
    ),
    ("remote_cache_mode", "ro", "ro: only read the remote cache; rw: also upload what this build makes"),
    (
        "distdir",
        "",
        "comma-separated directories searched for pinned files before any download (offline builds)",
    ),
    (
        "mirrors",
        "",
        "comma-separated URL templates tried before the pinned URLs, e.g. https://m.example/{sha256}",
    ),
    ("debian_mirror", "<from apt configuration>", "base URL of the Debian archive (main), overriding apt's"),
    ("debian_security_mirror", "<from apt configuration>", "base URL of the Debian security archive"),
    ("build_dir", "build", "where artifacts, logs and work trees go"),
    ("dist_dir", "dist", "where the distribution archives and SHA256SUMS go"),
    ("tag", "<commit date of HEAD, YYYYMMDDTHHMM>", "release tag in archive names (never the clock)"),
    ("jobs", str(os.cpu_count() or 1), "parallel jobs inside each action (not part of any cache key)"),
    ("tuning", tuning.DEFAULT_WORD, tuning.help_text()),
    (
        "pgo_profile",
        "",
        "a merged PGO profile to build with instead of training (e.g. the python/build/pgo.profdata of a full "
        "archive): a pgo build given the same profile gives the same bytes",
    ),
)
_NAMES = {name for name, _default, _help in VARIABLES}
# Width of a description line in ``scons -h`` (after the 26 columns of the name).
_HELP_WIDTH = 94

# Variables naming a directory: given empty, they would mean the current directory (the checkout).
_DIRECTORIES = ("cache_root", "scons_cache", "build_dir", "dist_dir")
_OFF = ("off", "none")

# Where the remote cache's credentials come from: never the command line, which logs and `ps` show.
REMOTE_CACHE_CREDENTIALS = "PYDIST_REMOTE_CACHE_CREDENTIALS"
REMOTE_CACHE_MODES = ("ro", "rw")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The resolved command line."""

    target: str
    py: str
    options: str
    fips_provider: str | None
    cache_root: Path
    scons_cache: Path | None
    remote_cache: str | None
    remote_cache_writable: bool
    distdirs: tuple[Path, ...]
    mirrors: tuple[str, ...]
    debian_mirror: str | None
    debian_security_mirror: str | None
    build_dir: Path
    dist_dir: Path
    tag: str | None
    jobs: int
    tuning: str = tuning.DEFAULT_WORD
    pgo_profile: Path | None = None


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def resolve(arguments: dict[str, str]) -> Settings:
    """Check the ``name=value`` arguments (misspelled names included) and apply defaults."""
    unknown = sorted(set(arguments) - _NAMES)
    if unknown:
        raise ConfigError(
            f"unknown variable {unknown[0]}=",
            hint=f"valid variables: {', '.join(sorted(_NAMES))} (see scons -h)",
        )
    defaults = {name: default for name, default, _help in VARIABLES}
    value: dict[str, Any] = {**defaults, **arguments}
    for name in _DIRECTORIES:
        _refuse_empty(name, value[name])
    cache_root = Path(value["cache_root"]).expanduser()
    scons_cache: Path | None
    if value["scons_cache"] == defaults["scons_cache"]:
        scons_cache = cache_root / "scons-cache"
    elif value["scons_cache"] in _OFF:
        scons_cache = None
    else:
        scons_cache = Path(value["scons_cache"]).expanduser()
    remote_cache = _remote_cache(value["remote_cache"].strip(), value["remote_cache_mode"], scons_cache)
    distdirs = tuple(Path(d).expanduser().resolve() for d in _split(value["distdir"]))
    for directory in distdirs:
        if not directory.is_dir():
            raise ConfigError(f"distdir={directory} is not a directory", hint="create it or fix the path")
    if value["tag"] != defaults["tag"] and not re.fullmatch(r"[A-Za-z0-9._]+", value["tag"]):
        raise ConfigError(f"tag={value['tag']} may only hold letters, digits, '.' and '_'", hint="e.g. tag=20261121")
    fips_provider = value["fips_provider"].strip()
    if fips_provider and not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", fips_provider):
        raise ConfigError(
            f"fips_provider={fips_provider} is not a version", hint="e.g. fips_provider=3.0.20, or leave it empty"
        )
    # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses.
    if not re.fullmatch(r"[0-9]+", str(value["jobs"])) or int(value["jobs"]) < 1:
        raise ConfigError(f"jobs={value['jobs']} is not a positive number", hint="e.g. jobs=2")
    tuning.parse(value["tuning"])  # names only: what a target and minor can have is checked with the request
    pgo_profile = Path(value["pgo_profile"]).expanduser().resolve() if value["pgo_profile"].strip() else None
    if pgo_profile is not None and not pgo_profile.is_file():
        raise ConfigError(f"pgo_profile={pgo_profile} is not a file", hint="give a merged profile, or leave it empty")
    mirrors = _split(value["mirrors"])
    _check_mirrors(mirrors)
    debian_mirrors = {
        name: None if value[name] == defaults[name] else value[name]
        for name in ("debian_mirror", "debian_security_mirror")
    }
    _check_debian_mirrors(debian_mirrors)
    return Settings(
        target=value["target"],
        py=value["py"],
        options=value["options"],
        fips_provider=fips_provider or None,
        cache_root=cache_root,
        scons_cache=scons_cache,
        remote_cache=remote_cache,
        remote_cache_writable=value["remote_cache_mode"] == "rw",
        distdirs=distdirs,
        mirrors=mirrors,
        debian_mirror=debian_mirrors["debian_mirror"],
        debian_security_mirror=debian_mirrors["debian_security_mirror"],
        build_dir=Path(value["build_dir"]),
        dist_dir=Path(value["dist_dir"]),
        tag=None if value["tag"] == defaults["tag"] else value["tag"],
        jobs=int(value["jobs"]),
        tuning=value["tuning"],
        pgo_profile=pgo_profile,
    )


def _remote_cache(url: str, mode: str, scons_cache: Path | None) -> str | None:
    """The remote cache's URL (None when off), once its URL and mode are known to be usable."""
    if mode not in REMOTE_CACHE_MODES:
        raise ConfigError(
            f"remote_cache_mode={mode} is not one of {', '.join(REMOTE_CACHE_MODES)}",
            hint="ro only reads the remote cache (pull requests), rw also uploads (builds of main)",
        )
    if not url:
        return None
    problem = remote_cache.url_problem(url)
    if problem is not None:
        hint = "e.g. remote_cache=https://cache.example:9092"
        if "credentials" in problem:
            hint = f"put them in ${REMOTE_CACHE_CREDENTIALS} (user:password or a token) and leave them out of the URL"
        raise ConfigError(f"remote_cache={url} {problem}", hint=hint)  # HermeticError masks its credentials
    if scons_cache is None:
        raise ConfigError(
            "remote_cache= needs the local cache in front of it, but scons_cache=off",
            hint="leave scons_cache= at its default or give it a directory",
        )
    return url


def open_remote_cache(settings: Settings) -> RemoteCache | None:
    """The remote cache the settings ask for (credentials from the environment), or None."""
    if settings.remote_cache is None or settings.scons_cache is None:
        return None
    return RemoteCache(
        settings.remote_cache,
        writable=settings.remote_cache_writable,
        staging=settings.scons_cache / ".remote",
        credentials=os.environ.get(REMOTE_CACHE_CREDENTIALS) or None,
        credentials_variable=f"${REMOTE_CACHE_CREDENTIALS}",
    )


def _refuse_empty(name: str, value: str) -> None:
    if value.strip():
        return
    example = {
        "cache_root": f"cache_root={default_cache_root()}",
        "scons_cache": "scons_cache=DIR, or scons_cache=off to build without it",
        "build_dir": "build_dir=build",
        "dist_dir": "dist_dir=dist",
    }[name]
    raise ConfigError(f"{name}= is empty", hint=f"give a directory ({example}) or leave {name}= out for the default")


def _check_mirrors(templates: tuple[str, ...]) -> None:
    for template in templates:
        problem = fetch.mirror_template_problem(template)
        if problem is not None:
            fields = ", ".join(f"{{{field}}}" for field in fetch.MIRROR_FIELDS)
            raise ConfigError(
                f"mirrors={template} {problem}",
                hint=f"a mirror is an http(s):// or file:// URL template with the fields {fields}, "
                "e.g. mirrors=https://mirror.example/{sha256}",
            )


def _check_debian_mirrors(urls: dict[str, str | None]) -> None:
    for name, url in urls.items():
        problem = None if url is None else debian.base_url_problem(url)
        if problem is not None:
            raise ConfigError(
                f"{name}={url} {problem}",
                hint=f"give the archive's base URL, e.g. {name}=https://mirror.example/debian"
                + ("-security" if name == "debian_security_mirror" else ""),
            )


def release_tag(explicit: str | None, fallback_epoch: int) -> str:
    """The tag in archive names: ``tag=``, else the commit date of HEAD (UTC), else the lock's
    SOURCE_DATE_EPOCH when the checkout is not a git repository. Never the clock."""
    if explicit:
        return explicit
    try:
        result = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        epoch = int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else fallback_epoch
    except (OSError, ValueError, subprocess.TimeoutExpired):
        epoch = fallback_epoch
    return time.strftime("%Y%m%dT%H%M", time.gmtime(epoch))


def help_text(named_targets: dict[str, str]) -> str:
    """``scons -h``: every variable with its default, then the named targets."""
    lines = ["Usage: scons [name=value ...] [named-target ...]", "", "Variables (default in brackets):"]
    for name, default, description in VARIABLES:
        wrapped = textwrap.wrap(description, width=_HELP_WIDTH) or [""]
        lines.append(f"  {name:24s}{wrapped[0]}")
        lines += [f"  {'':24s}{line}" for line in wrapped[1:]]
        lines.append(f"  {'':24s}[{default}]")
    lines += ["", "Named targets:"]
    for name, description in named_targets.items():
        lines.append(f"  {name:24s}{description}")
    return "\n".join(lines) + "\n"
