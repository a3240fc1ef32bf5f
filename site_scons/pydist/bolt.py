"""BOLT as a post-link step of the CPython build: the interpreter executable, rewritten with a profile of the PGO
training run, before ``make install`` installs it.

CPython's own ``--enable-bolt`` exists from 3.12 only and also rewrites ``libpython3.X.so``; this step is the
same for every minor and touches exactly one file, ``python`` in the build tree (which becomes
``bin/python3.X``). The FIPS provider (``fips.so``, built by the OpenSSL rule) is never among its inputs.

1. The interpreter is linked with ``--emit-relocs`` (BOLT needs the relocations to move code).
2. ``llvm-bolt -instrument`` makes an instrumented copy; the PGO training task runs under it, each process
   writing its own profile (``-instrumentation-file-append-pid``).
3. ``merge-fdata`` merges the profiles; ``llvm-bolt`` rewrites the pristine interpreter with the merged profile.
4. CPython's tests of what BOLT has broken before (the hash functions, regular expressions, JSON, decimal,
   SQLite) and of TLS run on the rewritten interpreter; a failure fails the build.

The flags are the ones that work with LLVM 19 (see BENCHMARKS.md for what was tried): no ICF, no frame
optimization and no ``-use-gnu-stack`` (which drops ``PT_GNU_STACK``, the validator's ``elf.stack``).
"""

from __future__ import annotations

from collections.abc import Mapping

from hermetic.action import SRC, Step, sh

# The tool pin the CPython action asks for (toolchains/tools/, named per build host in the target's pin).
TOOL = "bolt"
# Where the pristine binary, the instrumented one and the profiles go, in the build tree.
WORK = f"{SRC}/bolt"
# The interpreter in CPython's build tree ($(BUILDPYTHON)).
INTERPRETER = f"{SRC}/python"

# The interpreter's link keeps its relocations for BOLT.
LINK_FLAGS = ("-Wl,--emit-relocs",)
# llvm-bolt 19 rewrites DWARF 4 debug information, but crashes on clang 19's default DWARF 5.
COMPILE_FLAGS = ("-fdebug-default-version=4",)

# Functions BOLT leaves alone. LLVM 19 does not handle computed gotos in position-independent code (CPython's
# own list, configure.ac of 3.12+); the HACL* hash compressors are python-build-standalone's list after BOLT's
# frame optimization broke them (they are not in 3.11, and the names then match nothing).
SKIP_FUNCTIONS = (
    "_PyEval_EvalFrameDefault",
    "sre_ucs1_match/1",
    "sre_ucs2_match/1",
    "sre_ucs4_match/1",
    "sha256_update/.*",
    "sha512_update/.*",
    "PyBlake2_blake2b_compress/.*",
    "PyBlake2_blake2s_compress/.*",
    "update_block.*",
)
COMMON_FLAGS = ("-update-debug-sections", f"-skip-funcs={','.join(SKIP_FUNCTIONS)}")
# Layout only: hot blocks together (ext-tsp), hot functions together (cdsort), cold parts split off.
APPLY_FLAGS = (
    "-reorder-blocks=ext-tsp",
    "-reorder-functions=cdsort",
    "-split-functions",
    "-split-eh",
    "-dyno-stats",
)

# What must still pass on the rewritten interpreter (in the build tree, before it is installed).
CHECK_TESTS = ("test_hashlib", "test_hmac", "test_ssl", "test_json", "test_re", "test_decimal", "test_sqlite3")


def _words(flags: tuple[str, ...]) -> str:
    return " ".join(f"'{flag}'" for flag in flags)


def bolt_steps(
    binary: str, *, training: str, check: str, work: str = WORK, training_env: Mapping[str, str] | None = None
) -> list[Step]:
    """Rewrite `binary` (linked with :data:`LINK_FLAGS`) in place with BOLT: instrument it, run the shell
    command `training` with the instrumented binary in its place, merge the profiles, rewrite the pristine
    binary with them, then run the shell command `check` with the result in place. `work` holds the pristine
    binary and the profiles."""
    return [
        sh(
            "bolt: instrument",
            f"rm -rf {work} && mkdir {work}\n"
            f"cp {binary} {work}/prebolt\n"
            f"llvm-bolt {work}/prebolt -o {work}/instrumented -instrument "
            f"-instrumentation-file={work}/profile -instrumentation-file-append-pid {_words(COMMON_FLAGS)}\n"
            f"cp {work}/instrumented {binary}",
        ),
        Step(name="bolt: training", argv=("/bin/sh", "-ec", training), env=dict(training_env or {})),
        sh(
            "bolt: merge profiles",
            f"set -- {work}/profile.*.fdata\n"
            f'[ -e "$1" ] || {{ echo "the training run wrote no BOLT profile" >&2; exit 1; }}\n'
            'echo "$# profiles"\n'
            f'merge-fdata "$@" > {work}/merged.fdata\nrm -f "$@"',
        ),
        sh(
            "bolt: optimize",
            f"llvm-bolt {work}/prebolt -o {work}/bolted -data={work}/merged.fdata "
            f"{_words(COMMON_FLAGS)} {_words(APPLY_FLAGS)}\n"
            f"cp {work}/bolted {binary}",
        ),
        sh("bolt: check", check),
    ]


def cpython_bolt_steps(
    make_overrides: list[str], training_prefix: tuple[str, ...] = (), training_env: Mapping[str, str] | None = None
) -> list[Step]:
    """BOLT of the interpreter in CPython's build tree, between ``make`` (the PGO build) and ``make install``:
    trained by the build's PGO task (`make_overrides` are the build's make variables), run like the PGO
    training (`training_prefix`, `training_env`), checked by :data:`CHECK_TESTS`."""
    make = " ".join((*training_prefix, "make", *(f"'{override}'" for override in make_overrides)))
    return bolt_steps(
        INTERPRETER,
        # CPython's Makefile ignores the training run's exit status (a test that fails still trains); a
        # broken interpreter is caught by the check, on the binary that ships.
        training=f"{make} run_profile_task",
        training_env=training_env,
        check=f"{INTERPRETER} -E -m test -j0 {' '.join(CHECK_TESTS)}",
    )
