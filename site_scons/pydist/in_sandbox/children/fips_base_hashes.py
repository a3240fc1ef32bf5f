"""With only the fips and base providers (no default provider): FIPS mode is on, MD5 for security use is refused,
and ``hashlib.new("md5", usedforsecurity=False)`` falls back to CPython's own MD5; print which module served it.

A child program of the runtime tests (runtime_tests.py: fips_base_configuration_keeps_non_security_hashes), run
with OPENSSL_CONF naming such a configuration. Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

import _hashlib
import hashlib


def main() -> None:
    assert _hashlib.get_fips_mode() == 1
    md5 = hashlib.new("md5", b"abc", usedforsecurity=False)
    assert md5.hexdigest() == "900150983cd24fb0d6963f7d28e17f72"
    assert type(md5).__module__ == "_md5", type(md5)  # no default provider: CPython's own MD5
    try:
        hashlib.new("md5", b"abc")
    except ValueError:
        pass
    else:
        raise AssertionError("MD5 for security use was not refused")
    print("fips+base: hashlib.new('md5', usedforsecurity=False) falls back to", type(md5).__module__)


if __name__ == "__main__":
    main()
