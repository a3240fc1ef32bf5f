"""Fail unless ``_ssl`` and ``_hashlib`` are both built into libpython, so the process holds one OpenSSL.

A child program of the runtime tests (runtime_tests.py: one_openssl_copy). Standard library only, Python 3.11 and
later.
"""

from __future__ import annotations

import sys


def main() -> None:
    builtin = set(sys.builtin_module_names)
    assert {"_ssl", "_hashlib"} <= builtin, "_ssl and _hashlib must both be built into libpython"
    print("_ssl and _hashlib are built in: one copy of OpenSSL")


if __name__ == "__main__":
    main()
