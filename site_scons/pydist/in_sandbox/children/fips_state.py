"""Print what this Python's ``_hashlib`` says of FIPS mode, the FIELDs asked for, separated by spaces:
``mode`` (``get_fips_mode()``), ``request`` (what asked for it, or None) and ``config`` (the configuration file
it was activated with).

    python fips_state.py FIELD...

Importing ``_hashlib`` is what turns FIPS mode on. A child program of the runtime tests
(runtime_tests.py), also started by fips_switch.py and validated_request.py as their own child. Standard library
only, Python 3.11 and later.
"""

from __future__ import annotations

import _hashlib
import sys

# get_fips_request and get_fips_config come with this Python's FIPS patch
# (patches/cpython/*/*-openssl-fips-switch.patch): typeshed does not know them.
FIELDS = {
    "mode": lambda: _hashlib.get_fips_mode(),
    "request": lambda: _hashlib.get_fips_request(),  # type: ignore[attr-defined]
    "config": lambda: _hashlib.get_fips_config(),  # type: ignore[attr-defined]
}


if __name__ == "__main__":
    print(*(FIELDS[field]() for field in sys.argv[1:]))
