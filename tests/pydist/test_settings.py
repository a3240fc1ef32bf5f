"""Command-line variables: every bad value is one line naming the variable, before any work is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import copy_repository, run_scons
from hermetic.errors import ConfigError
from pydist import settings


def refusal(**arguments: str) -> str:
    """The one line `settings.resolve` gives for `arguments`."""
    with pytest.raises(ConfigError) as error:
        settings.resolve(arguments)
    line = error.value.one_line()
    assert "\n" not in line
    return line


def test_defaults_resolve() -> None:
    resolved = settings.resolve({})
    assert resolved.cache_root == settings.default_cache_root()
    assert resolved.scons_cache == resolved.cache_root / "scons-cache"
    assert resolved.build_dir == Path("build") and resolved.dist_dir == Path("dist")
    assert resolved.mirrors == () and resolved.debian_mirror is None and resolved.debian_security_mirror is None


def test_good_mirror_settings_are_kept() -> None:
    resolved = settings.resolve(
        {
            "mirrors": "https://m.example/{sha256}, file:///srv/mirror/{filename}",
            "debian_mirror": "http://deb.example/debian/",
            "debian_security_mirror": "https://deb.example:8443/debian-security",
        }
    )
    assert resolved.mirrors == ("https://m.example/{sha256}", "file:///srv/mirror/{filename}")
    assert resolved.debian_mirror == "http://deb.example/debian/"
    assert resolved.debian_security_mirror == "https://deb.example:8443/debian-security"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://m.example/{version}/{filename}", "has an unknown field {version}"),
        ("https://m.example/{sha256", "is not a valid template (expected '}' before end of string)"),
        ("https://m.example/}{sha256}", "is not a valid template (Single '}' encountered in format string)"),
        ("ftp://m.example/{sha256}", "has scheme ftp:, not one of http, https, file"),
        ("https://m.example/all.tar.gz", "names no file: it needs {sha256} or {filename}"),
        (
            "https://m.example/my files/{sha256}",
            "is not a URL: it holds a space or a control character (percent-encode it, e.g. %20)",
        ),
        (
            "https://m.example/\t{sha256}",
            "is not a URL: it holds a space or a control character (percent-encode it, e.g. %20)",
        ),
        ("https://m.example:99999/{sha256}", "is not a URL (Port out of range 0-65535)"),
    ],
)
def test_bad_mirror_template_is_one_line_naming_the_variable(template: str, problem: str) -> None:
    line = refusal(mirrors=f"https://good.example/{{sha256}},{template}")
    assert line.startswith(f"mirrors={template} {problem}; ")
    assert "{sha256}, {filename}, {name}" in line  # the valid fields


@pytest.mark.parametrize("name", ["debian_mirror", "debian_security_mirror"])
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("deb.example/debian", "is not an http:// or https:// URL (scheme (none):)"),
        ("ftp://deb.example/debian", "is not an http:// or https:// URL (scheme ftp:)"),
        ("file:///srv/debian", "is not an http:// or https:// URL (scheme file:)"),
        ("https:///debian", "has no host"),
        ("http://deb.example:port/debian", "is not a URL (Port could not be cast to integer value as 'port')"),
        ("http://deb.example/debian?x=1", "has a query or fragment; give the archive's base URL"),
        ("http://deb.example/de bian", "contains spaces or control characters"),
    ],
)
def test_bad_debian_mirror_is_one_line_naming_the_variable(name: str, url: str, problem: str) -> None:
    line = refusal(**{name: url})
    shown = url.replace("?x=1", "?x=***")  # a query's values are masked in every message (they may be tokens)
    assert line.startswith(f"{name}={shown} {problem}; give the archive's base URL, e.g. {name}=https://")


@pytest.mark.parametrize("name", ["cache_root", "build_dir", "dist_dir", "scons_cache"])
@pytest.mark.parametrize("value", ["", "  "])
def test_empty_directory_is_refused(name: str, value: str) -> None:
    line = refusal(**{name: value})
    assert line.startswith(f"{name}= is empty; give a directory (")
    assert line.endswith(f"or leave {name}= out for the default")


def test_scons_cache_off_is_still_accepted() -> None:
    assert settings.resolve({"scons_cache": "off"}).scons_cache is None


@pytest.mark.parametrize("jobs", ["²", "٣", "0", "-1", "2.5", "", "two"])
def test_jobs_must_be_a_positive_ascii_number(jobs: str) -> None:
    assert refusal(jobs=jobs) == f"jobs={jobs} is not a positive number; e.g. jobs=2"


def test_pgo_profile_must_be_a_file_and_is_kept_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.resolve({}).pgo_profile is None
    assert refusal(pgo_profile=str(tmp_path)).startswith(f"pgo_profile={tmp_path} is not a file")
    (tmp_path / "code.profdata").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert settings.resolve({"pgo_profile": "code.profdata"}).pgo_profile == tmp_path / "code.profdata"


def test_jobs_accepts_digits() -> None:
    assert settings.resolve({"jobs": "12"}).jobs == 12


def test_remote_cache_is_off_by_default_and_read_only_unless_told() -> None:
    assert settings.resolve({}).remote_cache is None
    assert settings.open_remote_cache(settings.resolve({})) is None
    assert settings.resolve({"remote_cache": ""}).remote_cache is None  # an unset CI variable: off
    read_only = settings.resolve({"remote_cache": "https://cache.example:9092/"})
    assert read_only.remote_cache == "https://cache.example:9092/" and not read_only.remote_cache_writable
    assert settings.resolve({"remote_cache": "http://10.0.0.5", "remote_cache_mode": "rw"}).remote_cache_writable


def test_remote_cache_credentials_come_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    line = refusal(remote_cache="https://ci:hunter2@cache.example")
    assert line.startswith("remote_cache=https://***@cache.example holds credentials")
    assert "hunter2" not in line and settings.REMOTE_CACHE_CREDENTIALS in line
    monkeypatch.setenv(settings.REMOTE_CACHE_CREDENTIALS, "ci:hunter2")
    remote = settings.open_remote_cache(settings.resolve({"remote_cache": "https://cache.example"}))
    assert remote is not None and "hunter2" not in repr(remote) and "with credentials" in repr(remote)


@pytest.mark.parametrize(
    ("arguments", "start"),
    [
        ({"remote_cache_mode": "write"}, "remote_cache_mode=write is not one of ro, rw"),
        ({"remote_cache": "ftp://cache.example"}, "remote_cache=ftp://cache.example has scheme ftp:"),
        ({"remote_cache": "https://cache.example?x=1"}, "remote_cache=https://cache.example?x=*** has a query"),
        ({"remote_cache": "https://c.example", "scons_cache": "off"}, "remote_cache= needs the local cache"),
    ],
)
def test_bad_remote_cache_settings_are_one_line(arguments: dict[str, str], start: str) -> None:
    assert refusal(**arguments).startswith(start)


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("mirrors=https://m.example/{version}", "scons: *** mirrors=https://m.example/{version} has an unknown field"),
        ("mirrors=https://m.example/a b/{sha256}", "scons: *** mirrors=https://m.example/a b/{sha256} is not a URL"),
        ("mirrors=https://u:hunter2@m.example/{x}", "scons: *** mirrors=https://***@m.example/{x} has an unknown"),
        ("debian_mirror=ftp://deb.example/debian", "scons: *** debian_mirror=ftp://deb.example/debian is not an"),
        ("cache_root=", "scons: *** cache_root= is empty; give a directory"),
        ("build_dir=", "scons: *** build_dir= is empty; give a directory"),
        ("jobs=²", "scons: *** jobs=² is not a positive number; e.g. jobs=2"),
        ("remote_cache_mode=sometimes", "scons: *** remote_cache_mode=sometimes is not one of ro, rw; ro only"),
        ("remote_cache=cache.example:9092", "scons: *** remote_cache=cache.example:9092 has scheme"),
    ],
)
def test_scons_refuses_before_any_work(tmp_path: Path, argument: str, message: str) -> None:
    project = copy_repository(tmp_path / "repo")
    before = sorted(p.name for p in project.iterdir())
    result = run_scons(project, argument, "fetch")
    assert result.returncode == ConfigError.exit_code
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(message), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(p.name for p in project.iterdir()) == before  # no build/, downloads/, locks/ in the checkout
