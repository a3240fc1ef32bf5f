"""Retries: the one loop every client of a server retries with (the fetcher, the remote cache, the GitHub API).

Attempts are numbered from 0; before each one after the first comes a pause that doubles every time, never past
an optional deadline. Every pause is interruptible (:func:`hermetic.cancel.sleep`): a stop request ends it within
a fraction of a second and raises CancelledError naming what was being done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from hermetic import cancel


def backoff(attempt: int, first: float) -> float:
    """The pause before attempt number `attempt` (1, 2, ...): `first`, then twice as long each time."""
    return first * 2 ** (attempt - 1)


def attempts(count: int, first_pause: float, doing: str, *, deadline: float | None = None) -> Iterator[int]:
    """Attempt numbers ``0 .. count - 1``, pausing before each retry (see :func:`backoff`), the pause cut short
    at `deadline` (a ``time.monotonic()`` value) when there is one."""
    for attempt in range(count):
        if attempt:
            seconds = backoff(attempt, first_pause)
            if deadline is not None:
                seconds = min(seconds, max(0.0, deadline - time.monotonic()))
            pause(seconds, doing)
        cancel.check(doing)
        yield attempt


def pause(seconds: float, doing: str) -> None:
    """Wait `seconds` (before a retry, or as long as a server asked), unless the build is asked to stop."""
    cancel.sleep(seconds)
    cancel.check(doing)
