"""Check that what extensions built later read from sysconfig names this install's directories, wherever it was
moved, and on Linux the host's compilers (cc, c++) rather than the build's clang; print what was found.

A child program of the runtime tests (runtime_tests.py: sysconfig_follows_the_install). Standard library only,
Python 3.11 and later.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

if __name__ == "__main__":
    var = sysconfig.get_config_var
    for name in ("INCLUDEPY", "LIBDIR", "LIBPL", "BINDIR"):
        assert var(name).startswith(sys.base_prefix + "/"), (name, var(name), sys.base_prefix)
        assert Path(var(name)).is_dir(), (name, var(name))
    assert (Path(var("INCLUDEPY")) / "Python.h").is_file(), var("INCLUDEPY")
    if sys.platform == "linux":
        assert (var("CC").split()[0], var("CXX")) == ("cc", "c++"), (var("CC"), var("CXX"))
    print(f"INCLUDEPY, LIBDIR, LIBPL and BINDIR under {sys.base_prefix}; CC={var('CC')!r}, CXX={var('CXX')!r}")
