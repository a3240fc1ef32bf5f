"""The build matrix: which targets, Python versions and option sets exist, and how a request is validated."""

from __future__ import annotations

from dataclasses import dataclass

from hermetic.errors import ConfigError
from hermetic.lock import SourcesLock
from hermetic.pins import Pin
from hermetic.toolchain import host_platform

TARGETS = ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "aarch64-apple-darwin")

# The triple a host builds by default.
DEFAULT_TARGET_FOR_HOST = {
    "x86_64-linux": "x86_64-unknown-linux-gnu",
    "aarch64-linux": "aarch64-unknown-linux-gnu",
    "aarch64-macos": "aarch64-apple-darwin",
}

DEFAULT_PYTHON = "3.13"
SUPPORTED_MINORS = ("3.10", "3.11", "3.12", "3.13", "3.14")

# Release builds first, then the development ones.
OPTIONS = ("pgo+lto", "freethreaded+pgo+lto", "noopt", "freethreaded+noopt", "debug", "freethreaded+debug")
DEFAULT_OPTIONS = "pgo+lto"
FREETHREADED_SINCE = (3, 13)


def default_target() -> str:
    """The target that matches this host, or the first target when the host builds none."""
    return DEFAULT_TARGET_FOR_HOST.get(host_platform(), TARGETS[0])


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


@dataclass(frozen=True, kw_only=True)
class BuildRequest:
    """One validated (target, Python, options) combination.

    Attributes:
        target: (str) target triple.
        python: (Pin) the pinned CPython source.
        options: (str) ``+``-joined option set, e.g. ``freethreaded+pgo+lto``.
    """

    target: str
    python: Pin
    options: str

    @property
    def python_version(self) -> str:
        """Full version, e.g. ``3.13.15``."""
        return self.python.version

    @property
    def python_minor(self) -> str:
        """``X.Y``."""
        return ".".join(self.python.version.split(".")[:2])

    @property
    def freethreaded(self) -> bool:
        """Whether the GIL is disabled (``--disable-gil``)."""
        return "freethreaded" in self.options.split("+")

    @property
    def optimizations(self) -> str:
        """The options without ``freethreaded``: ``pgo+lto``, ``noopt`` or ``debug``."""
        return "+".join(o for o in self.options.split("+") if o != "freethreaded")


def resolve_python(lock: SourcesLock, requested: str) -> Pin:
    """Map ``X.Y`` to the newest pinned ``X.Y.Z`` and ``X.Y.Z`` to exactly that pin."""
    pinned = sorted(lock.versions("cpython"), key=_version_key)
    parts = requested.split(".")
    valid = f"valid: {', '.join(SUPPORTED_MINORS)} or a pinned release ({', '.join(pinned)})"
    if not all(p.isdigit() for p in parts) or len(parts) not in (2, 3):
        raise ConfigError(f"py={requested} is not a Python version", hint=valid)
    minor = ".".join(parts[:2])
    if minor not in SUPPORTED_MINORS:
        raise ConfigError(f"py={requested}: Python {minor} is not supported", hint=valid)
    if len(parts) == 2:
        candidates = [v for v in pinned if v.startswith(minor + ".")]
        if not candidates:
            raise ConfigError(f"py={requested}: no {minor}.x release is pinned", hint=valid)
        return lock.get("cpython", candidates[-1])
    if requested not in pinned:
        raise ConfigError(f"py={requested}: this release is not pinned in {lock.path.name}", hint=valid)
    return lock.get("cpython", requested)


def validate_request(lock: SourcesLock, *, target: str, py: str, options: str) -> BuildRequest:
    """Check the three command-line values together and return the request they describe."""
    if target not in TARGETS:
        raise ConfigError(f"target={target} is not a supported target", hint=f"valid: {', '.join(TARGETS)}")
    if options not in OPTIONS:
        raise ConfigError(f"options={options} is not a supported option set", hint=f"valid: {', '.join(OPTIONS)}")
    python = resolve_python(lock, py)
    request = BuildRequest(target=target, python=python, options=options)
    if request.freethreaded and _version_key(request.python_minor) < FREETHREADED_SINCE:
        raise ConfigError(
            f"options={options} needs Python 3.13 or newer, py={py} is {python.version}",
            hint="use py=3.13 or newer, or drop freethreaded",
        )
    return request
