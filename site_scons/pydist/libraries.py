"""Recipes of the dependency libraries: static, position-independent archives, one artifact each.

Each library is configured with ``--prefix=/build/deps`` (where its dependents see it, read-only) and
installed with ``DESTDIR=/build/out``, so its artifact holds ``lib/``, ``include/`` and ``lib/pkgconfig/``
with paths that are right inside the sandbox of every later action. OpenSSL has its own module.

CPython's ``readline`` module is built on libedit rather than GNU readline: libedit is BSD-licensed, so the
distribution carries no GPL code (python-build-standalone makes the same choice); the behaviour differs in
small ways (key bindings, ``readline.__doc__`` says "libedit").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hermetic.action import DEPS, OUT, Step, cmd, sh
from pydist.compile_env import CompileEnv

# The directory every library installs into (under DESTDIR) and the artifact root.
INSTALL_ROOT = f"{OUT}{DEPS}"


def _join(args: list[str]) -> str:
    return " ".join(args)


@dataclass(frozen=True, kw_only=True)
class LibraryRecipe:
    """How to build one library from its pinned source.

    Attributes:
        name: (str) the source pin name in the lock, and the artifact name.
        deps: (tuple[str, ...]) libraries whose artifacts must be in /build/deps first.
        steps: (Callable[[CompileEnv, str], list[Step]]) the commands, given the compile settings and
            the source label (``name-version``).
        extra_env: (Callable[[CompileEnv], dict[str, str]]) additions to the autotools environment.
        version: (int) bumped when the recipe changes in a way that changes the artifact.
    """

    name: str
    deps: tuple[str, ...] = ()
    steps: Callable[[CompileEnv, str], list[Step]]
    extra_env: Callable[[CompileEnv], dict[str, str]] = lambda ce: {}
    version: int = 1

    def env(self, ce: CompileEnv, label: str) -> dict[str, str]:
        """The complete compile environment of this library's steps."""
        return {**ce.autotools_env(label), **self.extra_env(ce)}


def _autotools(*extra: str) -> Callable[[CompileEnv, str], list[Step]]:
    """configure (static, PIC, prefix /build/deps), make, make install into DESTDIR."""

    def steps(ce: CompileEnv, label: str) -> list[Step]:
        return [
            cmd("configure", "./configure", *ce.configure_args(), "--with-pic", *extra),
            cmd("build", "make"),
            cmd("install", "make", "install", f"DESTDIR={OUT}"),
        ]

    return steps


def _zlib(ce: CompileEnv, label: str) -> list[Step]:
    # zlib's own configure script knows neither --host nor --disable-shared.
    return [
        cmd("configure", "./configure", f"--prefix={DEPS}", "--static"),
        cmd("build", "make", "libz.a"),
        cmd("install", "make", "install", f"DESTDIR={OUT}"),
    ]


def _bzip2(ce: CompileEnv, label: str) -> list[Step]:
    # bzip2 has only a Makefile; build the library and install it by hand.
    return [
        sh(
            "build",
            'make libbz2.a CC="$CC" CFLAGS="$CFLAGS -D_FILE_OFFSET_BITS=64" AR="$AR" RANLIB="$RANLIB"',
        ),
        sh(
            "install",
            # (BSD install, on a Mac, has no -D: the directories are made first.)
            f"mkdir -p {INSTALL_ROOT}/lib {INSTALL_ROOT}/include && "
            f"install -m 0644 libbz2.a {INSTALL_ROOT}/lib/libbz2.a && "
            f"install -m 0644 bzlib.h {INSTALL_ROOT}/include/bzlib.h",
        ),
    ]


def _expat(ce: CompileEnv, label: str) -> list[Step]:
    # The pinned source is a git tree (no generated configure): build it with expat's CMake project.
    cmake = [
        "cmake",
        "-S",
        "expat",
        "-B",
        "_build",
        "-G",
        "'Unix Makefiles'",
        "-DCMAKE_BUILD_TYPE=Release",
        "-DCMAKE_C_FLAGS_RELEASE=-DNDEBUG",
        f"-DCMAKE_INSTALL_PREFIX={DEPS}",
        "-DCMAKE_INSTALL_LIBDIR=lib",
        # The platform's compiler command carries the target and the sysroot (the pinned clang's launcher on
        # Linux, Xcode's clang and SDK on a Mac); CMake wants the archiver by path.
        '-DCMAKE_C_COMPILER="$CC"',
        '-DCMAKE_C_FLAGS="$CFLAGS"',
        '-DCMAKE_EXE_LINKER_FLAGS="$LDFLAGS"',
        '-DCMAKE_AR="$(command -v "$AR")"',
        '-DCMAKE_RANLIB="$(command -v "$RANLIB")"',
        "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
        "-DEXPAT_SHARED_LIBS=OFF",
        "-DEXPAT_BUILD_TOOLS=OFF",
        "-DEXPAT_BUILD_EXAMPLES=OFF",
        "-DEXPAT_BUILD_TESTS=OFF",
        "-DEXPAT_BUILD_DOCS=OFF",
        "-DEXPAT_BUILD_FUZZERS=OFF",
        "-DEXPAT_BUILD_PKGCONFIG=ON",
    ]
    return [
        sh("configure", _join(cmake)),
        cmd("build", "make", "-C", "_build"),
        cmd("install", "make", "-C", "_build", "install", f"DESTDIR={OUT}"),
    ]


def _sqlite(ce: CompileEnv, label: str) -> list[Step]:
    # The canonical tree; since 3.48 its autosetup configure uses the bundled jimsh, no host tclsh.
    return [
        cmd(
            "configure",
            "./configure",
            *ce.configure_args(),
            "--disable-tcl",
            "--disable-readline",
            "--fts3",
            "--fts4",
            "--fts5",
            "--rtree",
            "--geopoly",
            "--dbstat",
            "--session",
        ),
        cmd("build", "make", "libsqlite3.a"),
        cmd("install", "make", "install-lib", "install-headers", "install-pc", f"DESTDIR={OUT}"),
    ]


def _sqlite_env(ce: CompileEnv) -> dict[str, str]:
    # The features python-build-standalone's tests expect of the sqlite3 module.
    defines = [
        "SQLITE_ENABLE_DBSTAT_VTAB",
        "SQLITE_ENABLE_FTS3",
        "SQLITE_ENABLE_FTS3_PARENTHESIS",
        "SQLITE_ENABLE_FTS4",
        "SQLITE_ENABLE_FTS5",
        "SQLITE_ENABLE_GEOPOLY",
        "SQLITE_ENABLE_RTREE",
        "SQLITE_ENABLE_MATH_FUNCTIONS",
        "SQLITE_ENABLE_COLUMN_METADATA",
        "SQLITE_ENABLE_LOAD_EXTENSION",
    ]
    return {"CPPFLAGS": f"-I{DEPS}/include " + " ".join(f"-D{d}" for d in defines)}


def _ncurses(ce: CompileEnv, label: str) -> list[Step]:
    args = [
        "./configure",
        *ce.configure_args(),
        "--with-normal",
        "--without-shared",
        "--without-debug",
        "--without-ada",
        "--without-cxx",
        "--without-cxx-binding",
        "--without-manpages",
        "--without-progs",
        "--without-tests",
        "--without-gpm",
        "--enable-widec",
        "--enable-pc-files",
        "--disable-db-install",
        "--disable-stripping",
        f"--with-pkg-config-libdir={DEPS}/lib/pkgconfig",
        # Look for the terminfo database where Linux distributions keep it.
        "--with-terminfo-dirs=/etc/terminfo:/lib/terminfo:/usr/share/terminfo",
        "--with-default-terminfo-dir=/usr/share/terminfo",
        '--with-build-cc="$BUILD_CC"',
    ]
    return [
        sh("configure", _join(args)),
        cmd("build", "make"),
        cmd("install", "make", "install", f"DESTDIR={OUT}"),
        # Only the wide-character libraries are built; libedit and others look for the plain names.
        sh(
            "compatibility names",
            f"cd {INSTALL_ROOT}/lib && ln -s libncursesw.a libncurses.a && ln -s libpanelw.a libpanel.a",
        ),
    ]


def _ncurses_env(ce: CompileEnv) -> dict[str, str]:
    # ncurses' configure prefers ``ar -curvU`` when the archiver accepts it, and U makes llvm-ar record
    # each member's real mtime and owner; preset its cached answer to the deterministic D variant.
    return {"cf_cv_ar_flags": "-curvD"}


def _libedit_env(ce: CompileEnv) -> dict[str, str]:
    return {"CPPFLAGS": f"-I{DEPS}/include -I{DEPS}/include/ncursesw"}


def _util_linux(ce: CompileEnv, label: str) -> list[Step]:
    args = [
        "./configure",
        *ce.configure_args(),
        "--with-pic",
        "--disable-all-programs",
        "--enable-libuuid",
        "--disable-nls",
        "--disable-bash-completion",
        "--disable-asciidoc",
        "--disable-makeinstall-chown",
        "--disable-makeinstall-setuid",
        "--without-python",
        "--without-systemd",
        "--without-udev",
        "--without-ncurses",
        "--without-ncursesw",
        "--without-tinfo",
        "--without-readline",
        "--without-cap-ng",
        "--without-libz",
        "--without-btrfs",
        "--without-user",
        "--without-econf",
        "--without-selinux",
        "--without-audit",
        "--without-smack",
    ]
    return [
        cmd("configure", *args),
        cmd("build", "make", "libuuid.la", "libuuid/uuid.pc"),
        cmd(
            "install",
            "make",
            "install-uuidincHEADERS",
            "install-usrlib_execLTLIBRARIES",
            "install-pkgconfigDATA",
            f"DESTDIR={OUT}",
        ),
    ]


def _zstd(ce: CompileEnv, label: str) -> list[Step]:
    # zstd's lib/Makefile; the multithreaded static library is what CPython's _zstd (3.14+) wants.
    make = 'make -C lib CC="$CC" CFLAGS="$CFLAGS" AR="$AR" ZSTD_LEGACY_SUPPORT=0'
    return [
        sh("build", f"{make} libzstd.a-mt"),
        sh("install", f"{make} install-static install-includes install-pc PREFIX={DEPS} DESTDIR={OUT}"),
    ]


RECIPES: dict[str, LibraryRecipe] = {
    recipe.name: recipe
    for recipe in (
        LibraryRecipe(name="zlib", steps=_zlib),
        LibraryRecipe(name="bzip2", steps=_bzip2),
        LibraryRecipe(
            name="xz",
            steps=_autotools(
                "--disable-xz",
                "--disable-xzdec",
                "--disable-lzmadec",
                "--disable-lzmainfo",
                "--disable-lzma-links",
                "--disable-scripts",
                "--disable-doc",
                "--disable-nls",
                "--disable-rpath",
            ),
        ),
        LibraryRecipe(
            name="libffi",
            steps=_autotools("--disable-docs", "--disable-multi-os-directory", "--disable-symvers"),
        ),
        LibraryRecipe(name="expat", steps=_expat),
        LibraryRecipe(name="mpdecimal", steps=_autotools("--disable-cxx")),
        LibraryRecipe(name="sqlite", steps=_sqlite, extra_env=_sqlite_env),
        LibraryRecipe(name="ncurses", steps=_ncurses, extra_env=_ncurses_env),
        LibraryRecipe(
            name="libedit", deps=("ncurses",), steps=_autotools("--disable-examples"), extra_env=_libedit_env
        ),
        LibraryRecipe(name="util-linux", steps=_util_linux),
        LibraryRecipe(name="zstd", steps=_zstd),
    )
}
