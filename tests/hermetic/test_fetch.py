"""The fetcher against a real HTTP server on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import LoopbackServer, make_pin
from hermetic.errors import FetchError
from hermetic.fetch import ContentStore, Fetcher, FetchPolicy

PAYLOAD = os.urandom(300_000)
FAST = FetchPolicy(attempts=3, backoff_seconds=0.01, connect_timeout=2, read_timeout=5)


def fetcher(tmp_path: Path, **kwargs: object) -> Fetcher:
    return Fetcher(ContentStore(tmp_path / "cache"), policy=FAST, **kwargs)  # type: ignore[arg-type]


def assert_cache_clean(tmp_path: Path) -> None:
    """Nothing half-written is left anywhere in the cache."""
    entries = list((tmp_path / "cache" / "sha256").rglob("*")) if (tmp_path / "cache" / "sha256").exists() else []
    assert [e for e in entries if e.is_file()] == []
    staging = tmp_path / "cache" / "tmp"
    assert not staging.exists() or list(staging.iterdir()) == []


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
    assert_cache_clean(tmp_path)


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
    (distdir / pin.filename).write_bytes(PAYLOAD[:-1] + b"x")
    with pytest.raises(FetchError) as error:
        fetcher(tmp_path, distdirs=[distdir]).fetch(pin)
    message = error.value.one_line()
    assert str(distdir / pin.filename) in message and "sha256" in message
    assert "connection refused" in message
    assert_cache_clean(tmp_path)


def test_corrupt_cache_entry_is_detected_and_fetched_again(
    tmp_path: Path, http_server: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    http_server.served.files["a.tgz"] = PAYLOAD
    pin = make_pin(PAYLOAD, urls=(http_server.url("good", "a.tgz"),))
    path = fetcher(tmp_path).fetch(pin)
    path.chmod(0o644)
    path.write_bytes(PAYLOAD[:1000] + b"corrupted" + PAYLOAD[1009:])
    again = fetcher(tmp_path).fetch(pin)
    assert again.read_bytes() == PAYLOAD
    assert len(http_server.served.hits) == 2
    assert "corrupt" in capsys.readouterr().err


def test_unreachable_everywhere_says_where_to_put_the_file(tmp_path: Path, dead_url: str) -> None:
    distdir = tmp_path / "offline"
    distdir.mkdir()
    pin = make_pin(PAYLOAD, urls=(dead_url,))
    with pytest.raises(FetchError) as error:
        fetcher(tmp_path, distdirs=[distdir]).fetch(pin)
    message = error.value.one_line()
    assert pin.filename in message and str(distdir) in message and pin.sha256 in message
    assert "\n" not in message
