"""Print, separated by ``|``: what requested FIPS mode, the ``PYSTANDALONE_FIPS`` this Python then sets for its
children, and the configuration file a child process activated FIPS mode with (``fips_state.py config``).

A child program of the runtime tests (runtime_tests.py: validated_request_passes_on_to_children), run with
``-X pystandalone_fips=validated``. Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

import _hashlib
import os
import subprocess
import sys
from pathlib import Path


def child_config() -> str:
    """``fips_state.py config`` in a child process of this interpreter."""
    argv = [sys.executable, str(Path(__file__).with_name("fips_state.py")), "config"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


if __name__ == "__main__":
    # get_fips_request comes with this Python's FIPS patch (patches/cpython/*/*-openssl-fips-switch.patch).
    request = _hashlib.get_fips_request()  # type: ignore[attr-defined]
    print(request, "|", os.environ["PYSTANDALONE_FIPS"], "|", child_config())
