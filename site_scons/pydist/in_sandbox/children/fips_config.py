"""Fail unless FIPS mode is on; print the configuration file it was activated with (``get_fips_config()``).

A child program of the runtime tests (runtime_tests.py: the fipsinstall checks). Standard library only, Python 3.11
and later.
"""

from __future__ import annotations

import _hashlib
import hashlib  # noqa: F401  (imported as in every FIPS-mode program of these tests, before the mode is read)

if __name__ == "__main__":
    assert _hashlib.get_fips_mode() == 1, "FIPS mode is not on"
    # get_fips_config comes with this Python's FIPS patch (patches/cpython/*/*-openssl-fips-switch.patch).
    print(_hashlib.get_fips_config())  # type: ignore[attr-defined]
