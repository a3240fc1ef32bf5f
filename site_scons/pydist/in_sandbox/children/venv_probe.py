"""Run by a virtual environment's interpreter: fail unless it is a venv and the test wheel's module imports;
print the module's answer and the venv's base prefix.

A child program of the runtime tests (runtime_tests.py: venv_and_offline_wheel_install), which installed the
wheel holding ``hermetic_probe``. Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    # Imported by name: the module exists only in the venv the runtime tests made.
    probe = importlib.import_module("hermetic_probe")
    assert sys.prefix != sys.base_prefix
    print(probe.ANSWER, sys.base_prefix)


if __name__ == "__main__":
    main()
