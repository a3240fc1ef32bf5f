"""The release tool: publish one commit's CI builds as a GitHub release (``python -m pydist release``).

For a commit sha: the newest run of each build workflow (linux, macos) for that sha must have completed
successfully; their artifacts are downloaded (each a zip holding ``<build>/`` directories made by
``scons``); every build directory is checked with our own audit (provenance, digests, pinned inputs,
sandboxed actions) and the validator; the release assets are staged (the archives, each build's provenance
and SBOM renamed after its build, uv's downloads list, and one SHA256SUMS over all of them); a draft release
is created (or the draft of an earlier, interrupted run is reused); each asset is uploaded with retries (one
already there with the right bytes is kept, one with other bytes is replaced); SHA256SUMS is downloaded back
and compared; then the release is published. ``dry_run`` does all the reading and checking and prints what
it would write.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermetic import log
from hermetic.content_store import sha256_file
from hermetic.errors import ConfigError, HermeticError
from hermetic.lock import load_lock
from pydist import matrix, uv_downloads
from pydist.distribution import DistNames
from pydist.github import DEFAULT_API_URL, GitHub, GitHubError, RetryPolicy
from pydist.provenance import PROVENANCE_NAME, audit
from pydist.settings import REPO_ROOT

WORKFLOWS = ("linux.yml", "macos.yml")
SUMS_NAME = "SHA256SUMS"
SBOM_NAME = "sbom.cdx.json"
UV_DOWNLOADS_NAME = "python-downloads.json"
# The workflows upload a failed build's logs under this prefix; a re-run that succeeded may still list them.
LOGS_ARTIFACT_PREFIX = "logs-"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_BUILD_DIR = re.compile(
    r"^cpython-(?P<version>[0-9][0-9a-z.]*)-(?P<target>"
    + "|".join(re.escape(t) for t in matrix.TARGETS)
    + r")-(?P<options>"
    + "|".join(re.escape(o) for o in matrix.OPTIONS)
    + r")-(?P<tag>[A-Za-z0-9._]+)$"
)


class ReleaseError(HermeticError):
    """The commit cannot be released as it is (a failed run, a build that does not verify, a conflict)."""

    exit_code = 10


@dataclass(frozen=True, kw_only=True)
class ReleaseOptions:
    """What to release, and how.

    Attributes:
        repo: (str) ``owner/name``.
        sha: (str) the commit whose CI builds are released.
        tag: (str | None) the release tag; None takes the tag the builds carry.
        work: (Path) where artifacts are downloaded and the assets staged.
        token: (str | None) a GitHub token (contents and actions read, contents write).
        api_url: (str) the REST API's base URL.
        download_url: (str | None) where the release's assets will be served (uv's list points there);
            None derives it from `api_url`.
        dry_run: (bool) check everything, write nothing to GitHub.
        workflows: (tuple[str, ...]) the build workflows whose runs must all have succeeded.
        policy: (RetryPolicy) retries, backoff and rate-limit waits.
    """

    repo: str
    sha: str
    tag: str | None = None
    work: Path
    token: str | None
    api_url: str = DEFAULT_API_URL
    download_url: str | None = None
    dry_run: bool = False
    workflows: tuple[str, ...] = WORKFLOWS
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, kw_only=True)
class Build:
    """One verified build directory.

    Attributes:
        directory: (Path) the unpacked ``<build>/`` directory.
        names: (DistNames) its archive names.
        artifact: (str) the CI artifact it came from.
    """

    directory: Path
    names: DistNames
    artifact: str

    @property
    def archives(self) -> list[Path]:
        """Full, install_only and install_only_stripped archives."""
        n = self.names
        return [self.directory / name for name in (n.full, n.install_only, n.install_only_stripped)]


# ---------------------------------------------------------------------------------------------- CI runs


def successful_runs(github: GitHub, sha: str, workflows: tuple[str, ...]) -> list[dict[str, Any]]:
    """The newest run of each workflow for `sha`; refuse unless each one completed successfully."""
    chosen = []
    for workflow in workflows:
        runs = [
            r
            for r in github.pages(f"/actions/workflows/{workflow}/runs", "workflow_runs", head_sha=sha)
            if r.get("head_sha") == sha
        ]
        if not runs:
            raise ReleaseError(f"{workflow} has no run for {sha}", hint="push the commit and let CI build it first")
        newest = max(runs, key=lambda r: (r.get("created_at", ""), r["id"]))
        where = newest.get("html_url", f"run {newest['id']}")
        if newest.get("status") != "completed":
            raise ReleaseError(f"{workflow} run for {sha[:12]} is still {newest.get('status')} ({where})")
        if newest.get("conclusion") != "success":
            raise ReleaseError(
                f"{workflow} run for {sha[:12]} ended {newest.get('conclusion')} ({where})",
                hint="fix the build and release a commit whose linux and macos runs all succeeded",
            )
        log.say(f"{workflow}: run {newest['id']} succeeded")
        chosen.append(newest)
    return chosen


def _artifact_digest(artifact: dict[str, Any]) -> str | None:
    digest = artifact.get("digest") or ""
    return digest.removeprefix("sha256:") if digest.startswith("sha256:") else None


def fetch_artifacts(github: GitHub, runs: list[dict[str, Any]], into: Path) -> list[tuple[str, Path]]:
    """Download and unpack every artifact of `runs` into `into`; return (artifact name, unpacked dir)."""
    unpacked = []
    for run in runs:
        listed = github.pages(f"/actions/runs/{run['id']}/artifacts", "artifacts")
        artifacts = [a for a in listed if not a["name"].startswith(LOGS_ARTIFACT_PREFIX)]
        if not artifacts:
            raise ReleaseError(f"run {run['id']} has no artifacts", hint="its build jobs must upload dist/")
        for artifact in artifacts:
            name = artifact["name"]
            if artifact.get("expired"):
                raise ReleaseError(f"artifact {name} of run {run['id']} has expired", hint="re-run that workflow")
            archive = into / f"{name}.zip"
            expected = _artifact_digest(artifact)
            if archive.is_file() and expected and sha256_file(archive) == expected:
                log.say(f"artifact {name}: already downloaded")
            else:
                with log.step(f"download artifact {name} ({artifact.get('size_in_bytes', 0) >> 20} MiB)"):
                    github.download(f"/actions/artifacts/{artifact['id']}/zip", archive)
                if expected and sha256_file(archive) != expected:
                    archive.unlink()
                    raise ReleaseError(f"artifact {name}: its sha256 differs from the digest GitHub reported")
            unpacked.append((name, unzip_safely(archive, into / name)))
    return unpacked


def unzip_safely(archive: Path, dest: Path) -> Path:
    """Unpack a zip into `dest` (replaced as a whole); refuse members that are links or leave `dest`."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            parts = Path(info.filename).parts
            unix_mode = info.external_attr >> 16
            if info.filename.startswith("/") or ".." in parts or "\\" in info.filename:
                raise ReleaseError(f"{archive.name}: member {info.filename!r} would leave its directory")
            if stat.S_ISLNK(unix_mode):
                raise ReleaseError(f"{archive.name}: member {info.filename!r} is a symbolic link")
        with _fresh_directory(dest) as temp:
            zf.extractall(temp)
    return dest


@contextmanager
def _fresh_directory(dest: Path) -> Iterator[Path]:
    """A temporary directory beside `dest` that replaces `dest` when the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield temp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(temp, dest)
    finally:
        if temp.exists():
            shutil.rmtree(temp)


# --------------------------------------------------------------------------------------------- verifying


def build_directories(unpacked: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Every build directory (one holding SHA256SUMS) inside the unpacked artifacts."""
    found = []
    for artifact, root in unpacked:
        directories = sorted(p.parent for p in root.rglob(SUMS_NAME))
        if not directories:
            raise ReleaseError(f"artifact {artifact} holds no build directory (no {SUMS_NAME} inside)")
        found += [(artifact, d) for d in directories]
    return found


def identify(directory: Path, artifact: str) -> Build:
    """What a build directory is, from its name and the sources lock; refuse unknown or stray files."""
    parsed = _BUILD_DIR.match(directory.name)
    if not parsed:
        raise ReleaseError(f"artifact {artifact}: {directory.name} is not a build directory name")
    lock = load_lock(REPO_ROOT / "sources.lock.toml", REPO_ROOT / "schema" / "pins.schema.json")
    try:
        request = matrix.validate_request(
            lock, target=parsed["target"], py=parsed["version"], options=parsed["options"]
        )
    except ConfigError as e:
        raise ReleaseError(f"artifact {artifact}: {directory.name}: {e.message}") from None
    build = Build(directory=directory, names=DistNames(request=request, tag=parsed["tag"]), artifact=artifact)
    expected = {p.name for p in build.archives} | {SUMS_NAME, PROVENANCE_NAME}
    present = {p.name for p in directory.iterdir()}
    missing, stray = expected - present, present - expected - {SBOM_NAME}
    if missing or stray:
        what = f"missing {sorted(missing)}" if missing else f"unexpected {sorted(stray)}"
        raise ReleaseError(f"artifact {artifact}: {directory.name}: {what}")
    return build


def verify(build: Build) -> None:
    """Our own audit of the build's provenance, then the validator on its archives; refuse on any finding."""
    from pydist.validate import validate  # loads pyelftools and macholib

    label = build.directory.name
    with log.step(f"audit {label}"):
        problems, summary = audit(build.directory)
    if problems:
        raise ReleaseError(f"{label}: the audit found {len(problems)} problem(s), first: {problems[0]}")
    log.say(f"  {summary}")
    with log.step(f"validate {label}"):
        report = validate(build.archives)
    if not report.ok:
        first = sorted(report.violations)[0]
        raise ReleaseError(f"{label}: {len(report.violations)} validation violation(s), first: {first}")
    log.say(f"  {report.summary()}")


def verified_builds(found: list[tuple[str, Path]]) -> list[Build]:
    """Identify and verify every build; the same build from two hosts must be byte-identical."""
    builds: dict[str, Build] = {}
    for artifact, directory in found:
        build = identify(directory, artifact)
        held = builds.get(directory.name)
        if held is not None:
            if (held.directory / SUMS_NAME).read_bytes() != (directory / SUMS_NAME).read_bytes():
                raise ReleaseError(
                    f"{directory.name} differs between artifacts {held.artifact} and {artifact}",
                    hint="the build is not reproducible across those hosts; compare their provenance",
                )
            log.say(f"{directory.name}: {artifact} is byte-identical to {held.artifact}")
            continue
        verify(build)
        builds[directory.name] = build
    return [builds[name] for name in sorted(builds)]


def release_tag(builds: list[Build], requested: str | None) -> str:
    """The tag every build carries in its names; `requested` must be it."""
    tags = sorted({b.names.tag for b in builds})
    if len(tags) != 1:
        raise ReleaseError(f"the builds carry different tags: {', '.join(tags)}", hint="build one commit only")
    if requested and requested != tags[0]:
        raise ReleaseError(
            f"the builds are tagged {tags[0]}, not {requested}",
            hint=f"release them as --tag {tags[0]} (their names, SHA256SUMS and provenance carry it)",
        )
    return tags[0]


# ----------------------------------------------------------------------------------------------- staging


def stage(builds: list[Build], dest: Path, *, download_url: str) -> list[Path]:
    """Lay out the release assets in `dest` (replaced as a whole); return them, SHA256SUMS last."""
    with _fresh_directory(dest) as temp:
        for build in builds:
            for archive in build.archives:
                shutil.copyfile(archive, temp / archive.name)
            shutil.copyfile(build.directory / PROVENANCE_NAME, temp / f"{build.directory.name}.{PROVENANCE_NAME}")
            if (build.directory / SBOM_NAME).is_file():
                shutil.copyfile(build.directory / SBOM_NAME, temp / f"{build.directory.name}.{SBOM_NAME}")
        digests = {p.name: sha256_file(p) for p in sorted(temp.iterdir())}
        uv_downloads.write_json(temp / UV_DOWNLOADS_NAME, uv_downloads.downloads(digests, download_url))
        digests[UV_DOWNLOADS_NAME] = sha256_file(temp / UV_DOWNLOADS_NAME)
        (temp / SUMS_NAME).write_text("".join(f"{digests[name]}  {name}\n" for name in sorted(digests)))
    names = sorted(p.name for p in dest.iterdir() if p.name != SUMS_NAME)
    return [dest / name for name in names] + [dest / SUMS_NAME]


# -------------------------------------------------------------------------------------------- publishing


def find_release(github: GitHub, tag: str) -> dict[str, Any] | None:
    """The release (draft or not) with `tag`; drafts are found only by listing, not by tag."""
    matches = [r for r in github.pages("/releases") if r.get("tag_name") == tag]
    if len(matches) > 1:
        raise ReleaseError(f"{len(matches)} releases carry the tag {tag}", hint="delete the extra drafts")
    return matches[0] if matches else None


def asset_matches(github: GitHub, asset: dict[str, Any], path: Path, digest: str) -> bool:
    """Whether an uploaded asset holds exactly the bytes of `path` (by GitHub's digest, else by downloading)."""
    if asset.get("state") != "uploaded" or asset.get("size") != path.stat().st_size:
        return False
    if asset.get("digest"):
        return bool(asset["digest"] == f"sha256:{digest}")
    with tempfile.TemporaryDirectory() as temp:
        copy = github.download(
            f"/releases/assets/{asset['id']}", Path(temp) / path.name, accept="application/octet-stream"
        )
        return sha256_file(copy) == digest


def upload(github: GitHub, release: dict[str, Any], path: Path, digest: str) -> dict[str, Any]:
    """Upload one asset; after a failed try, keep what arrived if it is right, else delete it and try again."""
    url = release["upload_url"].split("{", 1)[0]
    headers = {"Content-Type": "application/octet-stream"}
    for attempt in range(1, github.policy.attempts + 1):
        if attempt > 1:
            time.sleep(github.policy.backoff_seconds * 2 ** (attempt - 2))
            left = {a["name"]: a for a in github.pages(f"/releases/{release['id']}/assets")}.get(path.name)
            if left is not None:
                if asset_matches(github, left, path, digest):
                    return left
                github.call("DELETE", f"/releases/assets/{left['id']}", ok=(204,))
        try:
            response = github.call(
                "POST", url, ok=(201,), retry=False, body=path, params={"name": path.name}, headers=headers
            )
            return dict(response.json())
        except GitHubError as e:
            if not e.transient and "HTTP 422" not in e.message:
                raise
            log.warn(f"upload {path.name}: {e.message}")
    raise GitHubError(
        f"upload {path.name}: failed {github.policy.attempts} times",
        hint="run the same command again: assets already uploaded are kept",
        transient=True,
    )


def publish(github: GitHub, options: ReleaseOptions, tag: str, assets: list[Path]) -> None:
    """Create or reuse the draft, bring its assets to exactly `assets`, check SHA256SUMS, then publish."""
    digests = {p.name: sha256_file(p) for p in assets}
    release = find_release(github, tag)
    if release is not None and not release.get("draft"):
        raise ReleaseError(f"release {tag} is already published", hint="releases are immutable; use a new commit")
    if release is not None and release.get("target_commitish") != options.sha:
        raise ReleaseError(
            f"the draft release {tag} targets {release.get('target_commitish')}, not {options.sha}",
            hint="delete that draft, or release its commit",
        )
    if release is None:
        if options.dry_run:
            log.say(f"dry run: would create the draft release {tag} at {options.sha}")
            for path in assets:
                log.say(f"dry run: would upload {path.name} ({path.stat().st_size} bytes)")
            log.say(f"dry run: would check {SUMS_NAME} and publish {tag}")
            return
        release = github.call("POST", "/releases", ok=(201,), json=_release_fields(options, tag)).json()
        log.say(f"created the draft release {tag} (id {release['id']})")
    else:
        log.say(f"resuming the draft release {tag} (id {release['id']})")
    _sync_assets(github, release, assets, digests, dry_run=options.dry_run)
    if options.dry_run:
        log.say(f"dry run: would check {SUMS_NAME} and publish {tag}")
        return
    _check_uploaded(github, release, assets, digests)
    github.call("PATCH", f"/releases/{release['id']}", json={"draft": False})
    log.say(f"published {tag}: {len(assets)} assets")


def _release_fields(options: ReleaseOptions, tag: str) -> dict[str, Any]:
    return {
        "tag_name": tag,
        "target_commitish": options.sha,
        "name": tag,
        "draft": True,
        "body": (
            f"Standalone FIPS-capable CPython builds of {options.sha}.\n\n"
            f"Checksums: `{SUMS_NAME}`. Provenance of each build: `*.{PROVENANCE_NAME}` (in-toto, SLSA v1). "
            f"uv: `--python-downloads-json-url` pointing at `{UV_DOWNLOADS_NAME}`."
        ),
    }


def _sync_assets(
    github: GitHub, release: dict[str, Any], assets: list[Path], digests: dict[str, str], *, dry_run: bool
) -> None:
    existing = {a["name"]: a for a in github.pages(f"/releases/{release['id']}/assets")}
    verb = "dry run: would " if dry_run else ""
    for name in sorted(set(existing) - set(digests)):
        log.say(f"{verb}delete {name}: not part of this release")
        if not dry_run:
            github.call("DELETE", f"/releases/assets/{existing[name]['id']}", ok=(204,))
    for path in assets:
        held = existing.get(path.name)
        if held is not None and asset_matches(github, held, path, digests[path.name]):
            log.say(f"keep {path.name}: already uploaded")
            continue
        if held is not None:
            log.say(f"{verb}replace {path.name}: the uploaded one differs")
            if not dry_run:
                github.call("DELETE", f"/releases/assets/{held['id']}", ok=(204,))
        if dry_run:
            log.say(f"dry run: would upload {path.name} ({path.stat().st_size} bytes)")
            continue
        with log.step(f"upload {path.name}"):
            upload(github, release, path, digests[path.name])


def _check_uploaded(github: GitHub, release: dict[str, Any], assets: list[Path], digests: dict[str, str]) -> None:
    uploaded = {a["name"]: a for a in github.pages(f"/releases/{release['id']}/assets")}
    if sorted(uploaded) != sorted(digests):
        raise ReleaseError(f"the draft {release['tag_name']} holds {sorted(uploaded)}, expected {sorted(digests)}")
    sums = uploaded[SUMS_NAME]
    with tempfile.TemporaryDirectory() as temp:
        copy = github.download(
            f"/releases/assets/{sums['id']}", Path(temp) / SUMS_NAME, accept="application/octet-stream"
        )
        if copy.read_bytes() != assets[-1].read_bytes():
            raise ReleaseError(
                f"{SUMS_NAME} downloaded back from the draft differs from the one uploaded",
                hint="run the same command again: it replaces assets whose bytes differ",
            )
    log.say(f"{SUMS_NAME} downloaded back from the draft: identical")


# ------------------------------------------------------------------------------------------------- entry


def default_download_url(api_url: str, repo: str, tag: str) -> str:
    """Where a published release's assets are served: github.com, a GitHub Enterprise host, or the API host."""
    if api_url.rstrip("/") == DEFAULT_API_URL:
        web = "https://github.com"
    else:
        web = api_url.rstrip("/").removesuffix("/api/v3")
    return f"{web}/{repo}/releases/download/{tag}"


def run_release(options: ReleaseOptions) -> list[Path]:
    """Release `options.sha` (see the module docstring); return the staged assets."""
    if not _SHA.match(options.sha):
        raise ConfigError(f"--sha {options.sha!r} is not a full commit sha", hint="pass the 40 hex digits")
    if not re.match(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", options.repo):
        raise ConfigError(f"--repo {options.repo!r} is not owner/name", hint="e.g. --repo acme/fips-python")
    if not options.token:
        raise ConfigError("no GitHub token", hint="set GITHUB_TOKEN (contents: write, actions: read)")
    github = GitHub(options.api_url, options.repo, options.token, options.policy)
    runs = successful_runs(github, options.sha, options.workflows)
    unpacked = fetch_artifacts(github, runs, options.work / "artifacts")
    builds = verified_builds(build_directories(unpacked))
    tag = release_tag(builds, options.tag)
    download_url = options.download_url or default_download_url(options.api_url, options.repo, tag)
    assets = stage(builds, options.work / "release", download_url=download_url)
    log.say(f"staged {len(assets)} assets of {len(builds)} builds in {options.work / 'release'}")
    publish(github, options, tag, assets)
    return assets
