"""Command line of the pydist package: ``python -m pydist validate ARCHIVE...``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pydist`` and the ``pydist`` script."""
    parser = argparse.ArgumentParser(prog="pydist", description="Tools for the standalone FIPS-capable CPython builds")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check distribution archives and report every violation")
    validate.add_argument("archives", nargs="+", type=Path, help="full .tar.zst and/or install_only .tar.gz archives")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    audit = commands.add_parser("audit", help="check a build's provenance: pinned inputs, sandboxed actions, digests")
    audit.add_argument("directory", type=Path, help="a dist/<build> directory (archives, SHA256SUMS, provenance.json)")
    args = parser.parse_args(argv)
    if args.command == "validate":
        return _validate(args)
    return _audit(args)


if __name__ == "__main__":
    sys.exit(main())
