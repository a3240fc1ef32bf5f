"""Import every extension module of this interpreter, built in or in lib-dynload; print how many import.

A child program of the runtime tests (runtime_tests.py: imports_every_extension_module), run by the interpreter
under test. Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import sysconfig


def extension_modules() -> set[str]:
    """The names of the modules built into the interpreter and of the shared objects in lib-dynload."""
    names = set(sys.builtin_module_names)
    dynload = pathlib.Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    names |= {p.name[: -len(suffix)] for p in dynload.glob("*" + suffix)}
    return names


def main() -> None:
    names = extension_modules()
    failed = []
    for name in sorted(names):
        try:
            importlib.import_module(name)
        except Exception as e:
            failed.append(f"{name}: {e!r}")
    assert not failed, failed
    print(f"{len(names)} extension modules import")


if __name__ == "__main__":
    main()
