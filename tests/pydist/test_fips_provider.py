"""``fips_provider=``: which provider ships, and the graph that builds one from its own pristine tree.

The graphs are declared with real SCons from the real sources lock and toolchains (nothing is built); the
default build's graph must be exactly today's, and a second OpenSSL action appears only when asked for.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from declared_graph import declared_build as declared

from hermetic.action import Action
from hermetic.errors import ConfigError, HermeticError, LockError
from hermetic.lock import load_lock
from pydist import fips_provider, graph, settings
from pydist.paths import LOCK_FILE, PINS_SCHEMA, REPO_ROOT
from pydist.platforms import load_platform


def keys(actions: dict[str, Action]) -> dict[str, str]:
    return {name: action.key() for name, action in actions.items()}


def test_the_default_ships_openssls_own_provider_and_declares_no_second_openssl(tmp_path: Path) -> None:
    default, [steps] = declared(tmp_path)
    assert not any(action.rule == fips_provider.TARGET for action in default.values())
    assert [name for name in default if name.startswith("openssl")] == ["openssl-3.5.7"]
    assert steps.fips_artifact == steps.openssl_artifact
    record = steps.ctx.fips_provider.record()
    assert record == {
        "version": "3.5.7",
        "libcrypto_version": "3.5.7",
        "source_tree": "libcrypto",
        "validated": False,
        "certificate": None,
        "certificate_standard": None,
        "certificate_status": None,
    }
    assert steps.build_parameters()["fips_provider"] == record  # the provenance's build parameters
    assert [pin.name for pin in steps.ctx.license_pins].count("openssl-fips") == 0
    # Naming libcrypto's own version is the default, key for key.
    same, _ = declared(tmp_path, fips_provider="3.5.7")
    assert keys(same) == keys(default)


def test_a_pinned_provider_adds_exactly_one_action_built_from_its_pristine_tree(tmp_path: Path) -> None:
    default, _ = declared(tmp_path)
    actions, [steps] = declared(tmp_path, fips_provider="3.0.20")
    provider = actions.pop("openssl-fips-3.0.20")
    assert keys(actions) == keys(default)  # libcrypto, every library and CPython: unchanged
    pin = load_lock(LOCK_FILE, PINS_SCHEMA).get("openssl-fips", "3.0.20")
    assert provider.rule == "fips-provider" and provider.source == pin
    # Its only input besides its source: the glibc sysroot every compiling action gets.
    assert provider.patches == () and provider.deps == ("sysroot",) and provider.files == ()
    assert [(step.name, step.argv) for step in provider.steps[:3]] == [
        ("configure", ("./Configure", "linux-x86_64", "enable-fips")),
        ("build", ("make",)),
        ("install_fips", ("make", "install_fips", "DESTDIR=/build/tmp/install_fips")),
    ]
    # The compiler and binary tools, nothing of this project's flags.
    assert provider.env == {
        "CC": "x86_64-linux-gnu-clang",
        "CXX": "x86_64-linux-gnu-clang++",
        "AR": "llvm-ar",
        "RANLIB": "llvm-ranlib",
        "NM": "llvm-nm",
        "STRIP": "llvm-strip",
        "OBJCOPY": "llvm-objcopy",
    }
    assert not {"CFLAGS", "CPPFLAGS", "LDFLAGS"} & set(provider.full_env())
    # What ships, and what the records say.
    assert steps.fips_artifact.name == "openssl-fips-3.0.20.tar.zst"
    assert steps.openssl_artifact.name == "openssl-3.5.7.tar.zst"  # its openssl program runs the runtime tests
    assert steps.ctx.fips_provider.record()["source_tree"] == "own"
    assert steps.build_parameters()["fips_provider"] == {
        "version": "3.0.20",
        "libcrypto_version": "3.5.7",
        "source_tree": "own",
        "validated": False,
        "certificate": None,
        "certificate_standard": None,
        "certificate_status": None,
    }
    assert steps.ctx.license_pins[-1] == pin
    assert steps.ctx.identity("x") != declared(tmp_path)[1][0].ctx.identity("x")
    from pydist.archive_actions import runtime_test_action

    command = runtime_test_action(steps.ctx, tmp_path / "dist" / "x-install_only-t.tar.gz").steps[-1].argv[-1]
    # The provider that ships is 3.0.20; the libcrypto whose version the runtime tests check stays 3.5.7.
    assert " --fips-provider 3.0.20 " in command
    assert '"library":"openssl","display":"OpenSSL","version":"3.5.7"' in command


def test_a_cross_build_configures_the_provider_for_the_target(tmp_path: Path) -> None:
    actions, _ = declared(tmp_path, fips_provider="3.0.20", target="aarch64-unknown-linux-gnu", options="pgo+lto")
    [provider] = [a for a in actions.values() if a.rule == fips_provider.TARGET]
    assert provider.target == "aarch64-unknown-linux-gnu"
    assert provider.steps[0].argv == ("./Configure", "linux-aarch64", "enable-fips")
    assert provider.env["CC"] == "aarch64-linux-gnu-clang"


def one_line(error: HermeticError) -> str:
    message = error.one_line()
    assert "\n" not in message
    return message


def test_an_unknown_provider_is_one_line_listing_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        declared(tmp_path, fips_provider="9.9.9")
    assert one_line(error.value).startswith(
        "fips_provider=9.9.9 is not a pinned FIPS provider; valid: 3.5.7 (default), 3.0.20, 3.1.2; pin its source "
    )


def test_a_value_that_is_not_a_version_is_refused_on_the_command_line() -> None:
    with pytest.raises(ConfigError) as error:
        settings.resolve({"fips_provider": "latest"})
    assert one_line(error.value).startswith("fips_provider=latest is not a version")
    assert settings.resolve({"fips_provider": " "}).fips_provider is None


def test_a_macos_target_keeps_its_own_provider(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        declared(tmp_path, fips_provider="3.0.20", target="aarch64-apple-darwin")
    assert "cannot be built for aarch64-apple-darwin" in one_line(error.value)
    actions, _ = declared(tmp_path, target="aarch64-apple-darwin")
    assert not any(action.rule == fips_provider.TARGET for action in actions.values())


def test_patches_for_the_provider_tree_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    patches = tmp_path / "patches"
    (patches / "openssl-fips" / "3.0").mkdir(parents=True)
    (patches / "openssl-fips" / "3.0" / "0001-anything.patch").write_text("why\n")
    monkeypatch.setattr(graph, "PATCHES_DIR", patches)
    monkeypatch.setattr(graph, "REPO_ROOT", tmp_path)
    with pytest.raises(ConfigError) as error:
        declared(tmp_path, fips_provider="3.0.20")
    assert "its Security Policy allows no change" in one_line(error.value)


UPSTREAM_3_1_2 = "a0ce69b8b97ea6a35b96875235aa453b966ba3cba8af2de23657d8b6767d6539"


def test_the_lock_pins_3_1_2_by_upstreams_digest_only() -> None:
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    assert "3.1.2" not in lock.versions("openssl-fips")  # no size: never a download the fetcher could verify
    entry = fips_provider.digest_only_sources(lock)["3.1.2"]
    assert entry["filename"] == "openssl-3.1.2.tar.gz" and entry["sha256"] == UPSTREAM_3_1_2
    assert "size" not in entry


def test_a_digest_only_entry_cannot_carry_a_size(tmp_path: Path) -> None:
    # With a size it would be an ordinary [[source]]: the schema keeps the two kinds apart.
    lock_file = tmp_path / "sources.lock.toml"
    lock_file.write_text(LOCK_FILE.read_text().replace('version = "3.1.2"\n', 'version = "3.1.2"\nsize = 1\n'))
    with pytest.raises(LockError) as error:
        load_lock(lock_file, PINS_SCHEMA)
    assert "size" in error.value.one_line()


def test_3_1_2_without_its_tarball_is_one_line_naming_digest_and_distdir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        declared(tmp_path, fips_provider="3.1.2", cache_root=str(tmp_path / "cache"))
    message = one_line(error.value)
    assert message.startswith(f"fips_provider=3.1.2 needs openssl-3.1.2.tar.gz (sha256 {UPSTREAM_3_1_2}), pinned")
    assert "distdir: none given" in message and "pass its directory as distdir=DIR" in message


def test_3_1_2_refuses_a_tarball_that_is_not_upstreams(tmp_path: Path) -> None:
    distdir = tmp_path / "distdir"
    distdir.mkdir()
    (distdir / "openssl-3.1.2.tar.gz").write_bytes(b"not the release")
    with pytest.raises(ConfigError) as error:
        declared(tmp_path, fips_provider="3.1.2", distdir=str(distdir), cache_root=str(tmp_path / "cache"))
    assert f"openssl-3.1.2.tar.gz has sha256 {hashlib.sha256(b'not the release').hexdigest()}, not upstream" in (
        one_line(error.value)
    )


def source_tarball(path: Path, top: str) -> bytes:
    """A real gzipped tarball with one file under `top`/; returns its bytes."""
    with tarfile.open(path, "w:gz") as tar:
        data = b"Apache License 2.0\n"
        info = tarfile.TarInfo(f"{top}/LICENSE.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def test_3_1_2_from_distdir_is_a_full_pin_and_the_validated_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Upstream's bytes cannot be had here: a lock whose digest-only entry names a tarball made in the test
    # stands for it, the mechanism being the same for any digest.
    distdir = tmp_path / "distdir"
    distdir.mkdir()
    tarball = source_tarball(distdir / "openssl-3.1.2.tar.gz", "openssl-3.1.2")
    digest = hashlib.sha256(tarball).hexdigest()
    lock_file = tmp_path / "sources.lock.toml"
    lock_file.write_text(LOCK_FILE.read_text().replace(UPSTREAM_3_1_2, digest))
    monkeypatch.setattr(graph, "LOCK_FILE", lock_file)
    cache = str(tmp_path / "cache")
    actions, [steps] = declared(tmp_path, fips_provider="3.1.2", distdir=str(distdir), cache_root=cache)
    provider = actions["openssl-fips-3.1.2"]
    assert provider.source is not None
    assert (provider.source.sha256, provider.source.size) == (digest, len(tarball))
    assert provider.source.filename == "openssl-3.1.2.tar.gz" and provider.source.license == "Apache-2.0"
    assert provider.steps[0].argv == ("./Configure", "linux-x86_64", "enable-fips")
    assert steps.ctx.license_pins[-1] == provider.source  # its license text ships
    record: dict[str, Any] = steps.ctx.fips_provider.record()
    assert record["version"] == "3.1.2" and record["source_tree"] == "own"
    assert record["validated"] is True and record["certificate"] == "4985"
    assert record["certificate_standard"] == "FIPS 140-3" and record["certificate_status"] == "active"
    assert steps.build_parameters()["fips_provider"] == record
    # The fetcher then takes it from the same distdir, verified against the completed pin, into the cache; from
    # there a later build finds it without the distdir.
    assert steps.ctx.fetcher.fetch(provider.source).read_bytes() == tarball
    (distdir / "openssl-3.1.2.tar.gz").unlink()
    again, _ = declared(tmp_path, fips_provider="3.1.2", cache_root=str(tmp_path / "cache"))
    assert again["openssl-fips-3.1.2"].key() == provider.key()


def test_the_named_target_exists_for_every_provider_choice() -> None:
    graph.check_named_targets([fips_provider.TARGET])
    assert fips_provider.TARGET in settings.help_text(graph.NAMED_TARGETS)
    help_text = " ".join(settings.help_text(graph.NAMED_TARGETS).split())
    assert "fips_provider the OpenSSL FIPS provider to ship" in help_text
    assert "3.1.2 (CMVP #4985; its tarball from distdir=) or 3.0.20 (not validated" in help_text


def test_select_reads_the_lock(tmp_path: Path) -> None:
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    linux = load_platform("x86_64-unknown-linux-gnu", "x86_64-linux")
    assert fips_provider.select(lock, None, linux).pin is None
    chosen = fips_provider.select(lock, "3.0.20", linux)
    assert chosen.own_tree and chosen.version == "3.0.20" and chosen.libcrypto == "3.5.7"
    assert not chosen.validated and chosen.certificate is None
    assert (REPO_ROOT / "patches" / "openssl-fips").exists() is False
