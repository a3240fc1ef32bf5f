"""``python -m pydist validate`` on what is not an archive: one line saying what to pass, exit code 2."""

from __future__ import annotations

from pathlib import Path

from test_unpack import FULL_NAME, run_validator, small_distribution, write_archive


def test_a_directory_names_the_archives_to_pass(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / FULL_NAME, small_distribution())
    (tmp_path / "SHA256SUMS").write_text("")
    result = run_validator(str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: {tmp_path} is a directory, not an archive; pass the archives in it: {archive}\n"


def test_a_directory_without_archives_says_so(tmp_path: Path) -> None:
    result = run_validator(str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {tmp_path} is a directory, not an archive; it holds no .tar.zst or .tar.gz archive; "
        "pass the archive files themselves\n"
    )


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.tar.zst"
    result = run_validator(str(missing))
    assert result.returncode == 2
    assert result.stderr == f"error: {missing}: no such file; pass the .tar.zst and/or .tar.gz archives\n"
