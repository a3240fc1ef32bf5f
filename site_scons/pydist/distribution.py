"""The distribution rule: turn the CPython build into python-build-standalone's ``python/`` layout.

Inputs are the CPython artifact (``python/install``, ``python/build``, ``python/build-info.json``) and the
artifact of the FIPS provider that ships (OpenSSL's own, or the provider's own tree's with ``fips_provider=``): the
module and the ``fipsmodule.cnf`` its ``install_fips`` wrote. The rule ships the FIPS files and a ready FIPS
configuration, makes the install relocatable (no build paths in shebangs, sysconfig or pkg-config
files), collects the license texts of every source, writes ``PYTHON.json`` (validated against
``schema/python-json.schema.json``: an invalid one fails the build) and packs the full archive.
It runs no external program.
"""

from __future__ import annotations

import ast
import filecmp
import json
import os
import pprint
import re
import shutil
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermetic import scratch
from hermetic.archive_pack import pack_tree
from hermetic.archive_read import open_tar
from hermetic.content_store import sha256_file
from hermetic.errors import HermeticError
from hermetic.pins import Pin
from pydist import buildpaths, elfinfo
from pydist.matrix import BuildRequest
from pydist.paths import SHIPPED
from pydist.platforms import Platform
from pydist.python_json import validate_python_json

PYTHON_JSON_SCHEMA = Path(__file__).resolve().parents[2] / "schema" / "python-json.schema.json"

# PBS's fixed list of test packages (dropped from install_only archives).
STDLIB_TEST_PACKAGES = [
    "bsddb.test",
    "ctypes.test",
    "distutils.tests",
    "email.test",
    "idlelib.idle_test",
    "json.tests",
    "lib-tk.test",
    "lib2to3.tests",
    "sqlite3.test",
    "test",
    "tkinter.test",
    "unittest.test",
]

# Extension modules that only CPython's own test suite uses (dropped from install_only archives).
TEST_EXTENSIONS = (
    "_ctypes_test",
    "_testbuffer",
    "_testcapi",
    "_testexternalinspection",
    "_testimportmultiple",
    "_testinternalcapi",
    "_testlimitedcapi",
    "_testmultiphase",
    "_testsinglephase",
    "_xxtestfuzz",
)

FIPS_CONFIG_NAME = "openssl-fips.cnf"
# This Python's FIPS switches, read by the CPython patches (patches/cpython/*/*-openssl-fips-switch.patch).
FIPS_ENV_VAR = "PYSTANDALONE_FIPS"
FIPS_XOPTION = "pystandalone_fips"
FIPS_MARKER = "share/ssl/fips-mode"
# The Security Policy's installation step on the user's machine: OpenSSL's own program runs `openssl fipsinstall`,
# driven by the shipped module pystandalone_fips, which writes into FIPSINSTALL_DIR (or the directory that
# FIPSINSTALL_DIR_VAR names); the switch patches load what it wrote instead of the build's module section.
FIPSINSTALL_PROGRAM = "share/ssl/bin/openssl"
FIPSINSTALL_MODULE = "pystandalone_fips.py"
FIPSINSTALL_DIR = "share/ssl/fipsinstall"
FIPSINSTALL_DIR_VAR = "PYSTANDALONE_FIPSINSTALL_DIR"

# Pinned compression level of the full archive (python-build-standalone uses 22; 19 is much faster and
# within a few percent of its size).
FINAL_ZSTD_LEVEL = 19


class DistributionError(HermeticError):
    """The distribution cannot be assembled from the build (a bug or a broken build)."""

    exit_code = 12


@dataclass(frozen=True, kw_only=True)
class DistNames:
    """File names of one build's outputs (python-build-standalone conventions)."""

    request: BuildRequest
    tag: str

    @property
    def _base(self) -> str:
        return f"cpython-{self.request.python_version}-{self.request.target}"

    @property
    def directory(self) -> str:
        """The dist/ subdirectory holding this build's outputs."""
        return f"{self._base}-{self.request.options}-{self.tag}"

    @property
    def full(self) -> str:
        """``cpython-{version}-{target}-{options}-{tag}.tar.zst``."""
        return f"{self._base}-{self.request.options}-{self.tag}.tar.zst"

    def _install_only(self, kind: str) -> str:
        flavor = self.request.options.install_only_flavor
        prefix = f"{flavor}-" if flavor else ""
        return f"{self._base}-{prefix}{kind}-{self.tag}.tar.gz"

    @property
    def install_only(self) -> str:
        """``cpython-{version}-{target}[-freethreaded]-install_only-{tag}.tar.gz``."""
        return self._install_only("install_only")

    @property
    def install_only_stripped(self) -> str:
        """``...-install_only_stripped-{tag}.tar.gz``."""
        return self._install_only("install_only_stripped")


# --------------------------------------------------------------------------------------------------- FIPS


def fips_config(fipsmodule_cnf: str) -> str:
    """The shipped FIPS configuration: the module's own section (as ``openssl fipsinstall`` wrote it for
    exactly the shipped fips.so) plus what activates it, so it works from wherever the install lives."""
    return (
        "# FIPS mode for this Python's OpenSSL. This Python loads this file itself, for itself only,\n"
        f"# when {FIPS_ENV_VAR}=1 is in the environment, with -X {FIPS_XOPTION}, when the file\n"
        f"# <python prefix>/{FIPS_MARKER} exists, or when /proc/sys/crypto/fips_enabled is 1; it then\n"
        "# refuses to import hashlib and ssl unless the FIPS provider is active.\n"
        f"# OPENSSL_CONF=<python prefix>/share/ssl/{FIPS_CONFIG_NAME} works too, but for every OpenSSL\n"
        "# program of the environment. The FIPS provider (share/ssl/ossl-modules/fips.so) is found relative\n"
        "# to the interpreter unless OPENSSL_MODULES names another directory. Non-approved algorithms stay\n"
        "# reachable only through explicit non-FIPS requests (hashlib's usedforsecurity=False).\n"
        f"# After `python -m {FIPSINSTALL_MODULE.removesuffix('.py')} install` (openssl fipsinstall on this machine),\n"
        f"# this Python loads the sections above [fips_sect] with the fipsmodule.cnf it wrote in {FIPSINSTALL_DIR}/\n"
        f"# (or in ${FIPSINSTALL_DIR_VAR}) in place of the section below, which must stay last.\n"
        "config_diagnostics = 1\n"
        "openssl_conf = openssl_init\n"
        "\n"
        "[openssl_init]\n"
        "providers = provider_sect\n"
        "alg_section = algorithm_sect\n"
        "\n"
        "[provider_sect]\n"
        "fips = fips_sect\n"
        "base = base_sect\n"
        "default = default_sect\n"
        "\n"
        "[base_sect]\n"
        "activate = 1\n"
        "\n"
        "[default_sect]\n"
        "activate = 1\n"
        "\n"
        "[algorithm_sect]\n"
        "default_properties = fips=yes\n"
        "\n"
        "# Copied verbatim from fipsmodule.cnf:\n" + fipsmodule_cnf
    )


def install_fips_files(install: Path, provider: Path, module: str = "fips.so") -> None:
    """Ship the FIPS provider `module` (byte for byte), the fipsmodule.cnf its own ``install_fips`` wrote (as is)
    and the ready configuration under share/ssl/, from the unpacked provider artifact `provider` (OpenSSL's, or
    the provider's own tree's: both hold ``lib/ossl-modules/<module>`` and ``ssl/fipsmodule.cnf``)."""
    ssl_dir = install / "share" / "ssl"
    (ssl_dir / "ossl-modules").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(provider / "lib" / "ossl-modules" / module, ssl_dir / "ossl-modules" / module)
    (ssl_dir / "ossl-modules" / module).chmod(0o755)
    module_cnf = (provider / "ssl" / "fipsmodule.cnf").read_text()
    (ssl_dir / "fipsmodule.cnf").write_text(module_cnf)
    (ssl_dir / FIPS_CONFIG_NAME).write_text(fips_config(module_cnf))


def install_fipsinstall_step(install: Path, stdlib: Path, openssl_program: Path) -> None:
    """Ship what the site needs to install the FIPS provider on each machine, as its Security Policy says: OpenSSL's
    ``openssl`` program (for ``openssl fipsinstall``), and the standard-library module that runs it and puts its
    output where FIPS mode finds it. The program goes under share/ssl/, not bin/, so an install on PATH does not
    stand in for the host's own ``openssl``."""
    program = install / FIPSINSTALL_PROGRAM
    program.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(openssl_program, program)
    program.chmod(0o755)
    shutil.copyfile(SHIPPED / FIPSINSTALL_MODULE, stdlib / FIPSINSTALL_MODULE)
    (stdlib / FIPSINSTALL_MODULE).chmod(0o644)


# ------------------------------------------------------------------------------------------ relocation


def link_interpreter_aliases(install: Path) -> list[str]:
    """Make ``bin/python3.X`` a symlink to ``bin/python3.Xt`` where it is a copy of it; return the names linked.

    A free-threaded build's ``make install`` hard-links the two names, and packing an artifact stores a hard
    link as a second copy of the file: a second interpreter of about 90 MB in every archive. Shipped as a
    symlink, like ``python3 -> python3.X`` already is.
    """
    linked = []
    for threaded in sorted((install / "bin").glob("python3.*t")):
        alias = threaded.with_name(threaded.name.removesuffix("t"))
        if threaded.is_symlink() or alias.is_symlink() or not alias.is_file():
            continue
        if filecmp.cmp(alias, threaded, shallow=False):
            alias.unlink()
            alias.symlink_to(threaded.name)
            linked.append(alias.name)
    return linked


def relocatable_shebangs(install: Path) -> list[str]:
    """Replace ``#!/install/bin/python[3.X]`` shebangs (the scripts in bin/ and the python-config.py kept
    with the build configuration) with a /bin/sh trampoline that runs the interpreter in bin/, found
    relative to the script, wherever the install lives. Returns the rewritten paths, relative to `install`."""
    rewritten = []
    bin_dir = install / "bin"
    candidates = sorted(bin_dir.iterdir()) + sorted(install.glob("lib/python3*/config-*/python-config.py"))
    for path in candidates:
        if path.is_symlink() or not path.is_file() or elfinfo.is_elf(path):
            continue
        data = path.read_bytes()
        first, _, rest = data.partition(b"\n")
        match = re.match(
            rb"#!\s*" + re.escape(buildpaths.PREFIX.encode()) + rb"/bin/(python(?:3[.0-9]*t?d?)?)\s*$", first
        )
        if not match:
            continue
        interpreter = os.path.relpath(bin_dir / match.group(1).decode(), path.parent)
        trampoline = (
            f'#!/bin/sh\n\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")/{interpreter}" "$0" "$@"\n\' \'\'\'\n'
        )
        path.write_bytes(trampoline.encode() + rest)
        rewritten.append(str(path.relative_to(install)))
    return rewritten


_VALUE = r"[^\s'\"]+"  # one word of a recorded command line, without the quotes around it
_SANDBOX_FLAGS = (
    re.compile(rf"\s*--target={_VALUE}"),
    re.compile(rf"\s*--sysroot={_VALUE}"),
    re.compile(r"\s*-fuse-ld=lld"),
    re.compile(rf"\s*-ffile-prefix-map={_VALUE}"),
    re.compile(rf"\s*-[IL]/build/deps(?:{_VALUE})?"),
    re.compile(r"\s*-Wl,--exclude-libs,ALL"),
    # The PGO profile of the interpreter's own build, expanded into the module CFLAGS; not for extensions.
    re.compile(rf"\s*-fprofile-instr-use=/build/{_VALUE}"),
    re.compile(r"(?<=[\s'\"=])/toolchain/bin/"),  # recorded tool paths (llvm-ar, llvm-profdata) become names
)
# The sandbox's per-target compiler launchers (x86_64-linux-gnu-clang) are recorded as plain clang (the
# platform says which launchers it has; this one is the Linux platforms').
_LAUNCHER = re.compile(r"(?<![\w./-])[a-z0-9_]+-linux-gnu-(clang\+\+|clang)(?![\w.-])")


def scrub_build_flags(text: str, platform: Platform | None = None) -> str:
    """Remove the sandbox-specific compiler flags from recorded build settings, so extensions built later
    with this Python's sysconfig do not ask for /sysroot, /build/deps or lld (nor for the `platform`'s own
    build-only flags); the sandbox's compiler launchers are recorded as plain clang."""
    extra = [re.compile(flag) for flag in platform.build_only_flags()] if platform else []
    for pattern in (*_SANDBOX_FLAGS, *extra):
        text = pattern.sub("", text)
    launcher = re.compile(platform.compiler_launcher_pattern()) if platform else _LAUNCHER
    return launcher.sub(r"\1", text)


def relocatable_build_settings(install: Path, stdlib: Path, platform: Platform | None = None) -> None:
    """Scrub sysconfigdata, the config Makefile and python-config of sandbox paths and flags."""
    lib = stdlib
    targets = [
        *lib.glob("_sysconfigdata_*.py"),
        *lib.glob("config-*/Makefile"),
        *(install / "bin").glob("python*-config"),
    ]
    targets += list(lib.glob("_sysconfig_vars_*.json"))
    for path in targets:
        if path.is_symlink():
            continue
        path.write_text(scrub_build_flags(path.read_text(), platform))


# What extensions built later compile with is what a user's host has: sysconfig names the host's compiler and tools
# (the platform's host_tools) and keeps only flags gcc takes too; the build's own values stay, under this prefix
# (sysconfig.get_config_var("PYSTANDALONE_BUILD_CC") is "clang -pthread").
BUILD_VALUE_PREFIX = "PYSTANDALONE_BUILD_"
# Flags clang takes and gcc refuses that can reach sysconfig's flags: the bolt lever's -fdebug-default-version, LLVM
# options (-mllvm), and the runtime choices of the target's clang configuration (kept in its launcher's
# configuration file today, so not recorded; dropped should they ever be).
CLANG_ONLY_FLAGS = (
    re.compile(r"\s*-fdebug-default-version=\d+"),
    re.compile(r"\s*-mllvm[= ]\S+"),
    re.compile(r"\s*-Wl,-mllvm,\S+"),
    re.compile(r"\s*--rtlib=\S+"),
    re.compile(r"\s*--unwindlib=\S+"),
)
# Records of how the build was configured, not settings anything compiles with: kept as they were.
_BUILD_RECORDS = frozenset({"CONFIG_ARGS"})
_MAKEFILE_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def host_value(name: str, value: str, tools: Mapping[str, str]) -> str:
    """sysconfig variable `name`'s `value` for a host's compiler: its program (the first word) renamed to the host's
    (``clang -pthread`` -> ``cc -pthread``, ``llvm-ar`` -> ``ar``), clang-only flags dropped."""
    if name in _BUILD_RECORDS:
        return value
    program = re.match(r"^(\s*)(\S+)", value)
    if program and program[2] in tools:
        value = program[1] + tools[program[2]] + value[program.end() :]
    for pattern in CLANG_ONLY_FLAGS:
        value = pattern.sub("", value)
    return value


def host_config_vars(config: Mapping[str, Any], tools: Mapping[str, str]) -> dict[str, Any]:
    """sysconfig's variables for a host's compiler; each one changed keeps the build's value under
    BUILD_VALUE_PREFIX + its name."""
    result = dict(config)
    for name, value in config.items():
        if not isinstance(value, str) or name.startswith(BUILD_VALUE_PREFIX):
            continue
        changed = host_value(name, value, tools)
        if changed != value:
            result[name], result[BUILD_VALUE_PREFIX + name] = changed, value
    return result


# Where a value names a directory of the prefix CPython was configured with: the prefix at the start of the value or
# of one of its words, and not inside another path (/usr/bin/install, ./install).
_PREFIX_PATH = re.compile(r"(?<![^\s'\"=])" + re.escape(buildpaths.PREFIX) + r"(?![^/\s'\"])")
# Appended to the shipped sysconfigdata: the values that name directories of the configured prefix are taken under
# the prefix the file is in when it is imported (<prefix>/lib/python3.X/_sysconfigdata_*.py), so INCLUDEPY, LIBDIR
# and LIBPL name real directories wherever the install was unpacked or moved, and setuptools finds Python.h.
_RELOCATION = """
# The install is relocatable: these values name directories of the prefix it was configured with ({configured}),
# taken under the prefix this file is in now, three directories up.
import os as _os

_prefix = _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
for _name, _parts in {parts}.items():
    build_time_vars[_name] = _prefix.join(_parts)
del _os, _prefix, _name, _parts
"""


def shipped_sysconfigdata(text: str, tools: Mapping[str, str]) -> str:
    """A ``_sysconfigdata_*.py`` (``build_time_vars = {...}``, as CPython writes it) for a host's compiler
    (`tools`, see host_value), whose directories follow the install (see _RELOCATION)."""
    module = ast.parse(text)
    [assignment] = [
        node
        for node in module.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["build_time_vars"]
    ]
    config = host_config_vars(ast.literal_eval(assignment.value), tools)
    parts = {
        name: _PREFIX_PATH.split(value)
        for name, value in sorted(config.items())
        if isinstance(value, str) and name not in _BUILD_RECORDS and _PREFIX_PATH.search(value)
    }
    relocation = _RELOCATION.format(configured=buildpaths.PREFIX, parts=pprint.pformat(parts)) if parts else ""
    return (
        "# system configuration generated and used by the sysconfig module\n"
        f"build_time_vars = {pprint.pformat(config)}\n" + relocation
    )


def host_makefile(text: str, tools: Mapping[str, str]) -> str:
    """The config Makefile for a host's compiler: each one-line assignment changed is followed by the build's value
    under BUILD_VALUE_PREFIX + its name."""
    lines = []
    for line in text.splitlines():
        assignment = _MAKEFILE_ASSIGNMENT.match(line)
        changed = host_value(assignment["name"], assignment["value"], tools) if assignment else None
        if assignment is None or line.endswith("\\") or changed == assignment["value"]:
            lines.append(line)
            continue
        lines += [f"{assignment['name']}={changed}", f"{BUILD_VALUE_PREFIX}{assignment['name']}={assignment['value']}"]
    return "\n".join(lines) + "\n"


def shipped_build_settings(stdlib: Path, platform: Platform) -> list[str]:
    """Make the shipped sysconfigdata name the host's compiler and tools (see host_value) and follow the install
    (see _RELOCATION), and the config Makefile name the same compiler; return the files changed, relative to
    `stdlib`."""
    tools = platform.host_tools()
    changed = []
    for path in sorted(stdlib.glob("_sysconfigdata_*.py")):
        path.write_text(shipped_sysconfigdata(path.read_text(), tools))
        changed.append(str(path.relative_to(stdlib)))
    for path in sorted(stdlib.glob("config-*/Makefile")) if tools else []:
        path.write_text(host_makefile(path.read_text(), tools))
        changed.append(str(path.relative_to(stdlib)))
    return changed


def relocatable_pkgconfig(install: Path) -> None:
    """Make the .pc files find the install relative to themselves."""
    for pc in sorted((install / "lib" / "pkgconfig").glob("*.pc")):
        if pc.is_symlink():
            continue
        text = re.sub(r"^prefix=.*$", "prefix=${pcfiledir}/../..", pc.read_text(), flags=re.M)
        pc.write_text(text)


def remove_bytecode_caches(install: Path) -> None:
    """No .pyc files are shipped (python-build-standalone's convention; they hold install-time data)."""
    for cache in sorted(install.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)


# --------------------------------------------------------------------------------------------- licenses


def license_file_name(pin: Pin) -> str:
    """``LICENSE.<name>.txt``, the archive's name for a source's license text."""
    return f"LICENSE.{pin.name}.txt"


def extract_license(pin: Pin, tarball: Path, dest_dir: Path) -> Path:
    """Copy the license text named by the pin out of its source tarball."""
    assert pin.license_file is not None
    with tarfile.open(tarball) as tar:
        for member in tar:
            parts = member.name.split("/", 1)
            if member.isfile() and len(parts) == 2 and parts[1] == pin.license_file:
                source = tar.extractfile(member)
                assert source is not None
                dest = dest_dir / license_file_name(pin)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(source.read())
                return dest
    raise DistributionError(f"{pin.filename} has no {pin.license_file}", hint="fix license_file in the lock")


# ------------------------------------------------------------------------------------------- PYTHON.json


def python_json(
    facts: dict[str, Any],
    request: BuildRequest,
    *,
    crt_features: list[str],
    object_format: str,
    fips_provider: dict[str, Any],
    platform: Platform | None = None,
) -> dict[str, Any]:
    """PYTHON.json (format 8) from the facts collected in the build sandbox; `platform` adds what only its
    target records (and its build-only flags to scrub). `fips_provider` says which FIPS provider ships and
    whether its version holds a CMVP certificate (``FipsProvider.record``), under this project's own key."""
    data = {
        "version": "8",
        "target_triple": request.target,
        "optimizations": request.options.optimization,
        "build_options": str(request.options),
        "libpython_link_mode": "shared",
        "python_symbol_visibility": "global-default",
        "python_extension_module_loading": ["builtin", "shared-library"],
        "python_stdlib_test_packages": STDLIB_TEST_PACKAGES,
        "crt_features": crt_features,
        "run_tests": "build/run_tests.py",
        "licenses": ["Python-2.0", "CNRI-Python"],
        "license_path": "licenses/LICENSE.cpython.txt",
        "tcl_library_path": None,
        "tcl_library_paths": None,
        "fips_provider": fips_provider,
    }
    for key, value in facts.items():
        data[key] = value
    data.update(platform.python_json_extras() if platform else {})
    # The same scrubbing as the shipped sysconfigdata: later builds must not ask for the sandbox's paths.
    config_vars = facts["python_config_vars"]
    data["python_config_vars"] = {k: scrub_build_flags(v, platform) for k, v in config_vars.items()}
    data["build_info"] = {**facts["build_info"], "object_file_format": object_format}
    return data


def run_tests_script(executable: str) -> str:
    """build/run_tests.py: runs CPython's test suite with the shipped interpreter."""
    return (
        "#!/usr/bin/env python3\n"
        '"""Run CPython\'s regression tests with the interpreter of this distribution."""\n'
        "import os\nimport sys\n\n"
        "here = os.path.dirname(os.path.abspath(__file__))\n"
        f"python = os.path.join(here, '..', 'install', 'bin', '{executable}')\n"
        "os.execv(python, [python, '-m', 'test', '--slow-ci', *sys.argv[1:]])\n"
    )


# ------------------------------------------------------------------------------------------- assembling


def assemble_full(
    *,
    out: Path,
    work: Path,
    cpython_tree: Path,
    fips_tree: Path,
    openssl_tree: Path,
    licenses: list[tuple[Pin, Path]],
    request: BuildRequest,
    platform: Platform,
    object_format: str,
    source_date_epoch: int,
    fips_provider: dict[str, Any],
) -> dict[str, Any]:
    """Lay out ``python/`` in `work` from the unpacked CPython, FIPS provider and OpenSSL artifacts (the last for its
    ``openssl`` program), then pack `out`.

    Returns the PYTHON.json written. Raises DistributionError when PYTHON.json does not validate or a
    build path is left in a shipped text file.
    """
    root = work / "python"
    shutil.copytree(cpython_tree, root, symlinks=True)
    install = root / "install"
    facts = json.loads((root / "build-info.json").read_text())
    (root / "build-info.json").unlink()
    install_fips_files(install, fips_tree, platform.fips_module)
    install_fipsinstall_step(install, root / facts["python_paths"]["stdlib"], openssl_tree / "bin" / "openssl")
    link_interpreter_aliases(install)
    relocatable_shebangs(install)
    relocatable_build_settings(install, root / facts["python_paths"]["stdlib"], platform)
    shipped_build_settings(root / facts["python_paths"]["stdlib"], platform)
    relocatable_pkgconfig(install)
    remove_bytecode_caches(install)
    shutil.rmtree(root / ".hermetic", ignore_errors=True)
    for pin, tarball in licenses:
        extract_license(pin, tarball, root / "licenses")
    (root / "build" / "run_tests.py").parent.mkdir(parents=True, exist_ok=True)
    (root / "build" / "run_tests.py").write_text(run_tests_script(Path(facts["python_exe"]).name))
    (root / "build" / "run_tests.py").chmod(0o755)

    crt_features = platform.crt_features(install)
    data = python_json(
        facts,
        request,
        crt_features=crt_features,
        object_format=object_format,
        fips_provider=fips_provider,
        platform=platform,
    )
    problems = validate_python_json(data)
    leftovers = buildpaths.violations(install)
    if leftovers:
        problems.append(f"build paths left in {len(leftovers)} places, e.g. {'; '.join(map(str, leftovers[:3]))}")
    if problems:
        raise DistributionError(
            f"{out.name}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    (root / "PYTHON.json").write_text(json.dumps(data, indent=4, sort_keys=True) + "\n")
    pack_tree(
        root,
        out,
        mtime=source_date_epoch,
        prefix="python",
        first=["PYTHON.json"],
        zstd_level=FINAL_ZSTD_LEVEL,
    )
    return data


def _install_only_member(name: str, data: dict[str, Any], drop_tests: bool) -> str | None:
    """Where a member of the full archive goes in an install_only archive (None: left out)."""
    if not name.startswith("python/install/"):
        return None
    rel = name.removeprefix("python/install/")
    stdlib = data["python_paths"]["stdlib"].removeprefix("install/")
    if re.fullmatch(r"lib/libpython[^/]*\.a|.*/config-[^/]*/libpython[^/]*\.a", rel):
        return None
    if drop_tests and rel.startswith(stdlib + "/"):
        inner = rel.removeprefix(stdlib + "/")
        for package in data["python_stdlib_test_packages"]:
            prefix = package.replace(".", "/")
            if inner == prefix or inner.startswith(prefix + "/"):
                return None
        if inner.startswith("lib-dynload/") and inner.split("/")[-1].split(".")[0] in TEST_EXTENSIONS:
            return None
    return f"python/{rel}"


def convert_install_only(full: Path, out: Path, source_date_epoch: int) -> None:
    """python-build-standalone's install_only archive: python/install/ becomes python/, without static
    libpython, the stdlib test packages and the test extension modules; the license texts are kept
    under python/share/licenses/ (third-party licenses travel with the binaries)."""
    with open_tar(full) as tar:
        first = tar.next()
        if first is None or first.name != "python/PYTHON.json":
            raise DistributionError(f"{full.name}: PYTHON.json is not the first member")
        data = json.loads(tar.extractfile(first).read())  # type: ignore[union-attr]
        staging = scratch.tree_path(out)
        shutil.rmtree(staging, ignore_errors=True)
        for member in tar:
            if member.name.startswith("python/licenses/"):
                target: str | None = "python/share/licenses/" + member.name.removeprefix("python/licenses/")
            else:
                target = _install_only_member(member.name, data, drop_tests=True)
            if target is None:
                continue
            dest = staging / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            if member.isdir():
                dest.mkdir(exist_ok=True)
            elif member.issym():
                dest.symlink_to(member.linkname)
            elif member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                with open(dest, "wb") as f:
                    shutil.copyfileobj(source, f)
                dest.chmod(0o755 if member.mode & 0o111 else 0o644)
    try:
        pack_tree(staging / "python", out, mtime=source_date_epoch, prefix="python", compression="gz")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_sha256sums(out: Path, archives: Iterable[Path]) -> None:
    """``SHA256SUMS``: one ``<digest>  <name>`` line per archive, sorted by name."""
    lines = [f"{sha256_file(p)}  {p.name}\n" for p in sorted(archives, key=lambda p: p.name)]
    scratch.write_text(out, "".join(lines))
