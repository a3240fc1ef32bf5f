"""Command line of the pydist package: ``python -m pydist validate ARCHIVE...``, ``audit DIR``, ``compare A B``,
``matrix``, ``release`` and ``uv-downloads``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _validate(args: argparse.Namespace) -> int:
    from pydist.validate import validate

    for path in args.archives:
        if path.is_dir():
            inside = sorted(p.name for p in path.iterdir() if p.name.endswith((".tar.zst", ".tar.gz")))
            what = (
                f"pass the archives in it: {' '.join(str(path / name) for name in inside)}"
                if inside
                else "it holds no .tar.zst or .tar.gz archive; pass the archive files themselves"
            )
            print(f"error: {path} is a directory, not an archive; {what}", file=sys.stderr)
            return 2
        if not path.is_file():
            print(f"error: {path}: no such file; pass the .tar.zst and/or .tar.gz archives", file=sys.stderr)
            return 2
    started = time.monotonic()
    try:
        report = validate(args.archives)
    except OSError as e:  # writing its work files (the archives' own problems are violations)
        print(
            f"error: the validator cannot write its work files ({e}); check the space and permissions of TMPDIR",
            file=sys.stderr,
        )
        return 2
    elapsed = time.monotonic() - started
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "violations": [v.__dict__ for v in sorted(report.violations)],
                    "summary": report.summary(),
                    "glibc_versions": report.glibc_versions,
                    "seconds": round(elapsed, 2),
                },
                indent=2,
            )
        )
    else:
        for violation in sorted(report.violations):
            print(violation)
        print(f"{'FAILED' if report.violations else 'OK'}: {report.summary()} in {elapsed:.1f}s")
    return 1 if report.violations else 0


def _audit(args: argparse.Namespace) -> int:
    from pydist.provenance import audit

    if not args.directory.is_dir():
        print(f"error: {args.directory}: not a directory; pass a dist/<build> directory", file=sys.stderr)
        return 2
    problems, summary = audit(args.directory)
    for problem in problems:
        print(problem)
    print(f"{'FAILED' if problems else 'OK'}: {summary}")
    return 1 if problems else 0


def _reported(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run `handler`; a HermeticError becomes one line on stderr and its exit code, with no traceback."""
    from hermetic.errors import HermeticError

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except HermeticError as e:
            print(f"error: {e.one_line()}", file=sys.stderr)
            return e.exit_code
        except KeyboardInterrupt:
            print("error: interrupted; run the same command again: it resumes where it stopped", file=sys.stderr)
            return 130

    return run


def _matrix(args: argparse.Namespace) -> int:
    from pydist.matrix import TARGETS, ci_builds, suite_jobs

    if args.target and args.target not in TARGETS:
        print(f"error: --target {args.target} is not a target; valid: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    builds = [
        b
        for b in ci_builds()
        if (not args.target or b.target == args.target) and (not args.runner or b.runner_os == args.runner)
    ]
    entries: list[dict[str, object]]
    if args.tests:
        # The native test jobs: the same entries, run on their test runner.
        entries = [{**b.as_json(), "runner": b.test_runner} for b in builds if b.test_runner]
    elif args.suite:
        entries = [dict(job) for job in suite_jobs(builds)]
    else:
        entries = [b.as_json() for b in builds]
    if args.json:
        print(json.dumps({"include": entries}, separators=(",", ":")))
    else:
        for e in entries:
            print(f"{e['target']:28} {e['python']:5} {e['options']:22} on {e['runner']}")
    return 0


def _refuse_credentials(option: str, url: str | None, where: str) -> None:
    """A URL option may not carry a user name or password: it would show in logs and published files."""
    import urllib.parse

    from hermetic.errors import ConfigError

    parts = urllib.parse.urlsplit(url or "")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{option} {url} holds credentials, which would show in logs", hint=where)


def _release(args: argparse.Namespace) -> int:
    from pydist.github import RetryPolicy
    from pydist.release import ReleaseOptions, run_release

    for option, url in (("--api-url", args.api_url), ("--download-url", args.download_url)):
        _refuse_credentials(option, url, "leave them out of the URL and give the token in $GITHUB_TOKEN")

    options = ReleaseOptions(
        repo=args.repo or os.environ.get("GITHUB_REPOSITORY", ""),
        sha=args.sha,
        tag=args.tag or None,
        work=args.work,
        token=os.environ.get("GITHUB_TOKEN"),
        api_url=args.api_url,
        download_url=args.download_url,
        dry_run=args.dry_run,
        policy=RetryPolicy(attempts=args.attempts, backoff_seconds=args.backoff),
    )
    run_release(options)
    return 0


def _uv_downloads(args: argparse.Namespace) -> int:
    from pydist import uv_downloads

    _refuse_credentials("--base-url", args.base_url, "uv's list is published: give the URL users download from")
    document = uv_downloads.downloads(uv_downloads.archives_in(args.paths), args.base_url)
    if args.output:
        uv_downloads.write_json(args.output, document)
        print(f"wrote {len(document)} entries to {args.output}")
    else:
        print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def _add_ci_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The CI and release subcommands: matrix, release, uv-downloads."""
    from pydist.github import DEFAULT_API_URL

    m = commands.add_parser("matrix", help="the CI build matrix (targets x Python x release options x hosts)")
    m.add_argument("--json", action="store_true", help='print GitHub Actions\' matrix object ({"include": [...]})')
    m.add_argument("--target", help="only this target triple")
    m.add_argument("--runner", choices=("linux", "macos"), help="only the jobs of this workflow")
    m.add_argument("--tests", action="store_true", help="the native test jobs instead of the builds")
    m.add_argument("--suite", action="store_true", help="the release gate's CPython test-suite jobs (Linux)")
    m.set_defaults(handler=_reported(_matrix))

    r = commands.add_parser("release", help="publish one commit's CI builds as a GitHub release")
    r.add_argument("--sha", required=True, help="the commit whose linux and macos runs all succeeded")
    r.add_argument("--tag", help="the release tag (default: the tag the builds carry, which it must equal)")
    r.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY); the token is $GITHUB_TOKEN")
    r.add_argument("--work", type=Path, default=Path("build/release"), help="downloads and staged assets")
    r.add_argument("--api-url", default=DEFAULT_API_URL, help=f"GitHub REST API base (default {DEFAULT_API_URL})")
    r.add_argument("--download-url", help="where the release's assets are served (for uv's list)")
    r.add_argument("--dry-run", action="store_true", help="check everything, write nothing to GitHub")
    r.add_argument("--attempts", type=int, default=5, help="tries of a request that fails transiently")
    r.add_argument("--backoff", type=float, default=2.0, help="first pause between tries, in seconds (doubles)")
    r.set_defaults(handler=_reported(_release))

    u = commands.add_parser("uv-downloads", help="write uv's Python downloads list for install_only archives")
    u.add_argument("paths", nargs="+", type=Path, help="archives, or directories holding them")
    u.add_argument("--base-url", required=True, help="the URL the archives are served under")
    u.add_argument("-o", "--output", type=Path, help="the JSON file to write (default: stdout)")
    u.set_defaults(handler=_reported(_uv_downloads))


# pydist.compare.DEFAULT_TIMEOUT, restated (a test keeps them equal): importing pydist.compare to build the
# parser would slow every command's start by that module's imports.
COMPARE_TIMEOUT_HELP = "600"


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare", help="compare two builds (dist directories or archives), per archive and per member"
    )
    compare.add_argument("a", type=Path, help="a dist/<build> directory or an archive (build A)")
    compare.add_argument("b", type=Path, help="the same from another build (build B)")
    compare.add_argument(
        "--report-dir", type=Path, help="where diffoscope's reports go (default: a new directory under /tmp)"
    )
    compare.add_argument("--no-diffoscope", action="store_true", help="only the per-archive and per-member report")
    compare.add_argument(
        "--timeout",
        type=float,
        help=f"seconds after which diffoscope reports what it has for a pair (default {COMPARE_TIMEOUT_HELP}; "
        "killed at twice that)",
    )


def _compare(args: argparse.Namespace) -> int:
    import tempfile

    from pydist.compare import DEFAULT_TIMEOUT, CompareError, compare, find_diffoscope, report_lines

    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    report_dir = None
    if not args.no_diffoscope:
        report_dir = args.report_dir or Path(tempfile.mkdtemp(prefix="pydist-compare-"))
    try:
        results = compare(args.a, args.b, report_dir=report_dir, timeout=timeout)
    except CompareError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return e.exit_code
    for line in report_lines(results):
        print(line)
    different = [r for r in results if not r.identical]
    if different and report_dir is not None and not any(r.reports for r in different):
        why = "diffoscope is not installed: ./scripts/bootstrap, or pip install '.[compare]'"
        print(f"no diffoscope report: {why if find_diffoscope() is None else 'it failed or timed out'}")
    if args.report_dir is None and report_dir is not None and not any(report_dir.iterdir()):
        report_dir.rmdir()  # the temporary directory made for reports that were not needed
    print(f"{'DIFFERENT' if different else 'IDENTICAL'}: {len(results) - len(different)} of {len(results)} identical")
    return 1 if different else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pydist`` and the ``pydist`` script."""
    parser = argparse.ArgumentParser(prog="pydist", description="Tools for the standalone FIPS-capable CPython builds")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check distribution archives and report every violation")
    validate.add_argument("archives", nargs="+", type=Path, help="full .tar.zst and/or install_only .tar.gz archives")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    audit = commands.add_parser("audit", help="check a build's provenance: pinned inputs, sandboxed actions, digests")
    audit.add_argument("directory", type=Path, help="a dist/<build> directory (archives, SHA256SUMS, provenance.json)")
    _add_ci_commands(commands)
    _add_compare(commands)
    args = parser.parse_args(argv)
    if args.command == "compare":
        return _compare(args)
    if args.command == "validate":
        return _reported(_validate)(args)
    if args.command == "audit":
        return _reported(_audit)(args)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
