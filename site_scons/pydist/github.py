"""A small client of the GitHub REST API: retries with backoff, rate limits, pagination, downloads.

Only what the release tool needs. Every call goes through :meth:`GitHub.call`, which retries transient
failures (connection errors, 5xx) with exponential backoff, waits out rate limits (403/429 with
``X-RateLimit-Remaining: 0`` or ``Retry-After``) a bounded number of times, and turns anything else into a
one-line :class:`GitHubError`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from hermetic import log
from hermetic.errors import HermeticError
from hermetic.retry import attempts, backoff, pause

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_CHUNK = 1 << 20


class GitHubError(HermeticError):
    """The GitHub API refused a request, or kept failing after the retries."""

    exit_code = 11

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.transient = transient


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    Attributes:
        attempts: (int) tries of one request when it fails transiently.
        backoff_seconds: (float) the first pause between tries; it doubles each time.
        rate_limit_waits: (int) how many rate-limit answers to wait out in one call.
        max_rate_limit_wait: (float) the longest single wait for a rate limit to reset, in seconds.
    """

    attempts: int = 5
    backoff_seconds: float = 2.0
    rate_limit_waits: int = 5
    max_rate_limit_wait: float = 900.0


def rate_limit_wait(response: requests.Response) -> float | None:
    """Seconds to wait before asking again if `response` is a rate-limit answer, else None."""
    if response.status_code not in (403, 429):
        return None
    retry_after = response.headers.get("Retry-After")
    if retry_after is not None and retry_after.strip().isdigit():
        return float(retry_after)
    if response.headers.get("X-RateLimit-Remaining") == "0":
        reset = response.headers.get("X-RateLimit-Reset", "")
        return max(float(reset) - time.time(), 0.0) + 1.0 if reset.isdigit() else 60.0
    # GitHub's secondary limits may come without headers; its docs say to wait at least a minute.
    return 60.0 if response.status_code == 429 else None


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except (ValueError, AttributeError):
        return response.text[:200].strip()


class GitHub:
    """One repository's REST API, authenticated with a token."""

    def __init__(self, api_url: str, repo: str, token: str | None, policy: RetryPolicy | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.repo = repo
        self.policy = policy or RetryPolicy()
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "fips-python-standalone-release",
            }
        )
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        """An absolute URL: `path` under the repository (``/releases``), the API (``//rate_limit``), or as is."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("//"):
            return f"{self.api_url}{path[1:]}"
        return f"{self.api_url}/repos/{self.repo}{path}"

    def call(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200,),
        retry: bool = True,
        body: Path | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request; return the response when its status is in `ok`.

        Transient failures are retried (unless `retry` is False: then a transient GitHubError is raised at the
        first one, for the caller to reconcile). A file `body` is reopened for every try.
        """
        url = self.url(path)
        shown = f"{method} {url.split('?')[0]}"
        failures = waits = 0
        while True:
            try:
                if body is not None:
                    with open(body, "rb") as data:
                        response = self.session.request(method, url, data=data, timeout=(15, 600), **kwargs)
                else:
                    response = self.session.request(method, url, timeout=(15, 600), **kwargs)
            except requests.RequestException as e:
                problem = type(e).__name__
            else:
                if response.status_code in ok:
                    return response
                wait = rate_limit_wait(response)
                if wait is not None:
                    waits += 1
                    if waits > self.policy.rate_limit_waits or wait > self.policy.max_rate_limit_wait:
                        raise GitHubError(
                            f"{shown}: rate limited (would wait {wait:.0f}s more)",
                            hint="run the same command again later: it resumes where it stopped",
                        )
                    log.warn(f"{shown}: rate limited, waiting {wait:.0f}s")
                    pause(wait, shown)
                    continue
                if response.status_code < 500:
                    raise GitHubError(
                        f"{shown}: HTTP {response.status_code} {_message(response)}".rstrip(),
                        hint="check the repository, the token's permissions and the arguments",
                    )
                problem = f"HTTP {response.status_code}"
            failures += 1
            if not retry or failures >= self.policy.attempts:
                raise GitHubError(
                    f"{shown}: {problem} after {failures} attempt(s)",
                    hint="GitHub may be degraded; run the same command again: it resumes where it stopped",
                    transient=True,
                )
            delay = backoff(failures, self.policy.backoff_seconds)
            log.warn(f"{shown}: {problem}; trying again in {delay:.1f}s")
            pause(delay, shown)

    def pages(self, path: str, key: str | None = None, **params: str) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list (following ``Link: rel="next"``); `key` names the list in an object."""
        url: str | None = path
        query: dict[str, str] | None = {**params, "per_page": "100"}
        while url:
            response = self.call("GET", url, params=query)
            document = response.json()
            yield from document[key] if key else document
            url = response.links.get("next", {}).get("url")
            query = None  # the next link carries the query

    def download(self, path: str, dest: Path, *, accept: str | None = None) -> Path:
        """Stream `path` (following redirects) into `dest` atomically; retry truncated transfers."""
        headers = {"Accept": accept} if accept else {}
        dest.parent.mkdir(parents=True, exist_ok=True)
        doing = f"GET {self.url(path)}"
        for attempt in attempts(self.policy.attempts, self.policy.backoff_seconds, doing):
            response = self.call("GET", path, headers=headers, stream=True)
            fd, temp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as out, response:
                    for chunk in response.iter_content(_CHUNK):
                        out.write(chunk)
                    expected = response.headers.get("Content-Length")
                    if (
                        expected is not None
                        and out.tell() != int(expected)
                        and "Content-Encoding" not in response.headers
                    ):
                        raise requests.ConnectionError(f"{out.tell()} of {expected} bytes")
                os.replace(temp, dest)
                return dest
            except (requests.RequestException, OSError) as e:
                Path(temp).unlink(missing_ok=True)
                if attempt + 1 == self.policy.attempts:
                    raise GitHubError(
                        f"{doing}: {type(e).__name__} after {attempt + 1} attempt(s)",
                        hint="run the same command again: it resumes where it stopped",
                        transient=True,
                    ) from None
        raise AssertionError("unreachable")
