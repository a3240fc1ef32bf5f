"""Stop requests: a real signal to a real process ends the child process group it waits for."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from hermetic import cancel
from hermetic.errors import CancelledError

# A parent that chains the handlers, starts a shell with a grandchild, and waits for it through cancel.wait.
PARENT = textwrap.dedent(
    """
    import subprocess, sys
    sys.path.insert(0, {site!r})
    from hermetic import cancel
    cancel.chain_handlers()
    child = subprocess.Popen(["sh", "-c", "sleep 300 & echo $! > {pidfile}; wait"], start_new_session=True)
    rc = cancel.wait(child)
    print("stopped", rc, cancel.signal_name(), flush=True)
    try:
        cancel.check("waiting for the shell")
    except Exception as e:
        print(e, flush=True)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stop_signal_ends_the_waited_for_process_group(tmp_path: Path, signal_name: str) -> None:
    import signal

    pidfile = tmp_path / "grandchild.pid"
    script = PARENT.format(site=str(REPO_ROOT / "site_scons"), pidfile=pidfile)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (pidfile.is_file() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    assert _alive(grandchild)
    parent.send_signal(getattr(signal, signal_name))
    out, _ = parent.communicate(timeout=30)
    assert parent.returncode == 0
    assert f"stopped -15 {signal_name}" in out  # the shell was ended by our SIGTERM to its group
    assert f"interrupted by {signal_name} while waiting for the shell" in out
    assert not _alive(grandchild)


def test_check_and_sleep_follow_the_flag() -> None:
    cancel.reset()
    try:
        cancel.check("nothing")  # no request: no error
        started = time.monotonic()
        cancel.request(15)
        cancel.sleep(30)  # returns at once once a stop is requested
        assert time.monotonic() - started < 10
        with pytest.raises(CancelledError, match="interrupted by SIGTERM while fetching x") as raised:
            cancel.check("fetching x")
        assert raised.value.exit_code == 128 + 15
    finally:
        cancel.reset()
