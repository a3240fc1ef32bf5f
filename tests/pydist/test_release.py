"""The release tool against a fake GitHub on loopback (tests/fake_github.py), with real artifacts: the noopt
distribution built by the session (its archives, SHA256SUMS and provenance.json), zipped as CI uploads it."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import fake_github
from conftest import archive
from fake_github import Artifact, FakeGitHub, Release, Run
from pydist.__main__ import main

SHA = "3f1c9e5a7b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e"
TAG = "test"  # the noopt build's tag (tag=test)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with fake_github.serve() as fake:
        yield fake


def release_args(fake: FakeGitHub, work: Path, *extra: str) -> list[str]:
    return [
        "release",
        "--repo",
        fake.state.repo,
        "--sha",
        SHA,
        "--api-url",
        fake.api_url,
        "--work",
        str(work),
        "--backoff",
        "0.05",
        *extra,
    ]


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", fake_github.TOKEN)


def add_runs(fake: FakeGitHub, *, linux: tuple[str, str | None], macos: tuple[str, str | None] | None) -> Run:
    """A linux run and (unless None) a macos run for SHA, each as (status, conclusion)."""
    runs = fake.state.runs
    linux_run = Run(id=fake.state.new_id(), workflow="linux.yml", head_sha=SHA, status=linux[0], conclusion=linux[1])
    runs.append(linux_run)
    runs.append(Run(id=fake.state.new_id(), workflow="linux.yml", head_sha="0" * 40))  # another commit's run
    if macos is not None:
        runs.append(
            Run(id=fake.state.new_id(), workflow="macos.yml", head_sha=SHA, status=macos[0], conclusion=macos[1])
        )
    return linux_run


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning: ")]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# ---------------------------------------------------------------------------------- refusals (no artifacts)


@pytest.mark.parametrize(
    ("macos", "expected"),
    [
        (("completed", "failure"), "macos.yml run for 3f1c9e5a7b2d ended failure"),
        (("in_progress", None), "macos.yml run for 3f1c9e5a7b2d is still in_progress"),
        (None, "macos.yml has no run for 3f1c9e5a7b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e"),
    ],
)
def test_a_commit_whose_runs_did_not_all_succeed_is_refused_before_anything_is_written(
    github: FakeGitHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    macos: tuple[str, str | None] | None,
    expected: str,
) -> None:
    linux = add_runs(github, linux=("completed", "success"), macos=macos)
    linux.artifacts.append(Artifact(id=github.state.new_id(), name="never-downloaded", data=b"PK"))
    assert main(release_args(github, tmp_path / "work")) == 10
    assert expected in one_line_error(capsys)
    assert github.state.writes() == []
    assert not any("/artifacts" in path for _, path, _ in github.state.log)


def test_a_rate_limit_is_waited_out_and_an_older_failed_run_is_superseded(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three runs of linux.yml for SHA on pages of two: the newest succeeded, an older one failed.
    for created, conclusion in [("2026-11-01T00:00:00Z", "failure"), ("2026-11-02T00:00:00Z", "success")]:
        github.state.runs.append(
            Run(id=github.state.new_id(), workflow="linux.yml", head_sha=SHA, conclusion=conclusion, created_at=created)
        )
    add_runs(github, linux=("completed", "cancelled"), macos=("completed", "failure"))
    github.state.runs[-3].created_at = "2026-10-01T00:00:00Z"  # the cancelled linux run is the oldest
    github.state.faults.rate_limit = {r"GET /repos/.*/actions/workflows/linux\.yml/runs": 1}
    assert main(release_args(github, tmp_path / "work")) == 10
    assert "macos.yml run for 3f1c9e5a7b2d ended failure" in one_line_error(capsys)  # linux.yml passed
    statuses = [status for method, path, status in github.state.log if path.endswith("linux.yml/runs")]
    assert statuses[:2] == [403, 200] and len(statuses) == 3  # waited for the reset, then followed page 2


def test_a_missing_token_or_a_short_sha_is_one_line(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = release_args(github, tmp_path / "work")
    args[args.index(SHA)] = SHA[:12]
    assert main(args) == 2
    assert "is not a full commit sha" in one_line_error(capsys)
    monkeypatch.delenv("GITHUB_TOKEN")
    assert main(release_args(github, tmp_path / "work")) == 2
    assert "set GITHUB_TOKEN" in one_line_error(capsys)
    assert github.state.log == []


# ------------------------------------------------------------------------------- with the real noopt build


def zipped(directory: Path, prefix: str) -> bytes:
    """A CI artifact: `directory` under `prefix` in a zip (stored: the archives are compressed already)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(directory.iterdir()):
            zf.write(file, f"{prefix}{directory.name}/{file.name}")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def artifact_zips(noopt_dist: Path) -> dict[str, bytes]:
    """The noopt build as two CI artifacts: ``<build>/`` (as linux.yml uploads dist/) and ``dist/<build>/``."""
    return {
        "cpython-3.13-x86_64-unknown-linux-gnu-noopt-on-x86_64-linux": zipped(noopt_dist, ""),
        "cpython-3.13-x86_64-unknown-linux-gnu-noopt-on-other-host": zipped(noopt_dist, "dist/"),
    }


def arrange_success(fake: FakeGitHub, zips: dict[str, bytes]) -> None:
    """Both runs succeeded, each with one of the artifacts (the tool checks builds, not which run made them)."""
    add_runs(fake, linux=("completed", "success"), macos=("completed", "success"))
    runs = [r for r in fake.state.runs if r.head_sha == SHA]
    for run, (name, data) in zip(runs, zips.items(), strict=True):
        run.artifacts.append(Artifact(id=fake.state.new_id(), name=name, data=data))


def draft_assets(fake: FakeGitHub) -> dict[str, bytes]:
    [release] = fake.state.releases.values()
    return {a.name: a.data for a in release.assets.values()}


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


@pytest.mark.integration
def test_a_release_end_to_end_resuming_a_draft_through_faults(
    github: FakeGitHub, tmp_path: Path, noopt_dist: Path, artifact_zips: dict[str, bytes]
) -> None:
    arrange_success(github, artifact_zips)
    provenance_name = f"{noopt_dist.name}.provenance.json"
    install_only = archive(noopt_dist, "install_only").name
    stripped = archive(noopt_dist, "stripped").name
    # A draft left by an interrupted run: one asset right, one with other bytes, one that no longer belongs.
    draft = Release(id=github.state.new_id(), tag_name=TAG, target_commitish=SHA, name=TAG, body="")
    for name, data in [
        (provenance_name, (noopt_dist / "provenance.json").read_bytes()),
        (install_only, b"not the archive"),
        ("stale.txt", b"from an older attempt"),
    ]:
        asset = fake_github.Asset(id=github.state.new_id(), name=name, data=data)
        draft.assets[asset.id] = asset
    github.state.releases[draft.id] = draft
    github.state.faults.fail_uploads = {stripped: 1}
    github.state.faults.rate_limit = {r"GET /repos/.*/releases/\d+/assets": 1}
    github.state.faults.rate_limit_style = "retry-after"
    work = tmp_path / "work"

    assert (
        main(
            release_args(
                github, work, "--download-url", f"{github.api_url}/{github.state.repo}/releases/download/{TAG}"
            )
        )
        == 0
    )

    assert not draft.draft  # published
    staged = {p.name: p.read_bytes() for p in (work / "release").iterdir()}
    assert draft_assets(github) == staged
    assert set(staged) == {
        archive(noopt_dist, "full").name,
        install_only,
        stripped,
        provenance_name,
        f"{noopt_dist.name}.sbom.cdx.json",
        "python-downloads.json",
        "SHA256SUMS",
    }
    # Kept, replaced, retried after the 502 (which left a partial asset behind), deleted.
    assert github.state.uploads_of(provenance_name) == 0
    assert github.state.uploads_of(install_only) == 1
    assert github.state.uploads_of(stripped) == 2
    assert next(s for m, p, s in github.state.log if m == "GET" and p.endswith("/assets")) == 429
    # SHA256SUMS covers every other asset, and agrees with the build's own.
    sums = dict(reversed(line.split("  ")) for line in staged["SHA256SUMS"].decode().splitlines())
    assert set(sums) == set(staged) - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256(staged[name]).hexdigest() == digest
    for line in (noopt_dist / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert sums[name] == digest
    # uv's list points at the published stripped archive, and the bytes served there have its sha256.
    [entry] = json.loads(staged["python-downloads.json"]).values()
    assert entry["url"].endswith(stripped.replace("+", "%2B"))
    assert hashlib.sha256(fetch(entry["url"])).hexdigest() == entry["sha256"] == sums[stripped]
    # Artifacts came from "storage" without the API token (the client dropped it on the redirect).
    assert [s for m, p, s in github.state.log if p.startswith("/storage/artifact/")] == [200, 200]


@pytest.mark.integration
def test_a_dry_run_reads_and_verifies_but_writes_nothing(
    github: FakeGitHub, tmp_path: Path, noopt_dist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The build's SBOM travels with the release, renamed after its build.
    with_sbom = noopt_dist
    arrange_success(github, {"linux-artifact": zipped(with_sbom, ""), "macos-artifact": zipped(with_sbom, "dist/")})
    # The logs a failed first attempt left in the run are not a build.
    logs = Artifact(id=github.state.new_id(), name="logs-cpython-3.13-x86_64-unknown-linux-gnu-noopt", data=b"PK")
    github.state.runs[0].artifacts.append(logs)
    assert main(release_args(github, tmp_path / "work", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert github.state.writes() == []
    assert f"dry run: would create the draft release {TAG} at {SHA}" in out
    assert out.count("dry run: would upload ") == 7
    assert "byte-identical to linux-artifact" in out
    assert "0 problem(s)" in out  # the audit ran
    sums = (tmp_path / "work" / "release" / "SHA256SUMS").read_text()
    sbom = f"{noopt_dist.name}.sbom.cdx.json"
    expected = hashlib.sha256((with_sbom / "sbom.cdx.json").read_bytes()).hexdigest()
    assert f"{expected}  {sbom}\n" in sums


@pytest.mark.integration
def test_no_token_or_signature_is_shown_or_written_by_a_dry_run(
    github: FakeGitHub, tmp_path: Path, noopt_dist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arrange_success(github, {"linux-artifact": zipped(noopt_dist, ""), "macos-artifact": zipped(noopt_dist, "dist/")})
    github.state.faults.rate_limit = {r"GET /repos/.*/actions/artifacts/\d+/zip": 1, r"GET /repos/.*/runs": 1}
    github.state.faults.rate_limit_style = "retry-after"
    work = tmp_path / "work"
    assert main(release_args(github, work, "--dry-run")) == 0
    out, err = capsys.readouterr()
    assert "rate limited" in err  # a message naming a request was printed
    written = b"".join(p.read_bytes() for p in work.rglob("*") if p.is_file())
    for secret in (fake_github.TOKEN, fake_github.SIGNATURE):
        assert secret not in out + err and secret.encode() not in written


def test_a_url_option_with_credentials_is_refused_without_showing_them(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_url = github.api_url.replace("http://", f"http://ci:{fake_github.TOKEN}@")
    assert main(release_args(github, tmp_path / "work", "--download-url", secret_url)) == 2
    line = one_line_error(capsys)
    assert "--download-url http://***@127.0.0.1" in line and "$GITHUB_TOKEN" in line
    args = release_args(github, tmp_path / "work")
    args[args.index(github.api_url)] = secret_url
    assert main(args) == 2
    assert "--api-url http://***@" in one_line_error(capsys)
    assert main(["uv-downloads", str(tmp_path), "--base-url", secret_url]) == 2
    assert "--base-url http://***@" in one_line_error(capsys)
    assert github.state.log == []


@pytest.mark.integration
def test_an_interrupted_upload_is_resumed_by_running_again(
    github: FakeGitHub,
    tmp_path: Path,
    noopt_dist: Path,
    artifact_zips: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    arrange_success(github, artifact_zips)
    install_only = archive(noopt_dist, "install_only").name
    provenance_name = f"{noopt_dist.name}.provenance.json"
    github.state.faults.fail_uploads = {provenance_name: 2}
    work = tmp_path / "work"

    assert main([*release_args(github, work), "--attempts", "2"]) == 11
    assert f"upload {provenance_name}: failed 2 times" in one_line_error(capsys)
    [release] = github.state.releases.values()
    assert release.draft  # nothing published
    uploaded_first = set(draft_assets(github))
    assert install_only in uploaded_first  # sorted before the provenance: uploaded before the failure

    # Without GitHub's digest field, the kept assets are checked by downloading them.
    github.state.faults.report_digests = False
    assert main(release_args(github, work)) == 0
    assert not release.draft
    assert github.state.uploads_of(install_only) == 1  # kept from the first run
    assert len([p for _, p, _ in github.state.log if p.startswith("/storage/asset/")]) >= 3
    assert github.state.uploads_of(provenance_name) == 3
    assert draft_assets(github) == {p.name: p.read_bytes() for p in (work / "release").iterdir()}
    # The second run reused the downloaded artifacts (their digests matched what GitHub reported).
    assert len([p for _, p, _ in github.state.log if p.startswith("/storage/artifact/")]) == 2


@pytest.mark.integration
def test_a_sha256sums_that_comes_back_different_stops_the_release_before_publishing(
    github: FakeGitHub, tmp_path: Path, artifact_zips: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    arrange_success(github, artifact_zips)
    github.state.faults.corrupt_downloads = {"SHA256SUMS"}
    assert main(release_args(github, tmp_path / "work")) == 10
    assert "SHA256SUMS downloaded back from the draft differs from the one uploaded" in one_line_error(capsys)
    [release] = github.state.releases.values()
    assert release.draft
    assert not any(method == "PATCH" for method, _, _ in github.state.log)


@pytest.mark.integration
def test_builds_that_do_not_verify_are_refused(
    github: FakeGitHub,
    tmp_path: Path,
    noopt_dist: Path,
    artifact_zips: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # One byte of the install_only archive changed after the build: the audit sees it against provenance.json.
    tampered = tmp_path / noopt_dist.name
    shutil.copytree(noopt_dist, tampered)
    target = archive(tampered, "install_only")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    good = next(iter(artifact_zips.values()))
    add_runs(github, linux=("completed", "success"), macos=("completed", "success"))
    linux, macos = [r for r in github.state.runs if r.head_sha == SHA]

    def artifacts(first: tuple[str, bytes], second: tuple[str, bytes]) -> None:
        linux.artifacts[:] = [Artifact(id=github.state.new_id(), name=first[0], data=first[1])]
        macos.artifacts[:] = [Artifact(id=github.state.new_id(), name=second[0], data=second[1])]

    artifacts(("tampered", zipped(tampered, "")), ("good", good))
    assert main(release_args(github, tmp_path / "work")) == 10
    assert f"{target.name}: sha256 differs from the provenance" in one_line_error(capsys)
    assert github.state.writes() == []

    # The same build from two hosts with different bytes is not released either.
    (tampered / "SHA256SUMS").write_text((noopt_dist / "SHA256SUMS").read_text().replace("  ", "  ./", 1))
    artifacts(("a-first", good), ("b-second", zipped(tampered, "")))
    assert main(release_args(github, tmp_path / "work2", "--tag", TAG)) == 10
    assert f"{noopt_dist.name} differs between artifacts a-first and b-second" in one_line_error(capsys)

    # A tag other than the one the builds carry would break their names and provenance.
    artifacts(("a-first", good), ("b-same", good))
    assert main(release_args(github, tmp_path / "work3", "--tag", "v1.0")) == 10
    assert "the builds are tagged test, not v1.0" in one_line_error(capsys)
    assert github.state.writes() == []
