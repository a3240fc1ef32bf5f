"""Write this interpreter's object allocator statistics to stderr (``sys._debugmallocstats``).

A child program of the runtime tests (runtime_tests.py: allocator_in_use), which tells the allocator by what the
statistics hold. Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    sys._debugmallocstats()
