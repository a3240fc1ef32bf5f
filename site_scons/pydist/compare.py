"""Compare two builds: ``python -m pydist compare A B`` (two dist directories, or two archives).

Says, per file, whether both builds gave the same bytes; for archives that differ, which members differ and
how (content digest, mode, size, mtime, owner, link target, type, order), or that every member is the same and
only the encoding differs (headers, compression). For each pair that differs it runs diffoscope, which
unpacks archives recursively and explains binary differences, and saves its HTML and text reports.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hermetic.archive_read import open_tar
from hermetic.content_store import sha256_file
from hermetic.errors import HermeticError

ARCHIVE_SUFFIXES = (".tar.zst", ".tar.gz", ".tgz", ".tar")
# Report at most this many differing members per archive (the count is always given).
MAX_MEMBER_LINES = 50


class CompareError(HermeticError):
    """The two paths cannot be compared (missing, or a directory against a file)."""

    exit_code = 2


@dataclass(frozen=True)
class Member:
    """What an archive member is, beyond its name."""

    kind: str
    mode: int
    size: int
    mtime: int
    owner: str
    link: str
    sha256: str


@dataclass
class FileResult:
    """The outcome for one file name present in either build."""

    name: str
    identical: bool
    missing_in: str | None = None
    details: list[str] = field(default_factory=list)
    reports: tuple[Path, ...] = ()


def is_archive(path: Path) -> bool:
    """Whether `path` is a tarball this tool looks inside."""
    return path.name.endswith(ARCHIVE_SUFFIXES)


_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "directory",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
}


def archive_members(path: Path) -> Iterator[tuple[str, Member]]:
    """(name, Member) of every member of the tarball `path`, in archive order."""
    with open_tar(path) as tar:
        for info in tar:
            digest = ""
            if info.isfile():
                source = tar.extractfile(info)
                assert source is not None
                hasher = hashlib.sha256()
                while chunk := source.read(1 << 20):
                    hasher.update(chunk)
                digest = hasher.hexdigest()
            yield (
                info.name,
                Member(
                    kind=_KINDS.get(info.type, f"type {info.type!r}"),
                    mode=info.mode,
                    size=info.size,
                    mtime=int(info.mtime),
                    owner=f"{info.uid}:{info.gid} ({info.uname or '-'}:{info.gname or '-'})",
                    link=info.linkname,
                    sha256=digest,
                ),
            )


def _field_differences(a: Member, b: Member) -> list[str]:
    shown = {
        "type": (a.kind, b.kind),
        "content": (a.sha256[:16], b.sha256[:16]),
        "size": (a.size, b.size),
        "mode": (f"{a.mode:04o}", f"{b.mode:04o}"),
        "mtime": (a.mtime, b.mtime),
        "owner": (a.owner, b.owner),
        "link target": (a.link, b.link),
    }
    return [f"{what} {x} != {y}" for what, (x, y) in shown.items() if x != y]


def member_differences(a: Path, b: Path) -> list[str]:
    """How the members of two archives differ, one line each; empty when every member is the same."""
    first, second = dict(archive_members(a)), dict(archive_members(b))
    lines = [f"only in A: {name}" for name in first if name not in second]
    lines += [f"only in B: {name}" for name in second if name not in first]
    for name, member in first.items():
        other = second.get(name)
        if other is not None and other != member:
            lines.append(f"{name}: {', '.join(_field_differences(member, other))}")
    common = [n for n in first if n in second]
    if not lines and common != [n for n in second if n in first]:
        lines.append("the same members in another order")
    return lines


def compare_files(name: str, a: Path, b: Path) -> FileResult:
    """Compare one pair of files: same bytes, or how they differ (members, for archives)."""
    if sha256_file(a) == sha256_file(b):
        return FileResult(name=name, identical=True)
    if not is_archive(a) or not is_archive(b):
        return FileResult(name=name, identical=False)
    details = member_differences(a, b)
    if not details:
        details = ["every member is the same: only the archive encoding differs (headers, compression)"]
    return FileResult(name=name, identical=False, details=details)


def pairs(a: Path, b: Path) -> list[tuple[str, Path | None, Path | None]]:
    """The files to compare: two files as one pair, or every file of two directories, matched by name."""
    for path in (a, b):
        if not path.exists():
            raise CompareError(f"{path}: no such file or directory", hint="pass two dist directories or two archives")
    if a.is_dir() != b.is_dir():
        raise CompareError(f"{a} and {b}: one is a directory, the other a file", hint="compare like with like")
    if not a.is_dir():
        return [(a.name if a.name == b.name else f"{a.name} / {b.name}", a, b)]
    names = sorted({p.name for p in a.iterdir() if p.is_file()} | {p.name for p in b.iterdir() if p.is_file()})
    return [(n, a / n if (a / n).is_file() else None, b / n if (b / n).is_file() else None) for n in names]


def find_diffoscope() -> str | None:
    """The diffoscope program: on PATH, or installed beside this interpreter (a virtualenv not activated)."""
    beside = Path(sys.executable).parent / "diffoscope"
    return shutil.which("diffoscope") or (str(beside) if os.access(beside, os.X_OK) else None)


# Reports are for reading: two trained pgo+lto builds once gave a 1.7 GB text report for one archive.
MAX_TEXT_REPORT_BYTES = 50_000_000
DEFAULT_TIMEOUT = 600.0


def run_diffoscope(a: Path, b: Path, report_dir: Path, label: str, timeout: float) -> tuple[Path, ...]:
    """Run diffoscope on a differing pair; return the HTML and text reports it wrote (written under a
    temporary name and renamed when complete), or nothing when diffoscope is missing or fails.

    After `timeout` seconds diffoscope stops opening further members and writes what it has (its own
    best-effort limit); a run still going at twice that is killed."""
    program = find_diffoscope()
    if program is None:
        return ()
    report_dir.mkdir(parents=True, exist_ok=True)
    stem = label.replace("/", "_").replace(" ", "")
    finals = (report_dir / f"{stem}.diffoscope.html", report_dir / f"{stem}.diffoscope.txt")
    partials = tuple(p.with_name(f".{p.name}.part") for p in finals)
    argv = [
        program,
        *("--timeout", str(int(timeout)), "--max-text-report-size", str(MAX_TEXT_REPORT_BYTES)),
        *("--html", str(partials[0]), "--text", str(partials[1]), str(a), str(b)),
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=2 * timeout)
    except subprocess.TimeoutExpired:
        result = None
    # diffoscope exits 1 when it found differences (the expected case), 2 on an error.
    if result is None or result.returncode != 1 or not all(p.is_file() for p in partials):
        for partial in partials:
            partial.unlink(missing_ok=True)
        return ()
    for partial, final in zip(partials, finals, strict=True):
        partial.replace(final)
    return finals


def compare(a: Path, b: Path, *, report_dir: Path | None, timeout: float = DEFAULT_TIMEOUT) -> list[FileResult]:
    """Compare two builds; run diffoscope on each differing pair when `report_dir` is given."""
    results = []
    for name, first, second in pairs(a, b):
        if first is None or second is None:
            results.append(FileResult(name=name, identical=False, missing_in="A" if first is None else "B"))
            continue
        result = compare_files(name, first, second)
        if not result.identical and report_dir is not None:
            result.reports = run_diffoscope(first, second, report_dir, name, timeout)
        results.append(result)
    return results


def report_lines(results: list[FileResult]) -> Iterator[str]:
    """The human report: one line per file, indented lines for what differs inside an archive."""
    for result in results:
        if result.identical:
            yield f"identical  {result.name}"
            continue
        if result.missing_in:
            yield f"DIFFERENT  {result.name}: missing in {result.missing_in}"
            continue
        yield f"DIFFERENT  {result.name}" + (f" ({len(result.details)} member(s))" if result.details else "")
        for line in result.details[:MAX_MEMBER_LINES]:
            yield f"    {line}"
        if len(result.details) > MAX_MEMBER_LINES:
            yield f"    ... and {len(result.details) - MAX_MEMBER_LINES} more"
        for report in result.reports:
            yield f"    diffoscope report: {report}"
