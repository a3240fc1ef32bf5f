"""Stopping promptly: a build asked to stop (Ctrl-C, SIGTERM from CI or ``timeout``, SIGHUP) stops its running
work within seconds instead of when the current step happens to end.

SCons's own signal handler only stops new tasks from starting. :func:`install` chains a handler in front of
it that records the request; long-running work polls :func:`cancelled` (or calls :func:`check`) and child
processes are waited for with :func:`wait`, which ends the child's whole process group when a stop is asked.
Handlers only set a flag, so they are safe whatever thread is running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from hermetic.errors import CancelledError

# Signals that ask a build to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# How often waiting loops look at the flag, and how long a child gets between SIGTERM and SIGKILL.
POLL_SECONDS = 0.2
GRACE_SECONDS = 3.0

_requested: int | None = None


def request(signum: int) -> None:
    """Record that the build was asked to stop by `signum` (the first request wins)."""
    global _requested
    if _requested is None:
        _requested = signum


def reset() -> None:
    """Forget a stop request (tests, and a process that goes on after handling one)."""
    global _requested
    _requested = None


def cancelled() -> bool:
    """Whether a stop was requested."""
    return _requested is not None


def requested_signal() -> int | None:
    """The number of the signal that asked to stop, or None."""
    return _requested


def signal_name() -> str:
    """The name of the signal that asked to stop, e.g. ``SIGTERM``."""
    return signal.Signals(_requested).name if _requested is not None else "no signal"


def check(doing: str) -> None:
    """Raise CancelledError, naming what was interrupted, when a stop was requested."""
    if _requested is not None:
        raise stopped(f"interrupted by {signal_name()} while {doing}")


def stopped(message: str, hint: str | None = None) -> CancelledError:
    """The error that ends work after a stop request; it exits with 128 + the signal's number, as a shell
    reports a process that signal ended (130 for Ctrl-C, 143 for SIGTERM)."""
    error = CancelledError(message, hint=hint)
    if _requested is not None:
        error.exit_code = 128 + _requested
    return error


def take_over_signals() -> None:
    """Make the stop signals only record the request (replacing whatever handles them now).

    For a driver whose every task polls :func:`cancelled` and fails with :func:`stopped`: that failure then
    stops the driver, with the task's own message, instead of the driver's generic interruption.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, _recording)


def _recording(received: int, frame: FrameType | None) -> None:
    request(received)


def chain_handlers() -> None:
    """Put a recording handler in front of whatever handles the stop signals now (SCons's, or the default).

    Called once the current handlers are in place; safe to call again (a handler is never wrapped twice). A
    process that calls it must poll the flag: the signals no longer end it by themselves.
    """
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)
        if getattr(previous, "_hermetic_chained", False):
            continue
        signal.signal(signum, _chained(signum, previous))


def _chained(signum: int, previous: Any) -> Callable[[int, FrameType | None], None]:
    # The default actions (end the process, KeyboardInterrupt) are not chained: the work in progress polls the
    # flag and ends its children, which a sudden exit or an exception at an arbitrary point would not.
    def handler(received: int, frame: FrameType | None) -> None:
        request(received)
        if callable(previous) and previous is not signal.default_int_handler:
            previous(received, frame)

    handler._hermetic_chained = True  # type: ignore[attr-defined]
    return handler


def sleep(seconds: float) -> None:
    """Sleep up to `seconds`, returning early when a stop is requested."""
    deadline = time.monotonic() + seconds
    while not cancelled():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, POLL_SECONDS))


def wait(process: subprocess.Popen[Any]) -> int:
    """Wait for `process` (started with ``start_new_session=True``); when a stop is requested, end its process
    group (SIGTERM, then SIGKILL after a grace period) and return its exit status."""
    while True:
        try:
            return process.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if cancelled():
                return terminate(process)


def terminate(process: subprocess.Popen[Any]) -> int:
    """End `process` and everything in its process group; return its exit status."""
    for signum, patience in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            return process.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()
