"""Command line of the pydist package: ``python -m pydist validate ARCHIVE...``, ``audit DIR``, ``compare A B``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def _validate(args: argparse.Namespace) -> int:
    from pydist.validate import validate

    missing = [p for p in args.archives if not p.is_file()]
    if missing:
        print(f"error: {missing[0]}: no such file; pass the .tar.zst and/or .tar.gz archives", file=sys.stderr)
        return 2
    started = time.monotonic()
    report = validate(args.archives)
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
    compare.add_argument("--timeout", type=float, default=1800, help="seconds diffoscope may take per pair")


def _compare(args: argparse.Namespace) -> int:
    import tempfile

    from pydist.compare import CompareError, compare, find_diffoscope, report_lines

    report_dir = None
    if not args.no_diffoscope:
        report_dir = args.report_dir or Path(tempfile.mkdtemp(prefix="pydist-compare-"))
    try:
        results = compare(args.a, args.b, report_dir=report_dir, timeout=args.timeout)
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
    _add_compare(commands)
    args = parser.parse_args(argv)
    if args.command == "compare":
        return _compare(args)
    if args.command == "validate":
        return _validate(args)
    return _audit(args)


if __name__ == "__main__":
    sys.exit(main())
