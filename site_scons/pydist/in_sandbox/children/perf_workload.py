"""A workload for ``python -X perf`` under ``perf record -g``: baz calls bar calls foo, whose loop takes the
samples, so perf's call graphs must show py::foo called by py::bar called by py::baz.

A child program of the runtime tests (runtime_tests.py: perf_shows_python_frames). Standard library only, Python
3.11 and later.
"""

from __future__ import annotations


def foo(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def bar(n: int) -> int:
    return foo(n)


def baz(n: int) -> int:
    return bar(n)


if __name__ == "__main__":
    for _ in range(30):
        baz(200_000)
