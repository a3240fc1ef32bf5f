"""Hash once, then print the one FIPS provider module (``.../ossl-modules/fips.so``) this process has mapped.

In FIPS mode this Python's own libcrypto loads the provider module: the file the process maps is the one it uses.
A child program of the runtime tests (runtime_tests.py: shipped_fips_provider_is_the_requested_one). Standard
library only, Python 3.11 and later; Linux (it reads /proc/self/maps).
"""

from __future__ import annotations

import hashlib


def mapped_files() -> set[str]:
    """The paths of the files this process maps (the sixth field of /proc/self/maps, where there is one)."""
    with open("/proc/self/maps") as maps:
        return {line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6}


def main() -> None:
    hashlib.sha256(b"x").hexdigest()
    modules = sorted(path for path in mapped_files() if path.endswith("/ossl-modules/fips.so"))
    assert len(modules) == 1, modules
    print(modules[0])


if __name__ == "__main__":
    main()
