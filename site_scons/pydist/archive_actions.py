"""Sandboxed steps on the archives of a build: the runtime tests, and stripping.

Each is an action like any other (same sandbox, same key), with the archive it works on as an input file.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hermetic.action import DEPS, FILES, OUT, Action, InputFile, Step, bash, sh
from pydist import catalog
from pydist.catalog import Library
from pydist.dist_context import DistContext
from pydist.paths import IN_SANDBOX, RUNTIME_CHILDREN, repo_label
from pydist.python_minors import PythonMinor


def repo_file(path: Path) -> InputFile:
    """A file of the repository given to an action, named by its repository path."""
    return InputFile(path=path, label=repo_label(path))


RUNTIME_TESTS = repo_file(IN_SANDBOX / "runtime_tests.py")
# The programs runtime_tests.py runs with the interpreter under test, which it finds in children/ beside itself.
CHILD_PROGRAMS = tuple(repo_file(path) for path in sorted(RUNTIME_CHILDREN.glob("*.py")))
# Where the runtime tests' step lays out runtime_tests.py and children/ as in the repository: the sandbox shows the
# action's files in one flat directory.
RUNTIME_TESTS_DIR = "/build/tmp/runtime-tests-program"
# Rule version of these actions: bump when what they do changes in a way their steps would not show.
ARCHIVE_RULE_VERSION = 1


def report_path(ctx: DistContext, archive: Path) -> Path:
    """Where the runtime tests of `archive` leave their report."""
    return ctx.tests_root / f"{archive.name}.report.tar.zst"


def full_archive_beside(archive: Path) -> Path:
    """The full archive of the build `archive` belongs to: archives sit in their dist directory (or in .staging
    below it while they are checked), and the full archive is named after that directory."""
    dist_dir = archive.parent.parent if archive.parent.name == ".staging" else archive.parent
    return dist_dir / f"{dist_dir.name}.tar.zst"


def runtime_test_action(ctx: DistContext, archive: Path) -> Action:
    """The sandboxed action that unpacks an install_only archive and runs the runtime tests on it.

    CPython's test package and test extension modules, which install_only archives leave out, come from the
    full archive beside it, so test_hashlib, test_hmac and test_ssl run against the archive under test, in and
    outside FIPS mode, with the reviewed FIPS skip list. A foreign target's programs run under the sandbox's
    emulator, so the same steps test an aarch64 archive on an x86_64 host."""
    libraries = library_version_facts(catalog.used_on(ctx.toolchain.os), ctx.request.minor)
    full = full_archive_beside(archive)
    skips = IN_SANDBOX / f"fips_skips_{ctx.request.python_minor}.txt"
    tests = "/build/tmp/cpython-tests"
    stdlib = "/build/tmp/full/python/install/lib/python3*"
    test_modules = ("_test*", "_ctypes_test*", "_xxtestfuzz*")
    return _archive_action(
        ctx,
        "runtime-tests",
        archive,
        deps=("openssl",),
        steps=(
            sh("unpack", f"mkdir -p /build/tmp/dist && tar -xzf {FILES}/{archive.name} -C /build/tmp/dist"),
            sh(
                "unpack CPython's tests",
                f"mkdir -p /build/tmp/full {tests} && tar --zstd -xf {FILES}/{full.name} -C /build/tmp/full "
                "--wildcards 'python/install/lib/python3*/test/*' "
                + " ".join(f"'python/install/lib/python3*/lib-dynload/{m}'" for m in test_modules)
                + f" && mv {stdlib}/test {tests}/ && mv {stdlib}/lib-dynload/* {tests}/",
            ),
            sh("lay out the runtime tests", lay_out_runtime_tests()),
            sh(
                "runtime tests",
                f"/build/tmp/dist/python/bin/python3 -E -s {RUNTIME_TESTS_DIR}/{RUNTIME_TESTS.name_inside} "
                "/build/tmp/dist/python "
                f"--libraries {shlex.quote(json.dumps(libraries, separators=(',', ':')))} "
                f"--fips-provider {ctx.fips_provider.version} --openssl-cli {DEPS}/bin/openssl "
                f"--cpython-tests {tests} --fips-skips {FILES}/{skips.name} "
                f"--allocator {ctx.request.minor.allocator_of(ctx.request.freethreaded)} "
                f"--report {OUT}/report.json",
            ),
        ),
        helpers=(
            RUNTIME_TESTS,
            *CHILD_PROGRAMS,
            repo_file(skips),
            InputFile(path=full, label=full.name),
        ),
        output=OUT,
    )


def library_version_facts(libraries: Mapping[str, Library], minor: PythonMinor) -> list[dict[str, str]]:
    """What the runtime tests' pinned_library_versions check is told of each library of `libraries` (those the
    target uses), from its catalogue row: ``library``, ``display`` and the pinned ``version``, then either how the
    interpreter reads its version (``module``, ``expression``) or why nothing is read: ``not_built`` when `minor`
    builds none of its extension modules, else ``unreadable`` when its row says why the version cannot be read."""
    facts = []
    for name, library in libraries.items():
        row = {"library": name, "display": library.display, "version": library.pin.version}
        missing = [reason for module in library.modules if (reason := minor.lacks(module)) is not None]
        if len(missing) == len(library.modules):
            row["not_built"] = "; ".join(missing)
        elif isinstance(library.runtime_version, str):
            row["unreadable"] = library.runtime_version
        else:
            row |= {"module": library.runtime_version.module, "expression": library.runtime_version.expression}
        facts.append(row)
    return facts


def lay_out_runtime_tests() -> str:
    """The script that copies runtime_tests.py and its child programs from the sandbox's files to
    RUNTIME_TESTS_DIR, the child programs in children/ beside the script."""
    children = " ".join(f"{FILES}/{program.name_inside}" for program in CHILD_PROGRAMS)
    return (
        f"mkdir -p {RUNTIME_TESTS_DIR}/children && cp {FILES}/{RUNTIME_TESTS.name_inside} {RUNTIME_TESTS_DIR}/ "
        f"&& cp {children} {RUNTIME_TESTS_DIR}/children/"
    )


def strip_action(ctx: DistContext, install_only: Path) -> Action:
    """Strip debug info from every binary of an install_only archive except the FIPS module, whose bytes are
    what fipsmodule.cnf's module-mac covers; then prove the module is unchanged."""
    module = ctx.fips_module
    script = (
        "cp -a /build/tmp/in/python /build/out/python\n"
        + ctx.platform.strip_script("/build/out/python", f"*/{module}")
        + f"cmp /build/tmp/in/python/{module} /build/out/python/{module}\n"
    )
    return _archive_action(
        ctx,
        "strip",
        install_only,
        deps=(),
        steps=(
            sh("unpack", f"mkdir -p /build/tmp/in && tar -xzf {FILES}/{install_only.name} -C /build/tmp/in"),
            bash("strip", script),
        ),
        output=f"{OUT}/python",
        output_prefix="python",
        output_compression="gz",
    )


def _archive_action(
    ctx: DistContext,
    rule: str,
    archive: Path,
    *,
    deps: tuple[str, ...],
    steps: tuple[Step, ...],
    helpers: tuple[InputFile, ...] = (),
    **output: Any,
) -> Action:
    """A sandboxed step on one archive of this distribution, named after its rule and the archive."""
    return Action(
        name=f"{rule}-{archive.name.removesuffix('.tar.gz')}",
        rule=rule,
        rule_version=ARCHIVE_RULE_VERSION,
        target=ctx.toolchain.triple,
        source=None,
        patches=(),
        deps=deps,
        toolchain=ctx.toolchain,
        env={},
        steps=steps,
        source_date_epoch=ctx.lock.source_date_epoch,
        files=(InputFile(path=archive, label=archive.name), *helpers),
        record=False,
        **output,
    )
