"""The one retry loop: attempt numbers, doubling pauses cut at a deadline, and stop requests honoured."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from hermetic import cancel, retry
from hermetic.errors import CancelledError


@pytest.fixture(autouse=True)
def no_stop_request() -> Iterator[None]:
    cancel.reset()
    yield
    cancel.reset()


def test_pauses_double_and_every_attempt_is_numbered(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(cancel, "sleep", slept.append)
    assert list(retry.attempts(4, 0.5, "asking")) == [0, 1, 2, 3]
    assert slept == [0.5, 1.0, 2.0] == [retry.backoff(n, 0.5) for n in (1, 2, 3)]


def test_a_pause_never_runs_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(cancel, "sleep", slept.append)
    deadline = time.monotonic() + 3.0
    list(retry.attempts(3, 10.0, "asking", deadline=deadline))
    assert len(slept) == 2 and all(0.0 <= s <= 3.0 for s in slept)


def test_a_stop_request_ends_a_long_pause_and_names_what_was_done() -> None:
    threading.Timer(0.2, cancel.request, args=(signal.SIGTERM,)).start()
    with pytest.raises(CancelledError, match=r"uploading demo\.tar\.zst"):
        retry.pause(600, "uploading demo.tar.zst")  # would take ten minutes if the pause ignored the request
    with pytest.raises(CancelledError):
        next(retry.attempts(3, 1.0, "uploading demo.tar.zst"))  # the first attempt is not even started
