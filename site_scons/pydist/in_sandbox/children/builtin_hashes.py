"""CPython's own hash constructors (``_md5``, ``_sha2``, ``_blake2``, ...): each is refused for security use in FIPS
mode and allowed outside it, and with ``usedforsecurity=False`` gives hashlib's digest; print how many.

    python builtin_hashes.py fips|off

A child program of the runtime tests (runtime_tests.py: builtin_hashes_refuse_security_use_in_fips_mode).
Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

import hashlib
import importlib
import random
import sys


def builtin_modules() -> dict[str, list[str]]:
    """CPython's own hash modules of this minor, with the constructors each has (3.12 merged _sha256 and
    _sha512 into _sha2)."""
    modules = {
        "_md5": ["md5"],
        "_sha1": ["sha1"],
        "_blake2": ["blake2b", "blake2s"],
        "_sha3": ["sha3_224", "sha3_256", "sha3_384", "sha3_512", "shake_128", "shake_256"],
    }
    if sys.version_info >= (3, 12):
        modules["_sha2"] = ["sha224", "sha256", "sha384", "sha512"]
    else:
        modules.update({"_sha256": ["sha224", "sha256"], "_sha512": ["sha384", "sha512"]})
    return modules


def security_use(module_name: str, name: str) -> str:
    """``allowed`` or ``refused``: what the builtin constructor says to a security use; then check its
    non-security digest against hashlib's."""
    constructor = getattr(importlib.import_module(module_name), name)
    try:
        constructor(b"abc")
        verdict = "allowed"
    except ValueError:
        verdict = "refused"
    builtin = constructor(b"abc", usedforsecurity=False)
    reference = hashlib.new(name, b"abc", usedforsecurity=False)
    size = 32 if name.startswith("shake") else None
    got = builtin.hexdigest(size) if size else builtin.hexdigest()
    want = reference.hexdigest(size) if size else reference.hexdigest()  # type: ignore[call-arg]
    assert got == want, (module_name, name, got, want)
    return verdict


def main(mode: str) -> None:
    security = {
        f"{module_name}.{name}": security_use(module_name, name)
        for module_name, names in builtin_modules().items()
        for name in names
    }
    # random hashes a string seed with SHA-512: that must keep working in FIPS mode (it is no security use).
    random.seed("not a security use")
    expected = "refused" if mode == "fips" else "allowed"
    wrong = {k: v for k, v in security.items() if v != expected}
    assert not wrong, wrong
    print(f"{len(security)} builtin constructors {expected} for security use; usedforsecurity=False works")


if __name__ == "__main__":
    main(sys.argv[1])
