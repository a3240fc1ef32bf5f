"""``fips_provider=``: which provider ships, and the graph that builds one from its own pristine tree.

The graphs are declared with real SCons from the real sources lock and toolchains (nothing is built); the
default build's graph must be exactly today's, and a second OpenSSL action appears only when asked for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import SCons.Environment

from hermetic import scons_glue
from hermetic.action import Action
from hermetic.errors import ConfigError, HermeticError
from hermetic.lock import load_lock
from pydist import fips_provider, graph, settings
from pydist.dist_steps import DistSteps
from pydist.paths import LOCK_FILE, PINS_SCHEMA, REPO_ROOT
from pydist.platforms import load_platform


def declared(tmp_path: Path, **arguments: str) -> tuple[dict[str, Action], list[DistSteps]]:
    """The actions (by name) and distribution steps of ``scons`` with `arguments` (py=3.13 noopt by default)."""
    scons_glue._REGISTRY.clear()
    scons_glue._FUNCTIONS.clear()
    env = SCons.Environment.Environment(ENV={}, tools=[])
    # SCons's nodes are global: each declaration gets directories of its own.
    where = tmp_path / "-".join(f"{k}={v}" for k, v in sorted(arguments.items())).replace("/", "_")
    config = settings.resolve(
        {
            "py": "3.13",
            "options": "noopt",
            "build_dir": str(where / "build"),
            "dist_dir": str(where / "dist"),
            "tag": "t",
            **arguments,
        }
    )
    build_host = "aarch64-macos" if "apple" in arguments.get("target", "") else "x86_64-linux"
    graph.declare(env, config, checking_host=False, build_host=build_host)
    actions = {action.name: action for action, _runner in scons_glue._REGISTRY.values()}
    steps: list[DistSteps] = []
    for work in scons_glue._FUNCTIONS.values():
        owner = work.__self__  # type: ignore[attr-defined]
        if not any(owner is seen for seen in steps):
            steps.append(owner)
    return actions, steps


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
    assert provider.patches == () and provider.deps == () and provider.files == ()
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
    assert steps.ctx.license_pins[-1] == pin
    assert steps.ctx.identity("x") != declared(tmp_path)[1][0].ctx.identity("x")
    from pydist.archive_actions import runtime_test_action

    command = runtime_test_action(steps.ctx, tmp_path / "dist" / "x-install_only-t.tar.gz").steps[-1].argv[-1]
    assert "--openssl 3.5.7 --fips-provider 3.0.20 " in command


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


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("9.9.9", "fips_provider=9.9.9 is not a pinned FIPS provider; valid: 3.5.7 (default), 3.0.20"),
        ("3.1.2", "without the size, which was not found published"),
    ],
)
def test_an_unknown_provider_is_one_line_listing_the_valid_ones(tmp_path: Path, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        declared(tmp_path, fips_provider=value)
    assert fragment in one_line(error.value)


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


def completed_3_1_2_entry(size: int) -> str:
    """The lock's commented 3.1.2 entry, completed as its comment says (uncommented, SIZE filled in)."""
    text = LOCK_FILE.read_text()
    block = re.search(r"^# \[\[source\]\]\n(?:# .*\n)+", text, re.M)
    assert block is not None
    entry = "".join(line.removeprefix("# ") + "\n" for line in block.group(0).splitlines())
    assert "size = SIZE" in entry
    return entry.replace("size = SIZE", f"size = {size}")


def test_the_3_1_2_entry_once_completed_makes_the_validated_provider_buildable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_file = tmp_path / "sources.lock.toml"
    lock_file.write_text(LOCK_FILE.read_text() + "\n" + completed_3_1_2_entry(15_000_000))
    monkeypatch.setattr(graph, "LOCK_FILE", lock_file)
    actions, [steps] = declared(tmp_path, fips_provider="3.1.2")
    provider = actions["openssl-fips-3.1.2"]
    assert provider.source is not None
    assert provider.source.sha256 == "a0ce69b8b97ea6a35b96875235aa453b966ba3cba8af2de23657d8b6767d6539"
    assert provider.steps[0].argv == ("./Configure", "linux-x86_64", "enable-fips")
    record: dict[str, Any] = steps.ctx.fips_provider.record()
    assert record["validated"] is True and record["certificate"] == "4985"
    assert record["certificate_standard"] == "FIPS 140-3" and record["certificate_status"] == "active"


def test_the_named_target_exists_for_every_provider_choice() -> None:
    graph.check_named_targets([fips_provider.TARGET])
    assert fips_provider.TARGET in settings.help_text(graph.NAMED_TARGETS)
    help_text = settings.help_text(graph.NAMED_TARGETS)
    assert "fips_provider" in help_text and "3.1.2, CMVP #4985" in help_text


def test_select_reads_the_lock(tmp_path: Path) -> None:
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    linux = load_platform("x86_64-unknown-linux-gnu", "x86_64-linux")
    assert fips_provider.select(lock, None, linux).pin is None
    chosen = fips_provider.select(lock, "3.0.20", linux)
    assert chosen.own_tree and chosen.version == "3.0.20" and chosen.libcrypto == "3.5.7"
    assert not chosen.validated and chosen.certificate is None
    assert (REPO_ROOT / "patches" / "openssl-fips").exists() is False
