"""Progress output: one line per action with its duration, and a heartbeat while it runs."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hermetic import redact

_lock = threading.Lock()

# Seconds between heartbeat lines for a running action; tests shorten it.
HEARTBEAT_SECONDS = float(os.environ.get("HERMETIC_HEARTBEAT", "60"))


def say(line: str) -> None:
    """Print one whole line, never interleaved with another thread's line (credentials in it masked)."""
    line = redact.text(line)
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def say_later(text: Callable[[], str]) -> None:
    """Print the line `text` gives, computed now (for ``atexit``: a summary known only at the end)."""
    say(text())


def warn(line: str) -> None:
    """Print a warning line on stderr (credentials in it masked)."""
    line = redact.text(line)
    with _lock:
        sys.stderr.write(f"warning: {line}\n")
        sys.stderr.flush()


def format_duration(seconds: float) -> str:
    """Render a duration compactly: 0.4s, 12.3s, 4m05s."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def tail(path: Path, lines: int = 30) -> list[str]:
    """Return the last `lines` lines of a text file (empty if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    return data.splitlines()[-lines:]


class _Heartbeat(threading.Thread):
    def __init__(self, label: str, started: float, status: Callable[[], str]) -> None:
        super().__init__(daemon=True)
        self._label = label
        self._began = started
        self._status = status
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(HEARTBEAT_SECONDS):
            elapsed = format_duration(time.monotonic() - self._began)
            status = self._status()
            say(f"  .. {self._label}: still running after {elapsed}" + (f" ({status})" if status else ""))

    def stop(self) -> None:
        self._stop_event.set()


@contextmanager
def step(label: str, status: Callable[[], str] = lambda: "") -> Iterator[None]:
    """Announce `label`, heartbeat while it runs, then print its outcome and duration."""
    started = time.monotonic()
    say(f"[start] {label}")
    heartbeat = _Heartbeat(label, started, status)
    heartbeat.start()
    try:
        yield
    except BaseException:
        heartbeat.stop()
        say(f"[FAIL ] {label} after {format_duration(time.monotonic() - started)}")
        raise
    heartbeat.stop()
    say(f"[ ok  ] {label} in {format_duration(time.monotonic() - started)}")
