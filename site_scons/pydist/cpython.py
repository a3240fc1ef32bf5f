"""Recipe of CPython: configure, PGO/LTO build, install, and the facts the distribution needs.

Choices (see pbs-facts in the design notes for why python-build-standalone makes the same ones):

- Every stdlib extension is built into libpython (``MODULE_BUILDTYPE=static``), so ``_ssl`` and
  ``_hashlib`` share one copy of the static OpenSSL; only the test modules (and ``_crypt``, which needs the
  system libcrypt) are shared objects. ``-Wl,--exclude-libs,ALL`` keeps every symbol of the static
  dependency libraries out of the dynamic symbol tables.
- ``--enable-shared`` ships ``libpython3.X.so`` for embedders, but the interpreter links the libpython
  objects directly (``LINK_PYTHON_OBJS``), as Debian and python-build-standalone do, for speed.
- A module configure finds missing or disabled fails the build unless it is listed in
  ``NOT_BUILT`` with the reason.
"""

from __future__ import annotations

from pathlib import Path

from hermetic.action import DEPS, FILES, OUT, SRC, InputFile, Step
from pydist.compile_env import CompileEnv
from pydist.libraries import sh
from pydist.matrix import BuildRequest

# Where CPython is configured to live; the install is relocatable, this only names the build-time prefix.
PREFIX = "/install"
# The CPython artifact's layout: /build/out/python/{install,build,build-info.json}.
ARTIFACT_ROOT = f"{OUT}/python"

IN_SANDBOX = Path(__file__).resolve().parent / "in_sandbox"

# Helper files the CPython action reads (their hashes are part of its key).
HELPER_FILES = tuple(
    InputFile(path=IN_SANDBOX / name, label=f"site_scons/pydist/in_sandbox/{name}")
    for name in ("collect_build_info.py", "printvar.mk")
)

# Extension modules deliberately left out, with why. Anything else configure does not build is an error.
NOT_BUILT = {
    "_tkinter": "Tcl/Tk is not built yet",
    "_dbm": "Berkeley DB is not built yet",
    "_gdbm": "GNU dbm is GPL-licensed",
    "nis": "needs libnsl/libtirpc, removed from glibc; python-build-standalone does not ship it",
    "_scproxy": "macOS only",
    "_testclinic": "Argument Clinic's own test module",
    "_testclinic_limited": "Argument Clinic's own test module",
    "xxlimited": "an example module",
    "xxlimited_35": "an example module",
}

# Built as shared objects (in lib-dynload) instead of into libpython: the test modules, so the
# install_only archives can drop them, and _crypt, whose libcrypt.so.1 libpython must not depend on.
SHARED_MODULES = (
    "_ctypes_test",
    "_testbuffer",
    "_testcapi",
    "_testimportmultiple",
    "_testinternalcapi",
    "_testlimitedcapi",
    "_testmultiphase",
    "_testsinglephase",
    "_testexternalinspection",
    "_xxtestfuzz",
    "_crypt",
)


def _version_at_least(request: BuildRequest, minor: int) -> bool:
    return int(request.python_minor.split(".")[1]) >= minor


def configure_args(request: BuildRequest, ce: CompileEnv) -> list[str]:
    """The ./configure command line for `request`."""
    args = [
        f"--prefix={PREFIX}",
        f"--build={ce.build_triple}",
        f"--host={ce.host_triple}",
        "--enable-shared",
        f"--with-openssl={DEPS}",
        "--with-openssl-rpath=no",
        "--with-system-expat",
        "--with-system-libmpdec",
        "--with-readline=editline",
        "--with-ensurepip=install",
        "--enable-loadable-sqlite-extensions",
        "--with-dbmliborder=",
        "MODULE_BUILDTYPE=static",
        "PKG_CONFIG=pkg-config --static",
    ]
    options = request.optimizations.split("+")
    if "pgo" in options:
        args.append("--enable-optimizations")
    if "lto" in options:
        args.append("--with-lto=thin")
    if "debug" in options:
        args.append("--with-pydebug")
    if request.freethreaded:
        args.append("--disable-gil")
    return args


def make_overrides(request: BuildRequest) -> list[str]:
    """Make variables that link the interpreter with libpython's objects, give it an $ORIGIN rpath so
    extensions that wrongly link libpython.so still find the shipped one, byte-compile the stdlib
    reproducibly, and run the PGO training on every core (-j0: as many workers as CPUs, which the key does
    not depend on)."""
    overrides = [
        "LINK_PYTHON_OBJS=$(LIBRARY_OBJS)",
        r"LINKFORSHARED=-Xlinker -export-dynamic -Wl,--disable-new-dtags -Wl,-rpath,\$$ORIGIN/../lib",
        # Byte-compile the stdlib in one process: a .pyc depends on what the compiling process interned and
        # merged before it (e.g. whether a string constant is marshalled as interned), so -j0's workers,
        # which get files in a timing-dependent order, gave different .pyc files from build to build.
        "COMPILEALL_OPTS=-j1",
    ]
    if "pgo" in request.optimizations.split("+"):
        overrides.append("PROFILE_TASK=-m test --pgo --timeout=1200 -j0")
    return overrides


def _setup_local() -> str:
    """Shell that writes Modules/Setup.local: the shared modules (their lines copied from
    Setup.stdlib.in, whose first rule wins) and the disabled ones."""
    shared = " ".join(SHARED_MODULES)
    disabled = " ".join(sorted(NOT_BUILT))
    return (
        "{ echo '# Generated by the build: shared test modules, disabled modules.';\n"
        "  echo '*shared*';\n"
        f"  for m in {shared}; do\n"
        '    marker="@MODULE_$(echo $m | tr a-z A-Z)_TRUE@"\n'
        '    sed -n "s/^$marker\\($m .*\\)/\\1/p" Modules/Setup.stdlib.in; done;\n'
        f"  echo '*disabled*'; for m in {disabled}; do echo $m; done; }} > Modules/Setup.local\n"
        "cat Modules/Setup.local"
    )


def _check_optimizations(request: BuildRequest) -> str:
    """Shell that fails unless configure really enabled the requested PGO and LTO (a compiler configure does
    not recognize gets neither, silently)."""
    options = request.optimizations.split("+")
    checks = []
    if "pgo" in options:
        checks.append(("PGO_PROF_USE_FLAG", "fprofile-instr-use", "PGO"))
    if "lto" in options:
        checks.append(("CONFIGURE_LDFLAGS_NODIST", "-flto=thin", "LTO"))
    script = ""
    for variable, needle, what in checks:
        script += (
            f"grep -q -E '^{variable}[[:space:]]*=.*{needle}' Makefile || "
            f"{{ echo 'configure did not enable {what} ({variable} has no {needle})' >&2; exit 1; }}\n"
        )
    return script + f"echo 'optimizations as requested: {request.optimizations}'"


def _check_modules() -> str:
    """Shell that fails when configure left out a module that is not in NOT_BUILT."""
    allowed = "|".join(sorted(NOT_BUILT))
    return (
        "bad=$(sed -n 's/^MODULE_\\([A-Z0-9_]*\\)_STATE=\\(.*\\)$/\\1 \\2/p' Makefile | "
        'awk \'$2 != "yes" {print tolower($1) "=" $2}\' | '
        f"grep -v -E '^({allowed})=' || true)\n"
        'if [ -n "$bad" ]; then echo "extension modules not built: $bad" >&2; exit 1; fi\n'
        "echo all expected extension modules are built"
    )


def cpython_env(request: BuildRequest, ce: CompileEnv, label: str) -> dict[str, str]:
    """Compile environment of the CPython build."""
    optimize = "-Og" if "debug" in request.options else "-O2"
    env = ce.autotools_env(label, optimize=optimize)
    env["CPPFLAGS"] = f"-I{DEPS}/include -I{DEPS}/include/ncursesw -I{DEPS}/include/uuid"
    env["LDFLAGS"] = f"{ce.ldflags()} -L{DEPS}/lib -Wl,--exclude-libs,ALL"
    # The PGO training run writes its profiles here; LLVM_PROFDATA is found on PATH (the pinned one).
    env["LLVM_PROFILE_FILE"] = f"{SRC}/code-%p.profclangr"
    return env


def cpython_steps(request: BuildRequest, ce: CompileEnv, label: str) -> list[Step]:
    """configure, make (PGO training included for pgo builds), install, and collect build facts."""
    overrides = make_overrides(request)
    return [
        sh("write Setup.local", _setup_local()),
        Step(name="configure", argv=("./configure", *configure_args(request, ce))),
        sh("check modules", _check_modules()),
        sh("check optimizations", _check_optimizations(request)),
        Step(name="build", argv=("make", *overrides)),
        Step(name="install", argv=("make", *overrides, "install", f"DESTDIR={ARTIFACT_ROOT}")),
        # python-build-standalone ships bin/python next to bin/python3, pointing at the same file.
        sh("python symlink", f'cd {ARTIFACT_ROOT}{PREFIX}/bin && ln -s "$(readlink python3)" python'),
        sh(
            "collect build facts",
            f"{ARTIFACT_ROOT}{PREFIX}/bin/python3 -E -s {FILES}/collect_build_info.py "
            f"{SRC} {ARTIFACT_ROOT}{PREFIX} {DEPS} {ARTIFACT_ROOT}",
        ),
    ]
