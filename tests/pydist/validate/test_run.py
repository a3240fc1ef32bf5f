"""How the validator learns, from one build's full archive, that its FIPS module was built from its own tree."""

from __future__ import annotations

import json
from pathlib import Path

from pydist.fips_provider import FipsProvider
from pydist.validate.run import _provider_from_its_own_tree
from pydist.validate.unpack import Unpacked


def unpacked(tmp_path: Path, kind: str, python_json: str | None) -> Unpacked:
    root = tmp_path / kind
    (root / "python").mkdir(parents=True)
    if python_json is not None:
        (root / "python" / "PYTHON.json").write_text(python_json)
    return Unpacked(label=f"x-{kind}", kind=kind, root=root)


def document(provider: FipsProvider) -> str:
    return json.dumps({"version": "8", "fips_provider": provider.record()})


def test_the_full_archive_of_a_provider_from_its_own_tree_says_so(tmp_path: Path) -> None:
    own = document(FipsProvider(version="3.1.2", libcrypto="3.5.7")).replace('"libcrypto"', '"own"')
    install_only = unpacked(tmp_path, "install_only", None)
    assert _provider_from_its_own_tree([install_only, unpacked(tmp_path, "full", own)]) is True


def test_the_default_provider_or_no_full_archive_keeps_every_rule(tmp_path: Path) -> None:
    default = document(FipsProvider(version="3.5.7", libcrypto="3.5.7"))
    assert _provider_from_its_own_tree([unpacked(tmp_path / "a", "full", default)]) is False
    # install_only archives carry no PYTHON.json: alone, they are held to every rule.
    assert _provider_from_its_own_tree([unpacked(tmp_path / "b", "install_only", None)]) is False
    # A PYTHON.json that is not JSON is reported by its own checks and waives nothing.
    assert _provider_from_its_own_tree([unpacked(tmp_path / "c", "full", "{not json")]) is False
    # Only a full archive's PYTHON.json counts.
    own = default.replace('"libcrypto"', '"own"')
    assert _provider_from_its_own_tree([unpacked(tmp_path / "d", "install_only", own)]) is False
