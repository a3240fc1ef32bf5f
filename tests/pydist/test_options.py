"""Option sets are parsed once into a typed value; names and flags follow from it."""

from __future__ import annotations

import re

import pytest

from hermetic.errors import ConfigError
from pydist.options import ALL, DEFAULT, RELEASE, BuildOptions


def test_every_option_set_round_trips() -> None:
    assert ALL == ("pgo+lto", "freethreaded+pgo+lto", "noopt", "freethreaded+noopt", "debug", "freethreaded+debug")
    for text in ALL:
        assert str(BuildOptions.parse(text)) == text
    assert DEFAULT == "pgo+lto" and RELEASE == ("pgo+lto", "freethreaded+pgo+lto")


@pytest.mark.parametrize(
    ("text", "pgo", "lto", "debug", "freethreaded", "flavor"),
    [
        ("pgo+lto", True, True, False, False, ""),
        ("freethreaded+pgo+lto", True, True, False, True, "freethreaded"),
        ("noopt", False, False, False, False, "noopt"),
        ("freethreaded+debug", False, False, True, True, "freethreaded+debug"),
    ],
)
def test_flags(text: str, pgo: bool, lto: bool, debug: bool, freethreaded: bool, flavor: str) -> None:
    options = BuildOptions.parse(text)
    assert (options.pgo, options.lto, options.debug, options.freethreaded) == (pgo, lto, debug, freethreaded)
    assert options.install_only_flavor == flavor


@pytest.mark.parametrize("text", ["lto", "pgo", "freethreaded", "pgo+lto+freethreaded", "debugfreethreaded+", ""])
def test_unknown_sets_are_one_line_errors(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"options={text} is not a supported option set; valid: pgo+lto")):
        BuildOptions.parse(text)
