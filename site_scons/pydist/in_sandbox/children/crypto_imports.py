"""Use the cryptography of the standard library, one USE after the other, and nothing else:

    python crypto_imports.py USE...

where USE is ``hashlib``, ``ssl`` or ``hmac`` (import it), ``_md5`` (import CPython's own MD5 and hash with it for
security use) or ``md5`` (``hashlib.md5`` for security use). Each is what a program of a FIPS-mode request must fail
on, closed, when the provider cannot be activated; outside FIPS mode each works.

A child program of the runtime tests (runtime_tests.py: assert_fails_closed, fips_request_fails_closed). Standard
library only, Python 3.11 and later.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

# Imported by name, so this program imports nothing of them before it is asked to.
USES: dict[str, Callable[[], object]] = {
    "hashlib": lambda: importlib.import_module("hashlib"),
    "ssl": lambda: importlib.import_module("ssl"),
    "hmac": lambda: importlib.import_module("hmac"),
    "_md5": lambda: importlib.import_module("_md5").md5(b"x"),
    "md5": lambda: importlib.import_module("hashlib").md5(b"x"),
}


if __name__ == "__main__":
    for use in sys.argv[1:]:
        USES[use]()
