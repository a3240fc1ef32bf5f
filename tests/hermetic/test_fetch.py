"""The fetcher against a real HTTP server on loopback."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import LoopbackServer, child_fetch, make_pin
from hermetic import cancel
from hermetic.content_store import ContentStore
from hermetic.errors import CancelledError, ConfigError, FetchError
from hermetic.fetch import Fetcher, FetchPolicy, mirror_template_problem
from hermetic.pins import Pin

PAYLOAD = os.urandom(300_000)
FAST = FetchPolicy(attempts=3, backoff_seconds=0.01, connect_timeout=2, stall_seconds=5)


def fetcher(tmp_path: Path, **kwargs: object) -> Fetcher:
    return Fetcher(ContentStore(tmp_path / "cache"), policy=FAST, **kwargs)  # type: ignore[arg-type]


def assert_cache_clean(tmp_path: Path, *, kept: bytes = b"") -> None:
    """Nothing unverified is in the store; the staging directory holds only `kept` (a resumable prefix)."""
    entries = list((tmp_path / "cache" / "sha256").rglob("*")) if (tmp_path / "cache" / "sha256").exists() else []
    assert [e for e in entries if e.is_file()] == []
    staging = tmp_path / "cache" / "tmp"
    left = list(staging.iterdir()) if staging.exists() else []
    if not kept:
        assert left == []
    else:
        [partial] = left
        assert partial.name.endswith(".part") and partial.read_bytes() == kept


def test_good_download_is_verified_and_cached(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("good", "a.tgz"),))
    path = fetcher(tmp_path).fetch(pin)
    assert path.read_bytes() == PAYLOAD
    assert path == tmp_path / "cache" / "sha256" / pin.sha256[:2] / pin.sha256
    assert not os.access(path, os.W_OK) or os.geteuid() == 0  # read-only entry (root ignores modes)
    assert path.stat().st_mode & 0o222 == 0
    # A second fetch is served from the cache: no new request.
    hits = len(http_server.served.hits)
    assert fetcher(tmp_path).fetch(pin) == path
    assert len(http_server.served.hits) == hits


def test_wrong_sha256_fails_with_one_line(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("wrong", "a.tgz"),))
    with pytest.raises(FetchError) as error:
        fetcher(tmp_path).fetch(pin)
    message = error.value.one_line()
    assert "sha256 mismatch" in message and pin.sha256 in message
    assert "\n" not in message
    assert "distdir" in message  # says where to put the file
    assert_cache_clean(tmp_path)


def test_wrong_size_fails(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("short", "a.tgz"),))
    with pytest.raises(FetchError) as error:
        fetcher(tmp_path).fetch(pin)
    assert f"pinned size is {len(PAYLOAD)}" in error.value.one_line()
    assert_cache_clean(tmp_path)


def test_truncated_transfer_is_retried_then_fails(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("truncate", "a.tgz"),))
    with pytest.raises(FetchError) as error:
        fetcher(tmp_path).fetch(pin)
    message = error.value.one_line()
    assert "gave up after 3 attempts" in message
    assert len(http_server.served.hits) == 3
    # Each attempt resumed where the previous one stopped; what arrived is kept for the next run.
    assert len(http_server.served.ranges) == 2
    kept = PAYLOAD[: len(PAYLOAD) // 2 + len(PAYLOAD) // 4 + len(PAYLOAD) // 8]
    assert f"{len(kept)} of {len(PAYLOAD)} bytes kept" in message
    assert_cache_clean(tmp_path, kept=kept)
    # The next run resumes it from another URL.
    pin = make_pin(PAYLOAD, urls=(http_server.url("good", "a.tgz"),))
    assert fetcher(tmp_path).fetch(pin).read_bytes() == PAYLOAD
    assert http_server.served.ranges[-1] == f"bytes={len(kept)}-"
    assert not (tmp_path / "cache" / "tmp").exists() or list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_truncated_transfer_resumes_with_range(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    http_server.served.flaky_left["a.tgz"] = 1
    pin = make_pin(PAYLOAD, urls=(http_server.url("flaky", "a.tgz"),))
    path = fetcher(tmp_path).fetch(pin)
    assert path.read_bytes() == PAYLOAD
    [requested] = http_server.served.ranges  # one resumed request, from where the first one stopped
    resumed_at = int(requested.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(PAYLOAD) // 2


def test_dead_first_url_falls_back_to_the_next(tmp_path: Path, http_server: LoopbackServer, dead_url: str) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(dead_url, http_server.url("missing", "a.tgz"), http_server.url("good", "a.tgz")))
    assert fetcher(tmp_path).fetch(pin).read_bytes() == PAYLOAD


def test_user_mirror_is_tried_first(tmp_path: Path, http_server: LoopbackServer, dead_url: str) -> None:
    pin = make_pin(PAYLOAD, urls=(dead_url,))
    http_server.served.files[pin.sha256] = PAYLOAD
    mirror = f"{http_server.base}/good/{{sha256}}"
    assert fetcher(tmp_path, mirrors=[mirror]).fetch(pin).read_bytes() == PAYLOAD
    assert http_server.served.hits == [f"/good/{pin.sha256}"]


def test_debian_urls_are_resolved_by_the_archive_configuration(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["x_1.0.orig.tar.gz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=("debian:good/x_1.0.orig.tar.gz",))
    resolve = lambda url: [url.replace("debian:", http_server.base + "/")]  # noqa: E731
    assert fetcher(tmp_path, resolve=resolve).fetch(pin).read_bytes() == PAYLOAD


def test_offline_build_from_distdir(tmp_path: Path, http_server: LoopbackServer, dead_url: str) -> None:
    distdir = tmp_path / "distdir"
    distdir.mkdir()
    pin = make_pin(PAYLOAD, urls=(dead_url,))
    (distdir / pin.filename).write_bytes(PAYLOAD)
    path = fetcher(tmp_path, distdirs=[distdir]).fetch(pin)
    assert path.read_bytes() == PAYLOAD
    assert http_server.served.hits == []


def test_distdir_file_with_wrong_bytes_is_reported(tmp_path: Path, dead_url: str) -> None:
    distdir = tmp_path / "distdir"
    distdir.mkdir()
    pin = make_pin(PAYLOAD, urls=(dead_url,))
    # Flip the last byte: a fixed replacement would equal the random payload's own last byte once in 256 runs.
    (distdir / pin.filename).write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 0xFF]))
    with pytest.raises(FetchError) as error:
        fetcher(tmp_path, distdirs=[distdir]).fetch(pin)
    message = error.value.one_line()
    assert str(distdir / pin.filename) in message and "sha256" in message
    assert "connection refused" in message
    assert_cache_clean(tmp_path)


def test_unreachable_everywhere_says_where_to_put_the_file(tmp_path: Path, dead_url: str) -> None:
    distdir = tmp_path / "offline"
    distdir.mkdir()
    pin = make_pin(PAYLOAD, urls=(dead_url,))
    with pytest.raises(FetchError) as error:
        fetcher(tmp_path, distdirs=[distdir]).fetch(pin)
    message = error.value.one_line()
    assert pin.filename in message and str(distdir) in message and pin.sha256 in message
    assert "\n" not in message


# --- Bounded downloads: a deadline, a minimum rate and a stall limit per URL, then the next URL. ---------------

# Small limits so a misbehaving server is given up on in about a second; a test that took minutes would mean a hang.
BOUNDED = FetchPolicy(
    attempts=3,
    backoff_seconds=0.01,
    connect_timeout=2,
    stall_seconds=0.6,
    min_rate=20_000,
    rate_window_seconds=0.5,
    rate_grace_seconds=0.5,
    deadline_floor_seconds=5,
)
DID_NOT_HANG = 30.0  # seconds; every case below would take minutes to days without its bound


def bounded(tmp_path: Path, **kwargs: object) -> Fetcher:
    return Fetcher(ContentStore(tmp_path / "cache"), policy=BOUNDED, **kwargs)  # type: ignore[arg-type]


def test_trickling_mirror_falls_through_to_the_next_url(
    tmp_path: Path, http_server: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    http_server.served.trickle_seconds = 0.05  # 20 bytes/s: 300 kB would take over 4 hours
    pin = make_pin(PAYLOAD, urls=(http_server.url("trickle", "a.tgz"), http_server.url("good", "a.tgz")))
    started = time.monotonic()
    assert bounded(tmp_path).fetch(pin).read_bytes() == PAYLOAD
    assert time.monotonic() - started < DID_NOT_HANG
    assert http_server.served.hits == ["/trickle/a.tgz", "/good/a.tgz"]  # too slow is not retried
    warning = capsys.readouterr().err
    assert (
        "too slow" in warning
        and re.search(r"too slow: \d+ B/s over the last 0\.\ds, below the minimum 19\.5 KiB/s", warning)
        and "trying 127.0.0.1" in warning
    )


def test_stalled_mirror_is_resumed_then_the_next_url_continues_from_there(
    tmp_path: Path, http_server: LoopbackServer
) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    http_server.served.stall_after = 1000  # each answer sends 1000 bytes, then nothing while keeping the connection
    pin = make_pin(PAYLOAD, urls=(http_server.url("stall", "a.tgz"), http_server.url("good", "a.tgz")))
    stall_first = dataclasses.replace(BOUNDED, rate_grace_seconds=60)  # judge the stalls, not the rate
    started = time.monotonic()
    assert Fetcher(ContentStore(tmp_path / "cache"), policy=stall_first).fetch(pin).read_bytes() == PAYLOAD
    assert time.monotonic() - started < DID_NOT_HANG
    # A stall after progress is retried with a Range request; the good URL then continues from 3000 bytes.
    assert http_server.served.hits == ["/stall/a.tgz"] * 3 + ["/good/a.tgz"]
    assert http_server.served.ranges == ["bytes=1000-", "bytes=2000-", "bytes=3000-"]


def test_silent_server_is_given_up_after_the_stall_limit(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("silent", "a.tgz"),))
    started = time.monotonic()
    with pytest.raises(FetchError) as error:
        bounded(tmp_path).fetch(pin)
    assert time.monotonic() - started < DID_NOT_HANG
    assert "stalled: nothing received for" in error.value.one_line()
    assert http_server.served.hits == ["/silent/a.tgz"]  # accepted but never answered: not worth a retry


def test_a_host_that_stalled_is_tried_last_for_the_next_files(tmp_path: Path, http_server: LoopbackServer) -> None:
    port = http_server.base.rsplit(":", 1)[1]
    slow_host = f"http://localhost:{port}"  # the same server under another name: the fetcher sees two hosts
    first, second = os.urandom(1000), os.urandom(1000)
    http_server.served.files.update({"1.tgz": first, "2.tgz": second})
    fetcher = bounded(tmp_path)
    fetcher.fetch(make_pin(first, name="one", urls=(f"{slow_host}/silent/1.tgz", http_server.url("good", "1.tgz"))))
    assert http_server.served.hits == ["/silent/1.tgz", "/good/1.tgz"]
    fetcher.fetch(make_pin(second, name="two", urls=(f"{slow_host}/silent/2.tgz", http_server.url("good", "2.tgz"))))
    assert http_server.served.hits[2:] == ["/good/2.tgz"]  # the silent host was not waited for again


def test_deadline_bounds_a_url_that_keeps_the_minimum_rate(tmp_path: Path, http_server: LoopbackServer) -> None:
    small = os.urandom(2000)
    http_server.served.files["s.tgz"] = small
    http_server.served.trickle_seconds = 0.02  # about 50 bytes/s, steadily: never stalls
    patient = FetchPolicy(
        stall_seconds=5, min_rate=1000, rate_grace_seconds=3600, deadline_floor_seconds=0.5
    )  # the rate check never runs here; the deadline is 0.5 s + 2000 B / 1000 B/s = 2.5 s
    pin = make_pin(small, urls=(http_server.url("trickle", "s.tgz"),))
    started = time.monotonic()
    with pytest.raises(FetchError) as error:
        Fetcher(ContentStore(tmp_path / "cache"), policy=patient).fetch(pin)
    assert time.monotonic() - started < DID_NOT_HANG
    assert "not complete within its deadline of 2.5s" in error.value.one_line()


def test_redirect_loop_falls_through_to_the_next_url(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("loop", "a.tgz"), http_server.url("good", "a.tgz")))
    # Limits far above what 30 loopback redirects take on a loaded machine: the loop, not a timer, must end the
    # first URL.
    patient = dataclasses.replace(BOUNDED, stall_seconds=30, rate_grace_seconds=30)
    assert Fetcher(ContentStore(tmp_path / "cache"), policy=patient).fetch(pin).read_bytes() == PAYLOAD
    assert http_server.served.hits[-1] == "/good/a.tgz"
    assert http_server.served.hits.count("/loop/a.tgz") > 10  # it really looped before requests gave up


def test_server_errors_are_retried_then_fall_through(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("error500", "a.tgz"), http_server.url("good", "a.tgz")))
    assert bounded(tmp_path).fetch(pin).read_bytes() == PAYLOAD
    assert http_server.served.hits == ["/error500/a.tgz"] * 3 + ["/good/a.tgz"]


def test_unusable_urls_fall_through_to_the_next(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    unusable = ("ftp://files.example/a.tgz", "files.example/a.tgz", "http://127.0.0.1:99999/a.tgz")
    pin = make_pin(PAYLOAD, urls=(*unusable, http_server.url("good", "a.tgz")))
    assert bounded(tmp_path).fetch(pin).read_bytes() == PAYLOAD
    with pytest.raises(FetchError) as error:
        bounded(tmp_path / "other").fetch(make_pin(PAYLOAD, urls=unusable))
    message = error.value.one_line()
    assert "ftp://files.example/a.tgz: InvalidSchema: " in message
    assert "files.example/a.tgz: MissingSchema: " in message
    assert "http://127.0.0.1:99999/a.tgz: InvalidURL: " in message


def test_final_error_names_the_file_and_every_url_with_its_reason(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    http_server.served.trickle_seconds = 0.05  # steady enough never to look stalled, far too slow to finish
    modes = ("loop", "error500", "silent", "missing", "trickle")
    pin = make_pin(PAYLOAD, urls=tuple(http_server.url(mode, "a.tgz") for mode in modes))
    # Limits of 3 s rather than BOUNDED's 0.6 s: 30 loopback redirects can take longer than that on a loaded
    # machine, and then a timer, not the loop, would end the first URL.
    limits = dataclasses.replace(BOUNDED, stall_seconds=3, rate_grace_seconds=3)
    with pytest.raises(FetchError) as error:
        Fetcher(ContentStore(tmp_path / "cache"), policy=limits).fetch(pin)
    message = error.value.one_line()
    assert "\n" not in message and message.startswith(f"cannot fetch {pin.filename} ")
    reasons = message.split(": ", 1)[1].split("; ")
    assert reasons[0] == f"{http_server.url('loop', 'a.tgz')}: redirect loop (too many redirects)"
    assert reasons[1] == f"{http_server.url('error500', 'a.tgz')}: HTTP 500 (gave up after 3 attempts)"
    assert reasons[2].startswith(f"{http_server.url('silent', 'a.tgz')}: stalled: nothing received for")
    assert reasons[3] == f"{http_server.url('missing', 'a.tgz')}: HTTP 404"
    assert reasons[4].startswith(f"{http_server.url('trickle', 'a.tgz')}: too slow: ")
    # The trickle's few bytes are kept for the next run.
    assert "bytes kept in" in message and "resumed next time" in message


def test_bad_mirror_template_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        Fetcher(ContentStore(tmp_path), mirrors=["https://m.example/{version}/{filename}"])
    assert error.value.one_line() == (
        "mirror https://m.example/{version}/{filename} has an unknown field {version}; "
        "valid fields: {sha256}, {filename}, {name}"
    )


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://m.example/{sha256}", None),
        ("file:///srv/mirror/{filename}", None),
        ("http://m.example/{name}/{filename}", None),
        ("https://m.example/{version}", "has an unknown field {version}"),
        ("https://m.example/{sha256", "is not a valid template (expected '}' before end of string)"),
        ("https://m.example/sha256}", "is not a valid template (Single '}' encountered in format string)"),
        ("https://m.example/{sha256[0]}", "has an unknown field {sha256[0]}"),
        ("https://m.example/{}", "has an unknown field {}"),
        ("https://m.example/{name}", "names no file: it needs {sha256} or {filename}"),
        ("ftp://m.example/{sha256}", "has scheme ftp:, not one of http, https, file"),
        ("m.example/{sha256}", "has scheme (none):, not one of http, https, file"),
        ("https:///{sha256}", "has no host"),
    ],
)
def test_mirror_template_problems(template: str, problem: str | None) -> None:
    assert mirror_template_problem(template) == problem


# --- Stop requests and progress. -------------------------------------------------------------------------------


@pytest.fixture
def no_stop_request() -> Iterator[None]:
    cancel.reset()
    yield
    cancel.reset()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    limit = time.monotonic() + DID_NOT_HANG
    while not condition():
        assert time.monotonic() < limit, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_progress_and_a_stop_request_during_a_stalled_download(
    tmp_path: Path, http_server: LoopbackServer, no_stop_request: None
) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    http_server.served.stall_after = 1000
    url = http_server.url("stall", "a.tgz")
    pin = make_pin(PAYLOAD, urls=(url,))
    patient = FetchPolicy(stall_seconds=600, rate_grace_seconds=600)  # only the stop request can end it
    fetcher = Fetcher(ContentStore(tmp_path / "cache"), policy=patient)
    assert fetcher.status() == ""
    outcome: list[BaseException] = []
    thread = threading.Thread(target=lambda: _fetch_into(fetcher, pin, outcome))
    thread.start()
    wait_for(lambda: any(p.received == 1000 for p in fetcher.progress()), "the first 1000 bytes")
    [progress] = fetcher.progress()
    assert (progress.filename, progress.url, progress.received, progress.size) == (pin.filename, url, 1000, 300_000)
    assert fetcher.status() == f"{pin.filename} from {url.split('/')[2]}: 1.0 of 300.0 kB"
    cancel.request(signal.SIGTERM)
    stopped = time.monotonic()
    thread.join(DID_NOT_HANG)
    assert not thread.is_alive()
    assert time.monotonic() - stopped < 5  # noticed within a poll, not at the 600 s stall limit
    [error] = outcome
    assert isinstance(error, CancelledError)
    assert error.one_line() == f"interrupted by SIGTERM while fetching {pin.filename} from {url}"
    assert fetcher.status() == ""
    assert_cache_clean(tmp_path, kept=PAYLOAD[:1000])
    # The transfer thread, blocked reading from the silent server, was woken and ended too.
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == f"fetch {pin.filename}"], "its thread")


def _fetch_into(fetcher: Fetcher, pin: Pin, outcome: list[BaseException]) -> None:
    try:
        fetcher.fetch(pin)
    except BaseException as e:  # handed to the test thread
        outcome.append(e)


def test_sigterm_stops_a_real_fetch_and_the_next_run_resumes(tmp_path: Path, http_server: LoopbackServer) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    http_server.served.stall_after = 4000
    stalled_url = http_server.url("stall", "a.tgz")
    pin = make_pin(PAYLOAD, urls=(stalled_url,))
    store = tmp_path / "cache"
    child = child_fetch(store, pin, {"stall_seconds": 600, "rate_grace_seconds": 600})
    partial = store / "tmp" / f"{pin.sha256}.part"
    wait_for(lambda: (partial.exists() and partial.stat().st_size == 4000) or child.poll() is not None, "4000 bytes")
    child.send_signal(signal.SIGTERM)
    try:
        _out, err = child.communicate(timeout=DID_NOT_HANG)
    finally:
        child.kill()
    assert child.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == f"interrupted by SIGTERM while fetching {pin.filename} from {stalled_url}"
    assert partial.read_bytes() == PAYLOAD[:4000]
    # A second run (a good URL now) resumes from the kept bytes with a Range request.
    good = dataclasses.replace(pin, urls=(http_server.url("good", "a.tgz"),))
    again = child_fetch(store, good, {})
    out, err = again.communicate(timeout=DID_NOT_HANG)
    assert again.returncode == 0, err
    assert Path(out.splitlines()[-1]).read_bytes() == PAYLOAD
    assert http_server.served.ranges == ["bytes=4000-"]
    assert not partial.exists()
