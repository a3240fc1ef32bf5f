"""Fail unless FIPS mode is on and refuses MD5; print what requested it and, after ``|``, what a child process of
this Python says (``fips_state.py mode request``): switched on here, FIPS mode passes on to children.

A child program of the runtime tests (runtime_tests.py: fips_switches_are_scoped_to_this_python), run once per
switch. Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

import _hashlib
import hashlib
import subprocess
import sys
from pathlib import Path


def fips_request() -> str | None:
    """What asked for FIPS mode (patches/cpython/*/*-openssl-fips-switch.patch adds it: not in typeshed)."""
    return _hashlib.get_fips_request()  # type: ignore[attr-defined]


def child_state() -> str:
    """``fips_state.py mode request`` in a child process of this interpreter."""
    argv = [sys.executable, str(Path(__file__).with_name("fips_state.py")), "mode", "request"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    assert _hashlib.get_fips_mode() == 1, "FIPS mode is not on"
    try:
        hashlib.md5(b"x")
    except ValueError:
        pass
    else:
        raise AssertionError("MD5 is not refused")
    print(fips_request(), "|", child_state())


if __name__ == "__main__":
    main()
