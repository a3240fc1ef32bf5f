"""Fail points: named moments at which a test can have the build killed, to prove what it then leaves behind.

A test sets ``HERMETIC_FAILPOINT=<name>`` (a glob pattern, e.g. ``cache fetch *``); when the build reaches a
point of that name, the process kills itself with SIGKILL, as an out-of-memory killer or a CI runner's hard
timeout would: no handler runs, no ``finally`` block, nothing is cleaned. The next run must find and remove what
was left. Points are placed right after a step has created its temporary file or directory. Without the
variable a point costs one lookup.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys

VARIABLE = "HERMETIC_FAILPOINT"


def reached(name: str) -> None:
    """Kill this process with SIGKILL if the fail point `name` is the one asked for."""
    wanted = os.environ.get(VARIABLE)
    if wanted is None or not fnmatch.fnmatchcase(name, wanted):
        return
    sys.stdout.flush()
    sys.stderr.write(f"fail point {name!r}: killing the build with SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
