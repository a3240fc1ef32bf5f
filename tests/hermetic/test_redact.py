"""Credentials never shown: the masking itself, and every path by which the fetcher turns a URL into text, against
a real loopback server that asks for HTTP basic authentication."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import LoopbackServer, child_fetch, make_pin
from hermetic import log, redact
from hermetic.content_store import ContentStore
from hermetic.errors import ConfigError, FetchError
from hermetic.fetch import Fetcher, FetchPolicy

SECRET = "s3cret-Pa55"
USER = "builder"
PAYLOAD = os.urandom(200_000)
FAST = FetchPolicy(attempts=2, backoff_seconds=0.01, connect_timeout=2, stall_seconds=5)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:s3cret@127.0.0.1:8080/z.tar.gz", "http://***@127.0.0.1:8080/z.tar.gz"),
        ("https://token@mirror.example/f", "https://***@mirror.example/f"),
        # A password holding '/' unencoded: a URL parser would take part of it for the path.
        ("https://u:pa/ss@h/x", "https://***@h/x"),
        ("https://h/f?token=s3cret&X-Amz-Signature=abc", "https://h/f?token=***&X-Amz-Signature=***"),
        ("failed: url: /cas/ab?sig=s3cret (Caused by", "failed: url: /cas/ab?sig=*** (Caused by"),
        ("fetched f from user:s3cret@127.0.0.1:99 in 0.1s", "fetched f from ***@127.0.0.1:99 in 0.1s"),
        ("https://mirror.example/{sha256}", "https://mirror.example/{sha256}"),
        ("file:///srv/dist/a.tar.gz", "file:///srv/dist/a.tar.gz"),
        ("[ ok  ] build zlib-1.3.1 in 3.2s", "[ ok  ] build zlib-1.3.1 in 3.2s"),
        ("write to a@b.example", "write to a@b.example"),
    ],
)
def test_text_masks_credentials_and_query_values(text: str, shown: str) -> None:
    assert redact.text(text) == shown


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://user:s3cret@127.0.0.1:8080/z", "127.0.0.1:8080"),
        ("https://u:pa/ss@h/x", "h"),
        ("https://mirror.example/f", "mirror.example"),
    ],
)
def test_host_never_carries_user_info(url: str, host: str) -> None:
    assert redact.host(url) == host


def test_errors_and_log_lines_are_masked_whatever_built_them(capsys: pytest.CaptureFixture[str]) -> None:
    error = ConfigError("mirror http://u:s3cret@h/x is down", hint="try http://u:s3cret@h2/?token=s3cret")
    assert "s3cret" not in error.one_line() and "s3cret" not in str(error)
    log.say("from http://u:s3cret@h/x")
    log.warn("from u:s3cret@h:1")
    out, err = capsys.readouterr()
    assert "s3cret" not in out + err and "***@h" in out and "***@h:1" in err


def _credentialed(server: LoopbackServer, mode: str, name: str) -> str:
    return server.url(mode, name).replace("http://", f"http://{USER}:{SECRET}@")


@pytest.fixture
def guarded(http_server: LoopbackServer) -> LoopbackServer:
    """The loopback server, answering only requests with the basic credentials USER:SECRET."""
    token = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    http_server.served.authorization = f"Basic {token}"
    http_server.served.files["blob-1.0.tar.gz"] = PAYLOAD
    return http_server


def test_a_successful_fetch_from_a_credentialed_mirror_shows_no_secret(
    tmp_path: Path, guarded: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pin = make_pin(PAYLOAD, name="blob")
    mirror = _credentialed(guarded, "good", "{filename}")
    path = Fetcher(ContentStore(tmp_path / "cache"), mirrors=(mirror,), policy=FAST).fetch(pin)
    assert path.read_bytes() == PAYLOAD  # the credentials were sent: the server refuses requests without them
    out, err = capsys.readouterr()
    assert "fetched blob-1.0.tar.gz" in out and "127.0.0.1" in out
    assert SECRET not in out + err and f"{USER}:" not in out + err


def test_every_failure_message_of_credentialed_urls_shows_no_secret(
    tmp_path: Path, guarded: LoopbackServer, dead_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pin = make_pin(PAYLOAD, name="blob")
    # A redirect to a URL that carries credentials and a token in its query (as a pre-signed URL does).
    guarded.served.redirects["blob-1.0.tar.gz"] = _credentialed(guarded, "missing", f"x?token={SECRET}")
    mirrors = (
        _credentialed(guarded, "missing", "{filename}"),
        _credentialed(guarded, "redirect", "{filename}"),
        _credentialed(guarded, "wrong", "{filename}"),
        dead_url.replace("http://", f"http://{USER}:{SECRET}@") + "?{sha256}",
        f"http://{USER}:{SECRET}@no-such-host.invalid/{{filename}}?access_token={SECRET}",
    )
    with pytest.raises(FetchError) as error:
        Fetcher(ContentStore(tmp_path / "cache"), mirrors=mirrors, policy=FAST).fetch(pin)
    message = error.value.one_line()
    out, err = capsys.readouterr()
    assert "HTTP 404" in message and "sha256 mismatch" in message and "connection refused" in message
    assert message.count("***@") >= len(mirrors)
    assert err.count("warning:") == len(mirrors) - 1
    for text in (message, out, err):
        assert SECRET not in text and f"{USER}:" not in text


def test_the_heartbeat_status_of_a_credentialed_fetch_shows_no_secret(tmp_path: Path, guarded: LoopbackServer) -> None:
    guarded.served.trickle_seconds = 0.05
    pin = make_pin(PAYLOAD, name="blob", urls=(_credentialed(guarded, "trickle", "blob-1.0.tar.gz"),))
    fetcher = Fetcher(ContentStore(tmp_path / "cache"), policy=FetchPolicy(attempts=1))
    failures: list[BaseException] = []

    def fetch() -> None:
        try:
            fetcher.fetch(pin)
        except FetchError as e:
            failures.append(e)

    thread = threading.Thread(target=fetch)
    thread.start()
    deadline = time.monotonic() + 10
    while "kB" not in (status := fetcher.status()) and time.monotonic() < deadline:
        time.sleep(0.05)
    guarded.served.released.set()  # the server cuts the transfer short
    thread.join(30)
    host = guarded.base.removeprefix("http://")
    assert status.startswith(f"blob-1.0.tar.gz from {host}: ") and status.endswith(" of 200.0 kB")
    assert failures and SECRET not in failures[0].args[0]


def test_a_stop_during_a_credentialed_fetch_shows_no_secret(tmp_path: Path, guarded: LoopbackServer) -> None:
    pin = make_pin(PAYLOAD, name="blob", urls=(_credentialed(guarded, "trickle", "blob-1.0.tar.gz"),))
    child = child_fetch(tmp_path / "child-cache", pin, {"attempts": 1, "stall_seconds": 30})
    deadline = time.monotonic() + 30
    while not guarded.served.hits and time.monotonic() < deadline:  # the transfer has started: handlers are set
        time.sleep(0.05)
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert "127.0.0.1" in err
    assert SECRET not in out + err and f"{USER}:" not in out + err
