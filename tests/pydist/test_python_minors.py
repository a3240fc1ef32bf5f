"""The per-minor table: buildable minors have their FIPS patch series, and the rows are consistent."""

from __future__ import annotations

import pytest

from hermetic.errors import ConfigError
from pydist.paths import PATCHES_DIR
from pydist.python_minors import MIMALLOC, MINORS, PYMALLOC, SUPPORTED, minor_of


def test_a_minor_is_buildable_exactly_when_its_patch_series_exists() -> None:
    for minor in MINORS.values():
        assert minor.fips_patches == (PATCHES_DIR / "cpython" / minor.minor).is_dir(), minor.minor


def test_rows_are_ordered_and_consistent() -> None:
    assert SUPPORTED == ("3.10", "3.11", "3.12", "3.13", "3.14", "3.15")
    for minor in MINORS.values():
        assert minor.freethreading == (minor.version >= (3, 13))
        assert minor.setup_stdlib == (minor.version >= (3, 11))
        assert minor.bolt == (minor.version >= (3, 12))
        # _crypt left the standard library in 3.13 (PEP 594), and with it the shared system-library module.
        assert ("_crypt" in minor.shared_modules) == (minor.version < (3, 13))
        assert not set(minor.shared_modules) & set(minor.not_built)


# The line of the allocator patch that makes builds with the GIL default to mimalloc.
DEFAULTS_TO_MIMALLOC = "#if defined(Py_GIL_DISABLED) || defined(WITH_MIMALLOC)"


def test_mimalloc_is_the_default_exactly_where_a_patch_of_the_series_makes_it_so() -> None:
    for minor in MINORS.values():
        series = sorted((PATCHES_DIR / "cpython" / minor.minor).glob("*.patch"))
        switched = [p.name for p in series if f"+{DEFAULTS_TO_MIMALLOC}" in p.read_text()]
        assert (minor.allocator == MIMALLOC) == bool(switched), minor.minor
        assert minor.allocator_of(freethreaded=True) == MIMALLOC
        assert minor.allocator_of(freethreaded=False) == minor.allocator
        # Where mimalloc is the default, configure must find it rather than fall back to pymalloc.
        assert ("--with-mimalloc" in minor.configure) == (minor.allocator == MIMALLOC)
    assert MINORS["3.13"].allocator == MIMALLOC and MINORS["3.11"].allocator == PYMALLOC


def test_minor_of_full_and_short_versions() -> None:
    assert minor_of("3.13.15").minor == "3.13" and minor_of("3.11").minor == "3.11"
    with pytest.raises(ConfigError, match=r"Python 3\.9 is not supported; valid: 3\.10, 3\.11"):
        minor_of("3.9.1")


def test_a_minor_lacks_the_modules_it_leaves_out_and_those_newer_than_it() -> None:
    assert MINORS["3.13"].lacks("_zstd") == "_zstd comes with Python 3.14"
    assert MINORS["3.14"].lacks("_zstd") is None and MINORS["3.15"].lacks("_zstd") is None
    assert MINORS["3.11"].lacks("nis") == MINORS["3.11"].not_built["nis"]
    assert MINORS["3.13"].lacks("nis") is None  # gone from 3.13's sources, so nothing is left out
    assert MINORS["3.13"].lacks("_sqlite3") is None
