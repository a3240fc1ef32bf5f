"""Print where this interpreter thinks it lives: ``sys.prefix``, the standard library and ``sys.executable``,
one a line.

A child program of the runtime tests (runtime_tests.py: relocatable_prefix). Standard library only, Python 3.11
and later.
"""

from __future__ import annotations

import sys
import sysconfig

if __name__ == "__main__":
    print(sys.prefix)
    print(sysconfig.get_paths()["stdlib"])
    print(sys.executable)
