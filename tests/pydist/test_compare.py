"""``python -m pydist compare A B`` on real archives packed by the build's own packer, one member altered at a
time, and on dist directories; diffoscope (installed by scripts/bootstrap) really runs on what differs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from hermetic.archive_pack import pack_tree
from pydist import compare
from pydist.__main__ import main

EPOCH = 1767225600


def tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python3.13").write_bytes(b"\x7fELF pretend interpreter\n")
    (root / "bin" / "python3.13").chmod(0o755)
    (root / "bin" / "python3").symlink_to("python3.13")
    (root / "lib").mkdir()
    (root / "lib" / "os.py").write_text("import sys\nsep = '/'\n")
    (root / "lib" / "data.txt").write_text("hello\n")
    return root


def pack(root: Path, out: Path, **kwargs: object) -> Path:
    pack_tree(root, out, mtime=EPOCH, prefix="python", compression="gz", **kwargs)  # type: ignore[arg-type]
    return out


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(tree, archive A, directory for B): A packed from the tree."""
    root = tree(tmp_path / "tree")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return root, pack(root, tmp_path / "a" / "cpython-x-install_only.tar.gz"), tmp_path / "b"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["compare", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_identical_archives_exit_zero(
    pair: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, a, b_dir = pair
    b = pack(root, b_dir / a.name)
    code, out = run(capsys, str(a), str(b))
    assert code == 0
    assert out.splitlines() == [f"identical  {a.name}", "IDENTICAL: 1 of 1 identical"]
    # A report directory named but not needed is not created.
    assert run(capsys, str(a), str(b), "--report-dir", str(tmp_path / "reports"))[0] == 0
    assert not (tmp_path / "reports").exists()


def test_an_altered_member_is_named_and_diffoscope_reports_it(
    pair: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, a, b_dir = pair
    (root / "lib" / "os.py").write_text("import sys\nsep = '\\\\'\n")
    b = pack(root, b_dir / a.name)
    reports = tmp_path / "reports"
    code, out = run(capsys, str(a), str(b), "--report-dir", str(reports))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"DIFFERENT  {a.name} (1 member(s))"
    assert lines[1].startswith("    python/lib/os.py: content ") and "size 21 != 22" in lines[1]
    html, text = reports / f"{a.name}.diffoscope.html", reports / f"{a.name}.diffoscope.txt"
    assert f"    diffoscope report: {html}" in lines and f"    diffoscope report: {text}" in lines
    assert "python/lib/os.py" in text.read_text() and "<html" in html.read_text().lower()
    assert sorted(p.name for p in reports.iterdir()) == sorted([html.name, text.name])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda root: (root / "lib" / "data.txt").chmod(0o755), "python/lib/data.txt: mode 0644 != 0755"),
        (
            lambda root: ((root / "bin" / "python3").unlink(), (root / "bin" / "python3").symlink_to("python3.14")),
            "python/bin/python3: link target python3.13 != python3.14",
        ),
        (lambda root: (root / "lib" / "new.py").write_text(""), "only in B: python/lib/new.py"),
        (lambda root: (root / "lib" / "data.txt").unlink(), "only in A: python/lib/data.txt"),
    ],
)
def test_each_kind_of_member_difference(
    pair: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], change: object, expected: str
) -> None:
    root, a, b_dir = pair
    change(root)  # type: ignore[operator]
    b = pack(root, b_dir / a.name)
    code, out = run(capsys, "--no-diffoscope", str(a), str(b))
    assert code == 1 and f"    {expected}" in out.splitlines()


def test_mtime_and_owner_differences(tmp_path: Path) -> None:
    def craft(path: Path, mtime: int, uid: int) -> Path:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
            info = tarfile.TarInfo("python/lib/libncursesw.a")
            info.size, info.mtime, info.uid, info.gid, info.mode = 5, mtime, uid, uid, 0o644
            tar.addfile(info, io.BytesIO(b"!<ar>"))
        path.write_bytes(buffer.getvalue())
        return path

    a = craft(tmp_path / "a.tar", EPOCH, 0)
    b = craft(tmp_path / "b.tar", EPOCH + 3600, 1000)
    [line] = compare.member_differences(a, b)
    assert line == f"python/lib/libncursesw.a: mtime {EPOCH} != {EPOCH + 3600}, owner 0:0 (-:-) != 1000:1000 (-:-)"


def test_only_the_encoding_differs(pair: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, _, _ = pair
    a = pack_tree(root, tmp_path / "x.tar.zst", mtime=EPOCH, prefix="python", zstd_level=3)
    b = pack_tree(root, tmp_path / "y.tar.zst", mtime=EPOCH, prefix="python", zstd_level=19)
    assert a is None and b is None
    result = compare.compare_files("x", tmp_path / "x.tar.zst", tmp_path / "y.tar.zst")
    assert not result.identical
    assert result.details == ["every member is the same: only the archive encoding differs (headers, compression)"]


def test_dist_directories_file_by_file(pair: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root, a, b_dir = pair
    a_dir = a.parent
    pack(root, b_dir / a.name)
    (a_dir / "SHA256SUMS").write_text("1\n")
    (b_dir / "SHA256SUMS").write_text("2\n")
    (a_dir / "sbom.cdx.json").write_text("{}\n")
    code, out = run(capsys, "--no-diffoscope", str(a_dir), str(b_dir))
    assert code == 1
    assert out.splitlines() == [
        "DIFFERENT  SHA256SUMS",
        f"identical  {a.name}",
        "DIFFERENT  sbom.cdx.json: missing in B",
        "DIFFERENT: 1 of 3 identical",
    ]


def test_mistakes_are_one_line_and_exit_two(pair: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, a, b_dir = pair
    code, out = run(capsys, str(a), str(b_dir / "nothing.tar.gz"))
    assert code == 2 and out.startswith("error: ") and "no such file" in out and len(out.splitlines()) == 1
    code, out = run(capsys, str(a), str(b_dir))
    assert code == 2 and "one is a directory, the other a file" in out


def test_the_command_line_entry_point(pair: tuple[Path, Path, Path]) -> None:
    root, a, b_dir = pair
    b = pack(root, b_dir / a.name)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "site_scons")}
    result = subprocess.run(
        [sys.executable, "-m", "pydist", "compare", "--no-diffoscope", str(a), str(b)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("IDENTICAL: 1 of 1 identical\n")


def test_without_diffoscope_the_report_says_how_to_get_it(
    pair: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, a, b_dir = pair
    (root / "lib" / "data.txt").write_text("changed\n")
    b = pack(root, b_dir / a.name)
    monkeypatch.setattr(compare, "find_diffoscope", lambda: None)
    code, out = run(capsys, str(a), str(b))
    assert code == 1 and "no diffoscope report: diffoscope is not installed" in out


def test_the_text_report_is_capped(
    pair: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, a, b_dir = pair

    def write_modules(factor: int) -> None:
        for module in range(40):
            lines = (f"value_{n} = {n * factor}\n" for n in range(500))
            (root / "lib" / f"generated_{module}.py").write_text("".join(lines))

    write_modules(7919)
    a = pack(root, a.parent / a.name)
    write_modules(7907)
    b = pack(root, b_dir / a.name)
    monkeypatch.setattr(compare, "MAX_TEXT_REPORT_BYTES", 20_000)
    code, _ = run(capsys, str(a), str(b), "--report-dir", str(tmp_path / "reports"))
    text = (tmp_path / "reports" / f"{a.name}.diffoscope.txt").read_text()
    assert code == 1 and "generated_0.py" in text and text.rstrip().endswith("Max text output size reached.")
    # Uncapped, the report would carry all 40 modules' 40,000 changed lines (over 1 MB); diffoscope stops after
    # the difference that crosses the cap.
    assert len(text.encode()) < 200_000 and "generated_39.py" not in text


def test_the_timeout_help_states_the_real_default() -> None:
    from pydist.__main__ import COMPARE_TIMEOUT_HELP

    assert float(COMPARE_TIMEOUT_HELP) == compare.DEFAULT_TIMEOUT


@pytest.mark.parametrize(("argv", "expected"), [((), compare.DEFAULT_TIMEOUT), (("--timeout", "5"), 5.0)])
def test_the_timeout_reaches_compare(
    argv: tuple[str, ...],
    expected: float,
    pair: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, a, _ = pair
    seen: list[float] = []

    def record(first: Path, second: Path, *, report_dir: Path | None, timeout: float) -> list[compare.FileResult]:
        seen.append(timeout)
        return []

    monkeypatch.setattr(compare, "compare", record)
    code, _ = run(capsys, *argv, "--no-diffoscope", str(a), str(a))
    assert code == 0 and seen == [expected]


def test_other_commands_do_not_import_compare() -> None:
    probe = (
        "import sys\n"
        "from pydist.__main__ import main\n"
        "try:\n    main(['validate', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('pydist.compare' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "site_scons")}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("False")
