"""CPython's whole test suite on an archive's interpreter, in the sandbox, judged against the reviewed list.

The suite runs as an action like the runtime tests (:mod:`pydist.archive_actions`): the real runner, bubblewrap
with no network and nothing of the host but ``/usr`` (compilers blocked) and a few files of ``/etc``, a fresh HOME
and TMPDIR, an empty environment; a foreign target's interpreter runs under the pinned qemu with the target's
guest libraries, exactly as during the build. The step always succeeds and leaves regrtest's JUnit XML, output
and exit status, which :mod:`pydist.suite_results` reads on the host. ``scripts/cpython_suite.py`` is the command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hermetic.action import FILES, OUT, SRC, TMP, Action, ActionRunner, InputFile, Step
from hermetic.archive_extract import extract_tar
from hermetic.archive_read import open_tar
from hermetic.errors import ConfigError, HermeticError
from hermetic.lock import load_lock
from hermetic.toolchain import Toolchain, host_platform, load_toolchain
from pydist.graph import make_fetcher
from pydist.paths import LOCK_FILE, PINS_SCHEMA, TOOLCHAINS_DIR
from pydist.settings import default_cache_root, resolve
from pydist.suite_results import Case, RegrtestRun, parse_junit, parse_regrtest_output

# regrtest's resources: everything but the network (the sandbox has none), the huge files, the CPU-bound
# stress tests and a display; --resources changes it.
DEFAULT_RESOURCES = "all,-network,-largefile,-cpu,-gui"
KNOWN_RESOURCES = frozenset(
    {"all", "none", "audio", "curses", "largefile", "network", "decimal", "cpu", "subprocess", "urlfetch", "gui"}
    | {"walltime", "tzdata", "xpickle"}
)
# A test file's time limit in seconds (CPython's own --slow-ci value); under the emulator, EMULATED_SLOWDOWN times it.
DEFAULT_TIMEOUT = 1200
EMULATED_SLOWDOWN = 4
# The host's /etc files the tests read as a user's programs would: service and protocol names, and the dynamic
# loader's cache (ctypes.util.find_library asks ldconfig -p, which reads it).
HOST_ETC = ("services", "protocols", "ld.so.cache")
SUITE_RULE_VERSION = 1
# What the step leaves in its output.
JUNIT = "junit.xml"
OUTPUT = "regrtest.log"
EXIT_STATUS = "exit-status"


class SuiteError(HermeticError):
    """The suite could not be run or read (not a failing test: that is the verdict)."""

    exit_code = 1


@dataclass(frozen=True)
class ArchiveFacts:
    """What the full archive's PYTHON.json says about its build."""

    version: str
    target: str
    options: str
    python_exe: str

    @property
    def minor(self) -> str:
        """``3.13``."""
        return ".".join(self.version.split(".")[:2])

    @property
    def freethreaded(self) -> bool:
        """Whether the interpreter is the free-threaded build."""
        return "freethreaded" in self.options.split("+")


def read_archive_facts(archive: Path) -> ArchiveFacts:
    """The facts of a full archive (``.tar.zst``: PYTHON.json first, the test package inside); an install_only
    archive, which has neither, is refused in one line."""
    if not archive.is_file():
        raise ConfigError(f"{archive}: no such file", hint="give the full .tar.zst archive of a build")
    if not archive.name.endswith(".tar.zst"):
        raise ConfigError(
            f"{archive.name} is not a full archive (install_only archives have no test package)",
            hint="give the cpython-*.tar.zst beside it",
        )
    with open_tar(archive) as tar:
        first = tar.next()
        data = tar.extractfile(first) if first is not None and first.name == "python/PYTHON.json" else None
        if data is None:
            raise ConfigError(f"{archive.name}: python/PYTHON.json is not its first member", hint="give a full archive")
        facts = json.loads(data.read())
    return ArchiveFacts(
        version=facts["python_version"],
        target=facts["target_triple"],
        options=facts["build_options"],
        python_exe=facts["python_exe"],
    )


@dataclass(frozen=True)
class SuiteSettings:
    """How regrtest runs: its resources, worker processes, a test file's time limit, and which files (all
    when empty)."""

    resources: str = DEFAULT_RESOURCES
    jobs: int = 0
    timeout: int = DEFAULT_TIMEOUT
    tests: tuple[str, ...] = ()

    def regrtest_args(self, junit: str) -> list[str]:
        """regrtest's command line after ``-m test``. -W shows a failed file's whole output (the reason),
        --timeout makes faulthandler dump a hung file's stacks and kill its worker, not the run."""
        args = ["-j", str(self.jobs), "-u", self.resources, "--timeout", str(self.timeout), "-W"]
        return [*args, "--junit-xml", junit, *self.tests]


def check_resources(resources: str) -> str:
    """`resources` when every name in it is one of regrtest's, with or without a leading ``-``."""
    names = [name.strip().removeprefix("-") for name in resources.split(",")]
    unknown = [name or "an empty name" for name in names if name not in KNOWN_RESOURCES]
    if unknown:
        raise ConfigError(
            f"--resources {resources!r}: {unknown[0]} is not a regrtest resource",
            hint=f"use a comma-separated list of {', '.join(sorted(KNOWN_RESOURCES))}, each optionally with -",
        )
    return resources


# ------------------------------------------------------------------------------------------- the action


def suite_toolchain(target: str) -> tuple[Toolchain, bool]:
    """The target's toolchain for running its programs here, and whether they run under the emulator.

    Natively no compiler is needed (nor fetched): the toolchain is used without it, so the sandbox has no
    ``/toolchain``. A foreign target needs its pinned emulator and guest libraries, which the runner fetches with
    the rest of the toolchain."""
    toolchain = load_toolchain(TOOLCHAINS_DIR, target, PINS_SCHEMA)
    host = host_platform()
    if host == f"{toolchain.arch}-{toolchain.os}":
        return dataclasses.replace(toolchain, compiler=None), False
    if toolchain.emulator is None or toolchain.compiler is None:
        raise ConfigError(
            f"{target} programs cannot run on this host ({host}): the target pins no emulator for it",
            hint=f"run the suite on a {toolchain.arch} {toolchain.os} machine",
        )
    return toolchain, True


def suite_action(
    archive: Path, facts: ArchiveFacts, toolchain: Toolchain, settings: SuiteSettings, label: str, emulated: bool
) -> Action:
    """The sandboxed run of regrtest on the interpreter of `archive`; its output holds the JUnit XML, regrtest's
    output and its exit status. The step itself always succeeds: the verdict is the host's."""
    python = f"{SRC}/python/{facts.python_exe}"
    regrtest = shlex.join([python, "-m", "test", *settings.regrtest_args(f"{OUT}/{JUNIT}")])
    # A user's clean environment: nothing of the action's (SOURCE_DATE_EPOCH would change how py_compile writes).
    clean_env = f"env -i PATH=/usr/bin:/bin HOME={TMP}/home TMPDIR={TMP}/tmp LANG=C.UTF-8 USER=build LOGNAME=build"
    script = (
        f"tar --zstd -xf {FILES}/{archive.name} -C {SRC}\n"
        f"mkdir -p {TMP}/home {TMP}/tmp {TMP}/cwd && cd {TMP}/cwd\n"
        f"{clean_env} {regrtest} 2>&1 | tee {OUT}/{OUTPUT}\n"
        f'echo "${{PIPESTATUS[0]}}" > {OUT}/{EXIT_STATUS}\n'
    )
    return Action(
        name=f"cpython-suite-{label}",
        rule="cpython-suite",
        rule_version=SUITE_RULE_VERSION,
        target=facts.target,
        source=None,
        patches=(),
        deps=(),
        toolchain=toolchain,
        env={},
        steps=(Step(name="regrtest", argv=("/bin/bash", "-uc", script), cwd=TMP),),
        source_date_epoch=load_lock(LOCK_FILE, PINS_SCHEMA).source_date_epoch,
        files=(InputFile(path=archive, label=archive.name),),
        output=OUT,
        record=False,
        host_etc=HOST_ETC,
        # A user's machine has a compiler: the suite builds C and C++ extensions with sysconfig's (test_cppext) and
        # ctypes asks gcc and ld where libraries are. The archive's sysconfig names the host's cc and c++. Under the
        # emulator the host's compilers make code for the host, not the target: none then.
        host_compilers=not emulated,
    )


@dataclass(frozen=True)
class SuiteRun:
    """What one sandboxed run of regrtest left: its exit status, its test files and test cases."""

    exit_status: int
    run: RegrtestRun
    cases: dict[str, Case]
    log: Path


def run_suite(archive: Path, facts: ArchiveFacts, settings: SuiteSettings, work: Path, label: str) -> SuiteRun:
    """Run regrtest on the archive's interpreter in the sandbox; read what it left (kept under `work`)."""
    toolchain, emulated = suite_toolchain(facts.target)
    cache = default_cache_root()
    runner = ActionRunner(
        fetcher=make_fetcher(resolve({})),
        toolchain_root=cache / "toolchains",
        work_root=work / "work",
        log_root=work / "logs",
        jobs=max(settings.jobs, 1),
    )
    action = suite_action(archive, facts, toolchain, settings, label, emulated)
    artifact = work / f"{label}.tar.zst"
    runner.run(action, artifact, [])
    results = work / label
    extract_tar(artifact, results, label=artifact.name)
    return read_results(results)


def read_results(results: Path) -> SuiteRun:
    """The run recorded in a results directory (``exit-status``, ``regrtest.log``, ``junit.xml``)."""
    output = (results / OUTPUT).read_text(errors="replace")
    run = parse_regrtest_output(output)
    status = int((results / EXIT_STATUS).read_text().strip() or "-1")
    if not run.finished:
        last = [line for line in output.splitlines() if line.strip()][-3:]
        raise SuiteError(
            f"regrtest ended (exit status {status}) without its summary: {' | '.join(last) or 'no output'}",
            hint=f"its output: {results / OUTPUT}",
        )
    junit = results / JUNIT
    cases = parse_junit(junit.read_bytes()) if junit.is_file() else {}
    return SuiteRun(status, run, cases, results / OUTPUT)


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def default_work_dir(archive: Path) -> Path:
    """Where a run keeps its logs and results by default: a fresh directory named after the archive."""
    base = Path("build") / "suite"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=archive.name.removesuffix(".tar.zst") + "-", dir=base))
