"""tuning=: lever names, what each build can have, and what the chosen default is on each target."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hermetic.errors import ConfigError
from pydist import tuning
from pydist.tuning import BuildFacts, Tuning

X86_64 = BuildFacts(
    release=True,
    minor=(3, 13),
    cflags=("-fstack-protector-strong", "-fstack-clash-protection", "-fno-omit-frame-pointer"),
    arch="x86_64",
    elf=True,
    bolt_tool=True,
    native=True,
)


def test_parse_default_none_and_lists() -> None:
    assert tuning.parse("default") is None
    assert tuning.parse("none") == ()
    assert tuning.parse("o3, bolt,o3,") == ("o3", "bolt")


@pytest.mark.parametrize("text", ["o4", "", "none,o3", "default,o3"])
def test_parse_refuses_what_is_not_a_lever_list(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        tuning.parse(text)
    assert "tuning=" in str(error.value) and "o3" in error.value.hint


def test_an_explicit_list_is_exactly_those_levers_and_not_the_default() -> None:
    levers = tuning.resolve("no-pie,o3", X86_64)
    assert levers == Tuning(frozenset({"o3", "no-pie"}), is_default=False)
    assert levers.label == "o3+no-pie"  # in LEVERS order, whatever the command line's
    assert tuning.resolve("none", X86_64).label == "none"


def test_default_is_the_chosen_combination_where_every_lever_of_it_is_available() -> None:
    levers = tuning.resolve("default", X86_64)
    assert levers.is_default and levers.levers == frozenset(tuning.DEFAULT)


def test_naming_the_chosen_combination_is_the_default_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """One artifact for one configuration: `none` is the default build while nothing is chosen, and naming
    the chosen levers (in any order) is the default build once something is."""
    monkeypatch.setattr(tuning, "DEFAULT", ())
    assert tuning.resolve("none", X86_64) == Tuning(frozenset(), is_default=True)
    monkeypatch.setattr(tuning, "DEFAULT", ("o3", "bolt"))
    assert tuning.resolve("bolt,o3", X86_64) == tuning.resolve("default", X86_64)
    assert tuning.resolve("bolt,o3", X86_64).is_default
    assert not tuning.resolve("none", X86_64).is_default and not tuning.resolve("o3", X86_64).is_default
    # Where the chosen combination loses a lever (no BOLT on macOS), the rest of it is the default there.
    mac = replace(X86_64, elf=False, bolt_tool=False)
    assert tuning.resolve("o3", mac).is_default and not tuning.resolve("o3", X86_64).is_default


def test_default_drops_what_a_build_cannot_have_and_an_explicit_request_is_refused() -> None:
    mac = replace(X86_64, arch="aarch64", elf=False, bolt_tool=False, cflags=("-fstack-protector-strong",))
    cross = replace(X86_64, native=False)
    tail_calling = replace(X86_64, minor=(3, 14), tail_calling=True)
    unavailable = (
        (mac, "no-pie"),
        (mac, "bolt"),
        (mac, "no-frame-pointer"),
        (mac, "no-stack-clash"),
        (mac, "hot-text"),
        (mac, "split-functions"),
        (mac, "cdsort"),
        (mac, "no-plt"),
        (mac, "x86-64-v3"),
    )
    for facts, lever in (*unavailable, (tail_calling, "tail-dup")):
        assert tuning.unavailable(lever, facts) is not None
        assert lever not in tuning.resolve("default", facts)
        with pytest.raises(ConfigError, match=f"{lever} is not available here"):
            tuning.resolve(lever, facts)
    assert "natively" in (tuning.unavailable("bolt", cross) or "")
    assert tuning.unavailable("stack-protector", mac) is None


def test_only_pgo_lto_builds_are_tuned() -> None:
    noopt = replace(X86_64, release=False)
    assert tuning.resolve("default", noopt) == Tuning(frozenset(), is_default=True)
    assert tuning.resolve("none", noopt).levers == frozenset()
    with pytest.raises(ConfigError, match="pgo\\+lto builds only"):
        tuning.resolve("o3", noopt)


def test_every_default_lever_is_a_lever_and_the_help_names_them_all() -> None:
    assert set(tuning.DEFAULT) <= set(tuning.LEVERS)
    text = tuning.help_text()
    assert all(name in text for name in tuning.LEVERS) and "benchmarking" in text
