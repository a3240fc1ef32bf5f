"""Print the hex digest of TEXT (UTF-8) by ``hashlib.NAME``, as any user of hashlib would ask for it.

    python digest.py NAME TEXT

A child program of the runtime tests (runtime_tests.py: fips_provider_serves_sha256, and other_openssl_users, which
runs it with the host's python3). Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

import hashlib
import sys


def hexdigest(name: str, text: str) -> str:
    """``hashlib.<name>(text).hexdigest()``: the named constructor, not ``hashlib.new`` (which falls back
    differently)."""
    digest: str = getattr(hashlib, name)(text.encode()).hexdigest()
    return digest


if __name__ == "__main__":
    print(hexdigest(sys.argv[1], sys.argv[2]))
