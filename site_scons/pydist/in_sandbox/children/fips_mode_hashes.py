"""In FIPS mode: MD5 and BLAKE2 are refused for security use and work without it, SHA-256 is OpenSSL's; print
what refused MD5 and who requested FIPS mode.

A child program of the runtime tests (runtime_tests.py: fips_mode, fipsinstall_step_is_what_fips_mode_uses), run
with a FIPS switch on. Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

import _hashlib
import hashlib
from collections.abc import Callable


def fips_request() -> str | None:
    """What asked for FIPS mode (patches/cpython/*/*-openssl-fips-switch.patch adds it: not in typeshed)."""
    return _hashlib.get_fips_request()  # type: ignore[attr-defined]


def refused(make: Callable[[], object]) -> str:
    """The message with which `make` is refused (a ValueError); fail when it is not."""
    try:
        make()
    except ValueError as e:
        return str(e)
    raise AssertionError(f"{make} was not refused in FIPS mode")


def main() -> None:
    assert _hashlib.get_fips_mode() == 1, "FIPS mode is not on"
    md5 = refused(lambda: hashlib.md5(b"x"))
    refused(lambda: hashlib.new("md5", b"x"))
    refused(lambda: hashlib.blake2b(b"x"))
    assert hashlib.md5(b"abc", usedforsecurity=False).hexdigest() == "900150983cd24fb0d6963f7d28e17f72"
    assert hashlib.blake2b(b"abc", usedforsecurity=False).hexdigest()
    sha = hashlib.sha256(b"abc")
    assert sha.hexdigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert type(sha).__module__ == "_hashlib", type(sha)
    print("fips_mode=1; md5 refused:", md5.splitlines()[0][:80], "; requested by:", fips_request())


if __name__ == "__main__":
    main()
