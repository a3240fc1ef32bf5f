"""Reading the Debian archive's base URLs from apt configuration files."""

from __future__ import annotations

from pathlib import Path

from hermetic.debian import DebianArchives, archives_from_apt, base_url_problem


def test_deb822_and_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://archive.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment inside the paragraph\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: trixie\nEnabled: no\n"
    )
    (tmp_path / "sources.list.d" / "vendor.sources").write_text(
        "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n"
    )
    archives = archives_from_apt(tmp_path)
    assert archives.main == ("http://archive.example/debian", "http://mirror.example/debian")
    assert archives.security == ("http://mirror.example/debian-security",)


def test_resolve_expands_only_debian_urls() -> None:
    archives = DebianArchives(main=("http://a/debian/", "http://b/debian"), security=("http://s/debian-security",))
    assert archives.resolve("debian:pool/main/z/zlib/z.tar.gz") == [
        "http://a/debian/pool/main/z/zlib/z.tar.gz",
        "http://b/debian/pool/main/z/zlib/z.tar.gz",
    ]
    assert archives.resolve("debian-security:pool/updates/x") == ["http://s/debian-security/pool/updates/x"]
    assert archives.resolve("https://upstream.example/x.tgz") == ["https://upstream.example/x.tgz"]
    assert DebianArchives().resolve("debian:pool/x") == []


def test_base_url_problem_accepts_only_http_archives() -> None:
    assert base_url_problem("http://deb.example/debian") is None
    assert base_url_problem("https://deb.example:8443/debian-security/") is None
    assert base_url_problem("ftp://deb.example/debian") == "is not an http:// or https:// URL (scheme ftp:)"
    assert base_url_problem("deb.example/debian") == "is not an http:// or https:// URL (scheme (none):)"
    assert base_url_problem("http://") == "has no host"
    assert base_url_problem("http://[::1/debian") == "is not a URL (Invalid IPv6 URL)"
    assert base_url_problem("http://deb.example/debian#x") == "has a query or fragment; give the archive's base URL"
    assert base_url_problem("http://deb.example/\tdebian") == "contains spaces or control characters"
