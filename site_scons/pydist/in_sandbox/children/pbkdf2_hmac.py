"""PBKDF2 and HMAC through hashlib and hmac, below and within SP 800-132's bounds and with a short HMAC key; print
what each gave (the hex bytes, or ``refused: <message>``) as JSON. With ``reference``, also the same values
computed by RFC 2104 and RFC 8018 over hashlib's digests, to compare with (outside FIPS mode only).

    python pbkdf2_hmac.py reference|fips

A child program of the runtime tests (runtime_tests.py: pbkdf2_and_hmac_use_the_provider). Standard library only,
Python 3.11 and later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from collections.abc import Callable

# Each below one of SP 800-132's lower bounds: 16-byte salt, 1000 iterations, 112-bit key.
WEAK_PBKDF2 = {
    "short_salt": (b"password", b"salt", 1000, 32),
    "few_iterations": (b"password", b"0123456789abcdef", 1, 32),
    "short_key": (b"password", b"0123456789abcdef", 1000, 8),
}
GOOD_PBKDF2 = (b"password", b"0123456789abcdef", 1000, 32)
WEAK_KEY, GOOD_KEY = b"12345", b"0123456789abcdef"  # 40 and 128 bits


def reference_hmac(key: bytes, msg: bytes, name: str = "sha256") -> bytes:
    """RFC 2104 over hashlib's digests, for the expected values (outside FIPS mode only)."""
    block = hashlib.new(name).block_size
    key = hashlib.new(name, key).digest() if len(key) > block else key
    key = key.ljust(block, b"\0")
    inner = hashlib.new(name, bytes(b ^ 0x36 for b in key) + msg).digest()
    return hashlib.new(name, bytes(b ^ 0x5C for b in key) + inner).digest()


def reference_pbkdf2(password: bytes, salt: bytes, iterations: int, length: int) -> bytes:
    """RFC 8018's PBKDF2 with HMAC-SHA256, over :func:`reference_hmac`."""
    out = b""
    block = 1
    while len(out) < length:
        u = reference_hmac(password, salt + block.to_bytes(4, "big"))
        t = int.from_bytes(u, "big")
        for _ in range(iterations - 1):
            u = reference_hmac(password, u)
            t ^= int.from_bytes(u, "big")
        out += t.to_bytes(len(u), "big")
        block += 1
    return out[:length]


def attempt(make: Callable[[], bytes]) -> str:
    """The hex bytes `make` returns, or ``refused: <message>`` when it raises ValueError."""
    try:
        return make().hex()
    except ValueError as e:
        return "refused: " + str(e)


def pbkdf2(case: tuple[bytes, bytes, int, int]) -> Callable[[], bytes]:
    """PBKDF2-HMAC-SHA256 of one case (password, salt, iterations, length), through hashlib."""
    return lambda: hashlib.pbkdf2_hmac("sha256", *case)


def sha256_of(data: bytes = b"") -> hashlib._Hash:
    """A digest constructor hmac cannot tell is OpenSSL's: a Python function around hashlib.sha256."""
    return hashlib.sha256(data)


def attempts() -> dict[str, str]:
    """What each PBKDF2 and HMAC case gives."""
    results = {"pbkdf2_" + case: attempt(pbkdf2(weak)) for case, weak in WEAK_PBKDF2.items()}
    results["pbkdf2_good"] = attempt(pbkdf2(GOOD_PBKDF2))
    results["hmac_new_weak"] = attempt(lambda: hmac.new(WEAK_KEY, b"msg", "sha256").digest())
    results["hmac_digest_weak"] = attempt(lambda: hmac.digest(WEAK_KEY, b"msg", "sha256"))
    results["hmac_callable_digestmod"] = attempt(lambda: hmac.new(GOOD_KEY, b"msg", sha256_of).digest())
    return results


def hmac_object() -> list[object]:
    """An HMAC object's name, sizes, digest, a copy's digest, and the module of the object behind it."""
    h = hmac.new(GOOD_KEY, b"first ", digestmod="sha256")
    copy = h.copy()
    h.update(b"second")
    copy.update(b"other")
    inner = h._hmac  # type: ignore[attr-defined]
    return [h.name, h.digest_size, h.block_size, h.hexdigest(), copy.digest().hex(), type(inner).__module__]


def references() -> dict[str, str]:
    """The values of the cases computed by the RFCs, over hashlib's digests."""
    return {
        **{"pbkdf2_" + case: reference_pbkdf2(*weak).hex() for case, weak in WEAK_PBKDF2.items()},
        "pbkdf2_good": reference_pbkdf2(*GOOD_PBKDF2).hex(),
        "hmac_weak": reference_hmac(WEAK_KEY, b"msg").hex(),
        "hmac_good": reference_hmac(GOOD_KEY, b"first second").hex(),
        "hmac_copy": reference_hmac(GOOD_KEY, b"first other").hex(),
        "hmac_good_msg": reference_hmac(GOOD_KEY, b"msg").hex(),
    }


def main(mode: str) -> None:
    results: dict[str, object] = {**attempts(), "hmac_object": hmac_object()}
    if mode == "reference":
        results["reference"] = references()
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
