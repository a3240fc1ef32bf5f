"""A fake GitHub on loopback: the subset of the REST API the release tool uses, with real state.

Routes (``{repo}`` is ``owner/name``):
    GET    /repos/{repo}/actions/workflows/{file}/runs?head_sha=    workflow runs (paginated)
    GET    /repos/{repo}/actions/runs/{id}/artifacts                  a run's artifacts (paginated)
    GET    /repos/{repo}/actions/artifacts/{id}/zip                   302 to a storage URL on another host name
    GET    /repos/{repo}/releases                                     releases, drafts included (paginated)
    POST   /repos/{repo}/releases                                     create (422 if a published one has the tag)
    PATCH  /repos/{repo}/releases/{id}                                update (draft=false publishes)
    GET    /repos/{repo}/releases/{id}/assets                         assets (paginated)
    GET    /repos/{repo}/releases/assets/{id}                         metadata, or 302 to its bytes (octet-stream)
    DELETE /repos/{repo}/releases/assets/{id}
    POST   /uploads/repos/{repo}/releases/{id}/assets?name=           upload (422 if the name is taken)
    GET    /{repo}/releases/download/{tag}/{name}                     a published release's asset (no auth)
    GET    /storage/...                                               "blob storage": refuses an Authorization header

Pages hold at most ``page_size`` items, so clients must follow ``Link: rel="next"``. Faults are injected by
the test through :class:`Faults`.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

TOKEN = "test-token-0123456789"
# The signature of storage's pre-signed redirect URLs: a secret the client must never show.
SIGNATURE = "sig-s3cret-9f8e7d6c"


@dataclass
class Asset:
    """A release asset: its bytes, and ``starter`` while an upload is unfinished."""

    id: int
    name: str
    data: bytes
    state: str = "uploaded"


@dataclass
class Release:
    """A release, draft until published."""

    id: int
    tag_name: str
    target_commitish: str
    name: str
    body: str
    draft: bool = True
    assets: dict[int, Asset] = field(default_factory=dict)


@dataclass
class Artifact:
    """A workflow run's artifact: the bytes of its zip."""

    id: int
    name: str
    data: bytes
    expired: bool = False


@dataclass
class Run:
    """A workflow run of one commit, with its artifacts."""

    id: int
    workflow: str
    head_sha: str
    status: str = "completed"
    conclusion: str | None = "success"
    created_at: str = "2026-11-30T00:00:00Z"
    artifacts: list[Artifact] = field(default_factory=list)


@dataclass
class Faults:
    """Failures to inject.

    Attributes:
        fail_uploads: (dict[str, int]) asset name -> how many uploads of it answer 502 (after storing a
            partial "starter" asset, as an interrupted upload leaves one).
        rate_limit: (dict[str, int]) "METHOD path-regex" -> how many answers are a rate limit first.
        rate_limit_style: (str) ``reset`` (403, X-RateLimit-Remaining: 0) or ``retry-after`` (429).
        report_digests: (bool) whether asset objects carry GitHub's ``digest`` field.
        corrupt_downloads: (set[str]) asset names whose bytes come back altered from storage.
    """

    fail_uploads: dict[str, int] = field(default_factory=dict)
    rate_limit: dict[str, int] = field(default_factory=dict)
    rate_limit_style: str = "reset"
    report_digests: bool = True
    corrupt_downloads: set[str] = field(default_factory=set)


@dataclass
class State:
    """Everything the fake holds, and the log of every request as (method, path, status)."""

    repo: str
    runs: list[Run] = field(default_factory=list)
    releases: dict[int, Release] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    page_size: int = 2
    log: list[tuple[str, str, int]] = field(default_factory=list)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_id(self) -> int:
        """A fresh id for a run, artifact, release or asset."""
        self.next_id += 1
        return self.next_id

    def writes(self) -> list[tuple[str, str, int]]:
        """Every request that was not a GET."""
        return [entry for entry in self.log if entry[0] != "GET"]

    def uploads_of(self, name: str) -> int:
        """How many uploads of the asset `name` were attempted."""
        return sum(1 for m, p, _ in self.log if m == "POST" and p.startswith("/uploads/") and f"name={name}" in p)


class _Handler(http.server.BaseHTTPRequestHandler):
    state: State
    base: str  # http://127.0.0.1:port
    storage: str  # the same server under another host name, as GitHub's storage is another host

    def log_message(self, *args: object) -> None:
        pass

    # ------------------------------------------------------------------------------------ plumbing

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if not isinstance(body, bytes) and body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        path = urllib.parse.urlsplit(self.path).path
        self.state.log.append((self.command, path + self._query_suffix(), status))

    def _query_suffix(self) -> str:
        query = urllib.parse.urlsplit(self.path).query
        name = urllib.parse.parse_qs(query).get("name")
        return f"?name={name[0]}" if name else ""

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _page(self, items: list[dict[str, Any]], key: str | None) -> None:
        split = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(split.query)
        per_page = min(int(query.get("per_page", ["30"])[0]), self.state.page_size)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            query.update(page=[str(page + 1)], per_page=[str(per_page)])
            next_url = f"{self.base}{split.path}?{urllib.parse.urlencode(query, doseq=True)}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._send(200, {"total_count": len(items), key: chunk} if key else chunk, headers)

    def _rate_limited(self) -> bool:
        route = f"{self.command} {urllib.parse.urlsplit(self.path).path}"
        for pattern, left in self.state.faults.rate_limit.items():
            if left > 0 and re.fullmatch(pattern, route):
                self.state.faults.rate_limit[pattern] = left - 1
                self._body()
                if self.state.faults.rate_limit_style == "retry-after":
                    self._send(429, {"message": "secondary rate limit"}, {"Retry-After": "1"})
                else:
                    reset = str(int(time.time()) + 1)
                    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
                    self._send(403, {"message": "API rate limit exceeded"}, headers)
                return True
        return False

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._body()
            self._send(401, {"message": "Bad credentials"})
            return False
        return True

    def _dispatch(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        with self.state.lock:
            if path.startswith("/storage/"):
                self._storage(path)
                return
            if re.fullmatch(r"/[^/]+/[^/]+/releases/download/[^/]+/[^/]+", path):
                self._public_download(path)
                return
            if not self._authorized() or self._rate_limited():
                return
            for method, pattern, handler in ROUTES:
                found = re.fullmatch(pattern.replace("{repo}", re.escape(self.state.repo)), path)
                if method == self.command and found:
                    handler(self, *found.groups())
                    return
            self._body()
            self._send(404, {"message": "Not Found"})

    do_GET = do_POST = do_PATCH = do_DELETE = _dispatch

    # ------------------------------------------------------------------------------------ JSON shapes

    def _asset_json(self, release: Release, asset: Asset) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": asset.id,
            "name": asset.name,
            "size": len(asset.data),
            "state": asset.state,
            "content_type": "application/octet-stream",
            "url": f"{self.base}/repos/{self.state.repo}/releases/assets/{asset.id}",
            "browser_download_url": f"{self.base}/{self.state.repo}/releases/download/{release.tag_name}/{asset.name}",
        }
        if self.state.faults.report_digests:
            document["digest"] = f"sha256:{hashlib.sha256(asset.data).hexdigest()}"
        return document

    def _release_json(self, release: Release) -> dict[str, Any]:
        return {
            "id": release.id,
            "tag_name": release.tag_name,
            "target_commitish": release.target_commitish,
            "name": release.name,
            "body": release.body,
            "draft": release.draft,
            "upload_url": f"{self.base}/uploads/repos/{self.state.repo}/releases/{release.id}/assets{{?name,label}}",
            "assets": [self._asset_json(release, a) for a in release.assets.values()],
        }

    # ------------------------------------------------------------------------------------ routes

    def list_runs(self, workflow: str) -> None:
        sha = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("head_sha", [None])[0]
        runs = [r for r in self.state.runs if r.workflow == workflow and (sha is None or r.head_sha == sha)]
        items = [
            {
                "id": r.id,
                "path": f".github/workflows/{r.workflow}",
                "head_sha": r.head_sha,
                "status": r.status,
                "conclusion": r.conclusion,
                "created_at": r.created_at,
                "html_url": f"{self.base}/{self.state.repo}/actions/runs/{r.id}",
            }
            for r in runs
        ]
        self._page(items, "workflow_runs")

    def list_artifacts(self, run_id: str) -> None:
        runs = [r for r in self.state.runs if r.id == int(run_id)]
        if not runs:
            self._send(404, {"message": "Not Found"})
            return
        items = [
            {
                "id": a.id,
                "name": a.name,
                "size_in_bytes": len(a.data),
                "expired": a.expired,
                "digest": f"sha256:{hashlib.sha256(a.data).hexdigest()}",
                "archive_download_url": f"{self.base}/repos/{self.state.repo}/actions/artifacts/{a.id}/zip",
            }
            for a in runs[0].artifacts
        ]
        self._page(items, "artifacts")

    def artifact_zip(self, artifact_id: str) -> None:
        for run in self.state.runs:
            for artifact in run.artifacts:
                if artifact.id == int(artifact_id) and not artifact.expired:
                    location = f"{self.storage}/storage/artifact/{artifact.id}?sig={SIGNATURE}"
                    self._send(302, None, {"Location": location})
                    return
        self._send(404, {"message": "Not Found"})

    def list_releases(self) -> None:
        releases = sorted(self.state.releases.values(), key=lambda r: -r.id)
        self._page([self._release_json(r) for r in releases], None)

    def create_release(self) -> None:
        fields = json.loads(self._body())
        if any(r.tag_name == fields["tag_name"] and not r.draft for r in self.state.releases.values()):
            self._send(422, {"message": "Validation Failed", "errors": [{"code": "already_exists"}]})
            return
        release = Release(
            id=self.state.new_id(),
            tag_name=fields["tag_name"],
            target_commitish=fields.get("target_commitish", "main"),
            name=fields.get("name", ""),
            body=fields.get("body", ""),
            draft=bool(fields.get("draft", False)),
        )
        self.state.releases[release.id] = release
        self._send(201, self._release_json(release))

    def update_release(self, release_id: str) -> None:
        release = self.state.releases.get(int(release_id))
        fields = json.loads(self._body())
        if release is None:
            self._send(404, {"message": "Not Found"})
            return
        if "draft" in fields:
            release.draft = bool(fields["draft"])
        self._send(200, self._release_json(release))

    def list_assets(self, release_id: str) -> None:
        release = self.state.releases.get(int(release_id))
        if release is None:
            self._send(404, {"message": "Not Found"})
            return
        self._page([self._asset_json(release, a) for a in release.assets.values()], None)

    def _find_asset(self, asset_id: str) -> tuple[Release, Asset] | None:
        for release in self.state.releases.values():
            if int(asset_id) in release.assets:
                return release, release.assets[int(asset_id)]
        return None

    def get_asset(self, asset_id: str) -> None:
        found = self._find_asset(asset_id)
        if found is None:
            self._send(404, {"message": "Not Found"})
        elif self.headers.get("Accept") == "application/octet-stream":
            self._send(302, None, {"Location": f"{self.storage}/storage/asset/{asset_id}?sig={SIGNATURE}"})
        else:
            self._send(200, self._asset_json(*found))

    def delete_asset(self, asset_id: str) -> None:
        found = self._find_asset(asset_id)
        if found is None:
            self._send(404, {"message": "Not Found"})
            return
        del found[0].assets[found[1].id]
        self._send(204)

    def upload_asset(self, release_id: str) -> None:
        release = self.state.releases.get(int(release_id))
        name = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("name", [""])[0]
        data = self._body()
        if release is None or not name:
            self._send(404, {"message": "Not Found"})
            return
        if any(a.name == name for a in release.assets.values()):
            self._send(422, {"message": "Validation Failed", "errors": [{"code": "already_exists", "field": "name"}]})
            return
        failing = self.state.faults.fail_uploads.get(name, 0)
        if failing > 0:
            self.state.faults.fail_uploads[name] = failing - 1
            partial = Asset(id=self.state.new_id(), name=name, data=data[: len(data) // 2], state="starter")
            release.assets[partial.id] = partial
            self._send(502, {"message": "Server Error"})
            return
        asset = Asset(id=self.state.new_id(), name=name, data=data)
        release.assets[asset.id] = asset
        self._send(201, self._asset_json(release, asset))

    def _storage(self, path: str) -> None:
        if "Authorization" in self.headers:  # like cloud storage, which rejects a second credential
            self._send(400, b"Authorization header not allowed with a signed URL")
            return
        kind, _, ident = path.removeprefix("/storage/").partition("/")
        data = None
        if kind == "artifact":
            data = next((a.data for r in self.state.runs for a in r.artifacts if a.id == int(ident)), None)
        elif kind == "asset":
            found = self._find_asset(ident)
            data = found[1].data if found else None
            if found and found[1].name in self.state.faults.corrupt_downloads:
                data = found[1].data.replace(b"  ", b" *", 1)
        if data is None:
            self._send(404, b"no such blob")
        else:
            self._send(200, data, {"Content-Type": "application/octet-stream"})

    def _public_download(self, path: str) -> None:
        _, _, _, _, tag, name = path.strip("/").split("/")
        for release in self.state.releases.values():
            if release.tag_name == tag and not release.draft:
                for asset in release.assets.values():
                    if asset.name == name and asset.state == "uploaded":
                        self._send(200, asset.data, {"Content-Type": "application/octet-stream"})
                        return
        self._send(404, b"Not Found")


ROUTES = [
    ("GET", r"/repos/{repo}/actions/workflows/([^/]+)/runs", _Handler.list_runs),
    ("GET", r"/repos/{repo}/actions/runs/(\d+)/artifacts", _Handler.list_artifacts),
    ("GET", r"/repos/{repo}/actions/artifacts/(\d+)/zip", _Handler.artifact_zip),
    ("GET", r"/repos/{repo}/releases", _Handler.list_releases),
    ("POST", r"/repos/{repo}/releases", _Handler.create_release),
    ("PATCH", r"/repos/{repo}/releases/(\d+)", _Handler.update_release),
    ("GET", r"/repos/{repo}/releases/(\d+)/assets", _Handler.list_assets),
    ("GET", r"/repos/{repo}/releases/assets/(\d+)", _Handler.get_asset),
    ("DELETE", r"/repos/{repo}/releases/assets/(\d+)", _Handler.delete_asset),
    ("POST", r"/uploads/repos/{repo}/releases/(\d+)/assets", _Handler.upload_asset),
]


@dataclass
class FakeGitHub:
    """A running fake: `api_url` for the client, `state` for the test to arrange and inspect."""

    api_url: str
    state: State


@contextmanager
def serve(repo: str = "acme/fips-python") -> Iterator[FakeGitHub]:
    """Run a fake GitHub on 127.0.0.1 (storage redirects go to ``localhost``, another host name)."""
    state = State(repo=repo)
    handler: type[_Handler] = type("Handler", (_Handler,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    handler.base = f"http://127.0.0.1:{port}"
    handler.storage = f"http://localhost:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeGitHub(api_url=f"http://127.0.0.1:{port}", state=state)
    finally:
        server.shutdown()
        server.server_close()
