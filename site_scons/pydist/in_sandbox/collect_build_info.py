"""Collect what the distribution needs to know about a CPython build; runs inside the build sandbox.

Run with the *installed* interpreter (so sysconfig reports install paths) from the build tree:

    <install>/bin/python3 -E -s collect_build_info.py BUILD_DIR INSTALL_DIR DEPS_DIR OUT_DIR

It writes OUT_DIR/build-info.json and copies into OUT_DIR/build/ the objects and static libraries a
consumer needs to relink libpython (the ``build/`` part of the full archive). Paths in the JSON are
relative to OUT_DIR (the ``python/`` directory of the archive). Standard library only.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

BUILD, INSTALL, DEPS, OUT = (Path(p) for p in sys.argv[1:5])
HERE = Path(__file__).resolve().parent
SOURCE_SUFFIXES = (".c", ".cpp", ".m")
DYNLOAD = Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"


def make_var(name: str) -> str:
    """The expanded value of a variable of the build's Makefile."""
    result = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "-f",
            "Makefile",
            "-f",
            str(HERE / "printvar.mk"),
            f"print-{name}",
        ],
        cwd=BUILD,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def parse_setup(paths: list[Path]) -> dict[str, dict]:
    """Module definitions of makesetup's Setup files, where the first definition of a module wins."""
    modules: dict[str, dict] = {}
    for path in paths:
        if not path.exists():
            continue
        mode = "static"
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line in ("*static*", "*shared*", "*disabled*"):
                mode = line.strip("*")
                continue
            words = line.split()
            if "=" in words[0]:
                continue  # a variable definition
            name = words[0]
            if name in modules:
                continue
            if mode == "disabled":
                modules[name] = {"mode": "disabled"}
                continue
            sources = [w for w in words[1:] if w.endswith(SOURCE_SUFFIXES)]
            archives = [w for w in words[1:] if w.endswith(".a")]
            modules[name] = {"mode": mode, "sources": sources, "archives": archives, "setup": path.name}
    return modules


def object_of(source: str) -> str:
    """The object file makesetup builds from a Setup source."""
    stem = source.rsplit(".", 1)[0]
    return stem.replace("$(srcdir)/", "") + ".o" if stem.startswith("$(srcdir)") else f"Modules/{stem}.o"


def links_of(flags: str) -> list[dict[str, str | bool]]:
    """Link entries (PYTHON.json style) for the -l flags in `flags`."""
    links: list[dict[str, str | bool]] = []
    for word in flags.split():
        if not word.startswith("-l"):
            continue
        name = word[2:]
        static = DEPS / "lib" / f"lib{name}.a"
        if static.exists():
            links.append({"name": name, "path_static": f"build/lib/lib{name}.a"})
        else:
            links.append({"name": name, "system": True})
    return links


def copy_into_build_lib(archive: Path, *, follow_symlinks: bool = True) -> None:
    """Copy a static library to build/lib/, where PYTHON.json's links point."""
    target = OUT / "build" / "lib" / archive.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(archive, target, follow_symlinks=follow_symlinks)


def copy_into_build(relative: str) -> None:
    source = BUILD / relative
    if source.exists():
        dest = OUT / "build" / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


def installed(config_path: str) -> str:
    """A build-time install path (under the configured prefix) as a path relative to OUT."""
    configured = sysconfig.get_config_var("prefix")
    actual = Path(sys.prefix) / Path(config_path).relative_to(configured)
    return str(actual.relative_to(OUT))


def inittab() -> dict[str, str]:
    """Module name -> init function of every built-in module, from Modules/config.c."""
    text = (BUILD / "Modules" / "config.c").read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r'\{"([^"]+)",\s*([A-Za-z0-9_]+)\}', text)}


def setup_entry(name: str, info: dict, builtin: dict[str, str], module_objs: set[str]) -> dict | None:
    """The PYTHON.json entry of a module defined in a Setup file, or None when it was defined but not built.

    A module linked into libpython adds its objects to `module_objs`, so they are not counted as core objects."""
    objs = [object_of(s) for s in info["sources"]]
    entry = {
        "in_core": name in builtin,
        "init_fn": builtin.get(name, f"PyInit_{name}"),
        "links": links_of(make_var("MODULE_" + name.upper() + "_LDFLAGS")),
        "objs": [f"build/{o}" for o in objs],
        "required": info["setup"] == "Setup.bootstrap",
        "variant": "default",
    }
    for archive in info["archives"]:
        entry["links"].append(
            {"name": Path(archive).stem.removeprefix("lib"), "path_static": f"build/lib/{Path(archive).name}"}
        )
        copy_into_build_lib(BUILD / archive)
    if info["mode"] == "shared" and name not in builtin:
        shared = DYNLOAD / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
        if not shared.exists():
            return None  # defined but not built (configure found it missing); the build checks that set
        entry["shared_lib"] = str(shared.relative_to(OUT))
    else:
        module_objs.update(objs)
    for obj in objs:
        copy_into_build(obj)
    return entry


def extension_entries(builtin: dict[str, str], module_objs: set[str]) -> dict[str, list[dict]]:
    """Module name -> its PYTHON.json entries: the Setup files' modules, then the built-in modules that have no
    Setup line (sys, builtins, marshal, ...), which live in the core objects."""
    setup_files = [BUILD / "Modules" / n for n in ("Setup.local", "Setup.stdlib", "Setup.bootstrap", "Setup")]
    extensions: dict[str, list[dict]] = {}
    for name, info in sorted(parse_setup(setup_files).items()):
        if info["mode"] == "disabled":
            continue
        entry = setup_entry(name, info, builtin, module_objs)
        if entry is not None:
            extensions[name] = [entry]
    for name, init_fn in builtin.items():
        if name not in extensions and name != "__main__":
            extensions[name] = [
                {"in_core": True, "init_fn": init_fn, "links": [], "objs": [], "required": True, "variant": "default"}
            ]
    return extensions


def copy_core_inputs(core_objs: list[str]) -> None:
    """Copy what relinking libpython needs besides the modules' objects: the core objects, the inittab and Setup
    files, and the dependencies' static libraries."""
    for obj in [*core_objs, "Modules/config.o", "Programs/python.o"]:
        copy_into_build(obj)
    for name in ("config.c", "config.c.in", "Setup", "Setup.local", "Setup.stdlib", "Setup.bootstrap"):
        copy_into_build(f"Modules/{name}")
    for archive in sorted((DEPS / "lib").glob("*.a")):
        copy_into_build_lib(archive, follow_symlinks=False)


def interpreter_facts() -> dict:
    """PYTHON.json's facts about the interpreter itself: tags, version, paths, config vars and suffixes."""
    libpl = installed(sysconfig.get_config_var("LIBPL"))
    return {
        "python_tag": f"cp{sys.version_info[0]}{sys.version_info[1]}",
        "python_abi_tag": sys.abiflags,
        "python_platform_tag": sysconfig.get_platform(),
        "python_implementation_cache_tag": sys.implementation.cache_tag,
        "python_implementation_hex_version": sys.implementation.hexversion,
        "python_implementation_name": sys.implementation.name,
        "python_implementation_version": [str(v) for v in sys.implementation.version],
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "python_major_minor_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "python_paths": {name: str(Path(path).relative_to(OUT)) for name, path in sysconfig.get_paths().items()},
        "python_paths_abstract": sysconfig.get_paths(expand=False),
        "python_config_vars": {k: str(v) for k, v in sysconfig.get_config_vars().items()},
        "python_exe": installed(f"{sysconfig.get_config_var('BINDIR')}/python{sysconfig.get_config_var('LDVERSION')}"),
        "python_stdlib_platform_config": libpl,
        "python_suffixes": {
            "bytecode": [".pyc"],
            "debug_bytecode": [".pyc"],
            "extension": list(importlib.machinery.EXTENSION_SUFFIXES),
            "optimized_bytecode": [".pyc"],
            "source": [".py"],
        },
        "python_bytecode_magic_number": importlib.util.MAGIC_NUMBER.hex(),
    }


def main() -> None:
    module_objs = set(make_var("MODOBJS").split())
    extensions = extension_entries(inittab(), module_objs)
    core_objs = [o for o in make_var("LIBRARY_OBJS").split() if o not in module_objs]
    copy_core_inputs(core_objs)
    info = interpreter_facts()
    info["build_info"] = {
        "core": {
            "objs": [f"build/{o}" for o in core_objs],
            "links": links_of(" ".join([make_var("LIBS"), make_var("SYSLIBS")])),
            "shared_lib": installed(sysconfig.get_config_var("LIBDIR") + "/" + sysconfig.get_config_var("INSTSONAME")),
            "static_lib": f"{info['python_stdlib_platform_config']}/{sysconfig.get_config_var('LIBRARY')}",
        },
        "extensions": extensions,
        "inittab_object": "build/Modules/config.o",
        "inittab_source": "build/Modules/config.c",
        "inittab_cflags": ["-std=c99", "-DNDEBUG", "-DPy_BUILD_CORE"],
    }
    (OUT / "build-info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
