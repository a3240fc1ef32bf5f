"""The library catalogue: one row per library beside its pin, complete, and what the build derives from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hermetic.errors import LockError
from hermetic.lock import load_lock
from pydist import catalog, sbom
from pydist.libraries import RECIPES
from pydist.macos_evidence import LIBRARIES, NOT_CROSS_BUILT
from pydist.openssl import OPENSSL
from pydist.paths import LOCK_FILE, PINS_SCHEMA, REPO_ROOT

DEMO_PIN = """
[[source]]
name = "demo"
version = "1.0"
filename = "demo-1.0.tar.gz"
size = 1
sha256 = "{sha}"
license = "MIT"
license_file = "COPYING"
urls = ["debian:pool/main/d/demo/demo_1.0.orig.tar.gz"]

[source.library]
display = "libdemo"
cpe = "demo_project:demo"
exported_prefixes = ["demo_"]
modules = ["_demo"]
include_dirs = ["demo"]
cpython_configure = ["--with-system-demo"]
runtime_version = { module = "_demo", expression = "_demo.VERSION" }
os = ["linux"]
macos_cross = "Linux only"
""".replace("{sha}", "ab" * 32)


def test_every_library_has_a_complete_row_and_a_recipe() -> None:
    rows = catalog.libraries()
    recipes = {*RECIPES, OPENSSL.name}
    assert set(rows) == recipes, "a recipe without a [source.library] row, or a row without a recipe"
    for library in rows.values():
        assert library.pin.license and library.pin.license_file, library.name
        assert library.cpe or library.pin.extra["library"]["cpe_missing"], library.name
        assert library.exported_prefixes and library.modules and library.os, library.name
        assert library.runtime_version, library.name


def test_a_row_missing_a_fact_or_its_licence_is_refused(tmp_path: Path) -> None:
    lock = LOCK_FILE.read_text()
    for left_out, named in [
        ('license = "MIT"\n', "'license' is a required property"),
        ('exported_prefixes = ["demo_"]\n', "'exported_prefixes' is a required property"),
        ('cpe = "demo_project:demo"\n', "'cpe' is a required property"),
        ('runtime_version = { module = "_demo", expression = "_demo.VERSION" }\n', "'runtime_version'"),
        ('macos_cross = "Linux only"\n', "'macos_cross' is a required property"),
    ]:
        path = tmp_path / "sources.lock.toml"
        path.write_text(lock + DEMO_PIN.replace(left_out, ""))
        with pytest.raises(LockError, match=re.escape(named)):
            load_lock(path, PINS_SCHEMA)
    path.write_text(lock + DEMO_PIN.replace('cpe = "demo_project:demo"', 'cpe = ""'))
    with pytest.raises(LockError, match="'cpe_missing' is a required property"):
        load_lock(path, PINS_SCHEMA)


def test_a_new_row_reaches_every_place_that_derives_from_it(tmp_path: Path) -> None:
    path = tmp_path / "sources.lock.toml"
    path.write_text(LOCK_FILE.read_text() + DEMO_PIN)
    demo = catalog.libraries_of(load_lock(path, PINS_SCHEMA))["demo"]
    assert demo.display == "libdemo" and demo.exported_prefixes == ("demo_",)
    assert sbom._cpe(demo.pin) == "demo_project:demo"
    assert demo.runtime_version == catalog.RuntimeVersion(module="_demo", expression="_demo.VERSION")
    assert demo.os == ("linux",) and demo.macos_cross == "Linux only"


def test_what_is_derived_from_the_rows() -> None:
    rows = catalog.libraries()
    assert catalog.symbol_prefixes()["liblzma"] == ("lzma_",)
    assert set(LIBRARIES) == {n for n, r in rows.items() if r.macos_cross is None}
    assert NOT_CROSS_BUILT["util-linux"] == "Linux only" and "util-linux" not in catalog.used_on("macos")
    options = [option for row in rows.values() for option in row.cpython_configure]
    expected = ["--with-system-expat", "--with-readline=editline", "--with-system-libmpdec"]
    assert options == [*expected, "--enable-loadable-sqlite-extensions"]


def test_readme_lists_every_library_of_the_catalog() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("| library | version |") :].split("\n\n", 1)[0]
    listed = re.findall(r"^\| (\S+) \| (\S+) \| ", table, re.M)[1:]
    expected = [(name, library.pin.version) for name, library in catalog.libraries().items()]
    assert listed == expected, "README's library table is not the catalog's"
