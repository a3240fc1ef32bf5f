"""What differs between CPython minors, as data: one row per minor, read by the build matrix, the CPython
rule, the runtime tests and PYTHON.json.

3.11 and 3.13 were checked against their sources (``Modules/Setup.stdlib.in`` of 3.11.2 and 3.13.15); the
other rows follow CPython's changelogs and are exercised by unit tests and ``scons -n`` only, because their
sources cannot be fetched on the machines this project is built on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hermetic.errors import ConfigError

# Left out on every minor that has them, with why (anything else configure does not build fails the build).
_NOT_BUILT_EVERYWHERE = {
    "_tkinter": "Tcl/Tk is not built yet",
    "_dbm": "Berkeley DB is not built yet",
    "_gdbm": "GNU dbm is GPL-licensed",
    "_testclinic": "Argument Clinic's own test module",
    "_testclinic_limited": "Argument Clinic's own test module",
    "xxlimited": "an example module",
    "xxlimited_35": "an example module",
}
_NIS = {"nis": "needs libnsl/libtirpc, removed from glibc; python-build-standalone does not ship it"}

# Extension modules that link a pinned library and came with a later minor (CPython's What's New): older minors have
# none, so nothing of theirs is built or checked there (the runtime tests' library versions).
MODULES_SINCE = {"_zstd": "3.14"}

# Test modules every minor since 3.10 has; they are built as shared objects so install_only can drop them.
_TEST_MODULES = (
    "_ctypes_test",
    "_testbuffer",
    "_testcapi",
    "_testimportmultiple",
    "_testinternalcapi",
    "_testmultiphase",
    "_xxtestfuzz",
)


# The configure option of the tail-calling interpreter (clang 19+, 3.14+): opcodes dispatch by tail calls.
TAIL_CALLING_INTERPRETER = "--with-tail-call-interp"

# Object allocators a build can default to: CPython's own, and the vendored mimalloc (3.13+).
PYMALLOC = "pymalloc"
MIMALLOC = "mimalloc"


@dataclass(frozen=True, kw_only=True)
class PythonMinor:
    """How one CPython minor is built.

    Attributes:
        minor: (str) ``X.Y``.
        fips_patches: (bool) ``patches/cpython/X.Y`` holds its reviewed FIPS patch series; a minor without one is
            refused (its build would lack the FIPS behaviour).
        freethreading: (bool) ``--disable-gil`` exists.
        setup_stdlib: (bool) configure writes ``Modules/Setup.stdlib`` and ``MODULE_*_STATE`` (3.11+), which the
            rule uses to build modules statically and to check none is missing.
        test_modules: (tuple[str, ...]) modules only CPython's test suite uses: built shared, dropped from
            install_only archives.
        system_library_modules: (tuple[str, ...]) modules built shared because they link a system library that
            libpython must not depend on (``_crypt`` needs libcrypt.so.1).
        not_built: (Mapping[str, str]) modules of this minor deliberately left out, with why.
        builtin_hashes: (tuple[str, ...]) CPython's own hash modules (used only with usedforsecurity=False in FIPS
            mode).
        release_configure: (tuple[str, ...]) configure arguments of pgo+lto builds beyond the common ones.
        bolt: (bool) configure knows ``--enable-bolt`` (3.12+).
        allocator: (str) the default object allocator of builds with the GIL: :data:`PYMALLOC`, or
            :data:`MIMALLOC` where the minor's patch series makes it the default (free-threaded builds always use
            mimalloc).
    """

    minor: str
    fips_patches: bool
    freethreading: bool
    setup_stdlib: bool
    test_modules: tuple[str, ...]
    system_library_modules: tuple[str, ...] = ()
    not_built: Mapping[str, str] = field(default_factory=dict)
    builtin_hashes: tuple[str, ...] = ("_md5", "_sha1", "_sha2", "_sha3", "_blake2")
    release_configure: tuple[str, ...] = ()
    bolt: bool = False
    allocator: str = PYMALLOC

    @property
    def version(self) -> tuple[int, int]:
        """``(X, Y)``."""
        major, minor = self.minor.split(".")
        return int(major), int(minor)

    def allocator_of(self, freethreaded: bool) -> str:
        """The object allocator a build of this minor uses when ``PYTHONMALLOC`` does not name one."""
        return MIMALLOC if freethreaded else self.allocator

    def lacks(self, module: str) -> str | None:
        """Why builds of this minor have no extension module `module` (left out, or newer than the minor), or None
        when they have it."""
        if module in self.not_built:
            return self.not_built[module]
        since = MODULES_SINCE.get(module)
        if since is not None and self.version < minor_of(since).version:
            return f"{module} comes with Python {since}"
        return None

    @property
    def configure(self) -> tuple[str, ...]:
        """configure arguments of every build of this minor: mimalloc is required where it is the default, so a
        toolchain without C11 atomics fails configure instead of quietly building a pymalloc interpreter."""
        return ("--with-mimalloc",) if self.allocator == MIMALLOC else ()

    @property
    def shared_modules(self) -> tuple[str, ...]:
        """Every module built as a shared object instead of into libpython."""
        return (*self.test_modules, *self.system_library_modules)


MINORS: dict[str, PythonMinor] = {
    m.minor: m
    for m in (
        PythonMinor(
            minor="3.10",
            fips_patches=False,
            freethreading=False,
            setup_stdlib=False,
            test_modules=_TEST_MODULES,
            system_library_modules=("_crypt",),
            not_built={**_NOT_BUILT_EVERYWHERE, **_NIS},
            builtin_hashes=("_md5", "_sha1", "_sha256", "_sha512", "_sha3", "_blake2"),
        ),
        PythonMinor(
            minor="3.11",
            fips_patches=True,
            freethreading=False,
            setup_stdlib=True,
            test_modules=_TEST_MODULES,
            system_library_modules=("_crypt",),
            not_built={**_NOT_BUILT_EVERYWHERE, **_NIS},
            builtin_hashes=("_md5", "_sha1", "_sha256", "_sha512", "_sha3", "_blake2"),
        ),
        PythonMinor(
            minor="3.12",
            fips_patches=False,
            freethreading=False,
            setup_stdlib=True,
            test_modules=(*_TEST_MODULES, "_testsinglephase"),
            system_library_modules=("_crypt",),
            not_built={**_NOT_BUILT_EVERYWHERE, **_NIS},
            bolt=True,
        ),
        PythonMinor(
            minor="3.13",
            fips_patches=True,
            freethreading=True,
            setup_stdlib=True,
            test_modules=(*_TEST_MODULES, "_testsinglephase", "_testlimitedcapi", "_testexternalinspection"),
            not_built=_NOT_BUILT_EVERYWHERE,
            bolt=True,
            # patches/cpython/3.13/0006: 3-12 % faster than pymalloc on the subset, ~10 % more peak RSS (BENCHMARKS.md).
            allocator=MIMALLOC,
        ),
        PythonMinor(
            minor="3.14",
            fips_patches=False,
            freethreading=True,
            setup_stdlib=True,
            test_modules=(*_TEST_MODULES, "_testsinglephase", "_testlimitedcapi"),
            not_built=_NOT_BUILT_EVERYWHERE,
            # The tail-calling interpreter (clang 19+) is what python-build-standalone ships for 3.14.
            release_configure=(TAIL_CALLING_INTERPRETER,),
            bolt=True,
        ),
        PythonMinor(
            minor="3.15",
            fips_patches=False,
            freethreading=True,
            setup_stdlib=True,
            test_modules=(*_TEST_MODULES, "_testsinglephase", "_testlimitedcapi"),
            not_built=_NOT_BUILT_EVERYWHERE,
            release_configure=(TAIL_CALLING_INTERPRETER,),
            bolt=True,
        ),
    )
}

SUPPORTED = tuple(MINORS)


def minor_of(version: str) -> PythonMinor:
    """The row of ``X.Y`` or ``X.Y.Z``; a ConfigError for a minor this project does not know."""
    minor = ".".join(version.split(".")[:2])
    if minor not in MINORS:
        raise ConfigError(f"Python {minor} is not supported", hint=f"valid: {', '.join(SUPPORTED)}")
    return MINORS[minor]
