"""The build matrix: which targets, Python versions and option sets exist, and how a request is validated.

Targets are the pin files in ``toolchains/``, Python minors the rows of ``python_minors``, option sets those of
``options``: nothing here repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hermetic import log
from hermetic.errors import ConfigError
from hermetic.lock import SourcesLock
from hermetic.pins import Pin
from hermetic.toolchain import host_platform
from pydist import options as build_options
from pydist import python_minors
from pydist.options import BuildOptions
from pydist.python_minors import PythonMinor
from pydist.targets import all_targets, load_targets

_RUNS_ON = {triple: target.runs_on for triple, target in all_targets().items()}
# Linux targets first (what these machines build), then macOS.
TARGETS = tuple(sorted(_RUNS_ON, key=lambda t: (_RUNS_ON[t].endswith("macos"), t)))
# The triple a host builds by default: the one that runs on it.
DEFAULT_TARGET_FOR_HOST = {host: triple for triple, host in _RUNS_ON.items()}

DEFAULT_PYTHON = "3.13"
SUPPORTED_MINORS = python_minors.SUPPORTED
OPTIONS = build_options.ALL
DEFAULT_OPTIONS = build_options.DEFAULT
RELEASE_OPTIONS = build_options.RELEASE


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
        options: (BuildOptions) the option set, e.g. ``freethreaded+pgo+lto``.
    """

    target: str
    python: Pin
    options: BuildOptions

    @property
    def python_version(self) -> str:
        """Full version, e.g. ``3.13.15``."""
        return self.python.version

    @property
    def python_minor(self) -> str:
        """``X.Y``."""
        return self.minor.minor

    @property
    def minor(self) -> PythonMinor:
        """What differs for this Python minor."""
        return python_minors.minor_of(self.python.version)

    @property
    def freethreaded(self) -> bool:
        """Whether the GIL is disabled (``--disable-gil``)."""
        return self.options.freethreaded


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


def buildable_minors() -> tuple[str, ...]:
    """The minors with a reviewed FIPS patch series: the only ones a build accepts."""
    return tuple(m.minor for m in python_minors.MINORS.values() if m.fips_patches)


def validate_request(lock: SourcesLock, *, target: str, py: str, options: str, planning: bool = False) -> BuildRequest:
    """Check the three command-line values together and return the request they describe.

    `planning` (``scons -n``) lets a minor without its FIPS patch series be planned, with a warning: its rules
    can be inspected, but no build of it is ever run.
    """
    if target not in TARGETS:
        raise ConfigError(f"target={target} is not a supported target", hint=f"valid: {', '.join(TARGETS)}")
    parsed = BuildOptions.parse(options)
    python = resolve_python(lock, py)
    request = BuildRequest(target=target, python=python, options=parsed)
    if request.freethreaded and not request.minor.freethreading:
        raise ConfigError(
            f"options={options} needs Python 3.13 or newer, py={py} is {python.version}",
            hint="use py=3.13 or newer, or drop freethreaded",
        )
    if not request.minor.fips_patches:
        # The FIPS behaviour (finding fips.so, provider-backed hashes, the scoped switch) lives in these patches.
        minor = request.python_minor
        refusal = ConfigError(
            f"CPython {minor} has no patch series in patches/cpython/{minor} yet, so its build would lack the FIPS "
            "changes",
            hint=f"use py={' or py='.join(buildable_minors())}, or port patches/cpython/3.13 to {minor}",
        )
        if not planning:
            raise refusal
        log.warn(f"{refusal.one_line()} (planning only)")
    return request


# ------------------------------------------------------------------------------------------------ CI matrix

# The GitHub-hosted runner of each build host (<arch>-<os>).
CI_RUNNERS = {
    "x86_64-linux": "ubuntu-24.04",
    "aarch64-linux": "ubuntu-24.04-arm",
    "aarch64-macos": "macos-15",  # the runner image that carries the pinned Xcode 16.4
}
# Where an archive is also run natively after its build, when the build host could not run it natively
# (aarch64 Linux is cross-built on x86_64 and only tested under qemu-user there) or to reach an older
# OS than the build host (macOS 14, nearer the 11.0 floor).
CI_TEST_RUNNERS = {
    "aarch64-unknown-linux-gnu": ("aarch64-linux", "ubuntu-24.04-arm"),
    "aarch64-apple-darwin": ("aarch64-macos", "macos-14"),
}
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, kw_only=True)
class CiBuild:
    """One job of the CI build matrix: a (target, Python minor, options) built on one kind of host.

    Attributes:
        target: (str) target triple.
        python: (str) Python minor, ``X.Y``.
        options: (str) a release option set.
        host: (str) the build host, ``<arch>-<os>``.
        runner: (str) the GitHub runner label of that host.
        test_runner: (str) the runner that also runs the archives natively, or ``""``.
    """

    target: str
    python: str
    options: str
    host: str
    runner: str
    test_runner: str

    @property
    def artifact(self) -> str:
        """The name of the CI artifact holding this job's ``dist/`` (unique within a workflow run)."""
        return f"cpython-{self.python}-{self.target}-{self.options}-on-{self.host}"

    @property
    def runner_os(self) -> str:
        """``linux`` or ``macos``: the workflow that runs this job."""
        return self.host.split("-", 1)[1]

    def as_json(self) -> dict[str, object]:
        """The matrix entry GitHub Actions sees (every field, plus the artifact name)."""
        return {
            "target": self.target,
            "python": self.python,
            "options": self.options,
            "host": self.host,
            "runner": self.runner,
            "test_runner": self.test_runner,
            "artifact": self.artifact,
        }


def build_hosts(target: str, toolchains_dir: Path) -> tuple[str, ...]:
    """The hosts (``<arch>-<os>``) the toolchain pin of `target` says can build it."""
    return load_targets(toolchains_dir)[target].build_hosts


def ci_builds(repo_root: Path = _REPO_ROOT) -> list[CiBuild]:
    """Every release build CI runs: every target, buildable Python minor, release option set and capable CI host.

    A target is built on every host its toolchain pin allows that has a GitHub runner, so a native aarch64
    Linux build appears as soon as ``toolchains/aarch64-unknown-linux-gnu.toml`` lists ``aarch64-linux``.
    """
    builds = []
    for target in TARGETS:
        hosts = [h for h in build_hosts(target, repo_root / "toolchains") if h in CI_RUNNERS]
        for python in buildable_minors():
            for options in RELEASE_OPTIONS:
                if BuildOptions.parse(options).freethreaded and not python_minors.MINORS[python].freethreading:
                    continue
                for host in hosts:
                    test_host, test_runner = CI_TEST_RUNNERS.get(target, ("", ""))
                    native_here = test_host == host and test_runner == CI_RUNNERS[host]
                    builds.append(
                        CiBuild(
                            target=target,
                            python=python,
                            options=options,
                            host=host,
                            runner=CI_RUNNERS[host],
                            test_runner="" if native_here else test_runner,
                        )
                    )
    return builds


def suite_jobs(builds: list[CiBuild]) -> list[dict[str, str]]:
    """The release gate's jobs (scripts/cpython_suite.py): CPython's whole test suite once per Linux target, Python
    minor and release option set, from the artifact of its build on a host of the target's architecture when there
    is one (the release refuses builds of one archive that differ between hosts), on a runner of that architecture:
    natively, since the whole suite under qemu takes hours."""
    jobs: dict[tuple[str, str, str], dict[str, str]] = {}
    for build in builds:
        if build.runner_os != "linux":
            continue
        arch = build.target.split("-", 1)[0]
        native = build.host.split("-", 1)[0] == arch
        runner = build.runner if native else build.test_runner
        key = (build.target, build.python, build.options)
        if runner and (key not in jobs or native):
            jobs[key] = {**dict(zip(("target", "python", "options"), key, strict=True)), "artifact": build.artifact}
            jobs[key]["runner"] = runner
    return [jobs[key] for key in sorted(jobs)]
