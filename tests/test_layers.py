"""The layers point one way: generic machinery (hermetic) below the domain rules (pydist), and within pydist the
data (catalogue, targets) and the checks (validator) below the recipes that build things."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from hermetic.code_identity import module_closure
from pydist.dist_context import rule_code_files

SITE_SCONS = REPO_ROOT / "site_scons"
# The modules that say how something is built (a library, OpenSSL, CPython, BOLT) and the graph that wires them.
RECIPES = (
    "pydist.libraries",
    "pydist.openssl",
    "pydist.cpython",
    "pydist.bolt",
    "pydist.glibc_sysroot",
    "pydist.graph",
)


def _names(files: list[Path]) -> set[str]:
    return {".".join(f.relative_to(SITE_SCONS).with_suffix("").parts).removesuffix(".__init__") for f in files}


@pytest.mark.parametrize("root", ["pydist.validate", "pydist.catalog", "pydist.targets", "pydist.python_json"])
def test_the_validator_and_the_data_load_no_recipe(root: str) -> None:
    loaded = _names(module_closure((root,), SITE_SCONS))
    assert not loaded & set(RECIPES), f"{root} loads {sorted(loaded & set(RECIPES))}"


def test_the_data_modules_load_no_build_machinery() -> None:
    loaded = _names(module_closure(("pydist.catalog", "pydist.targets"), SITE_SCONS))
    assert not loaded & {"hermetic.action", "hermetic.sandbox", "hermetic.toolchain", "pydist.platforms"}, loaded


def test_the_distribution_steps_key_covers_no_recipe() -> None:
    """Editing how a library or CPython is built must not rebuild the archives made from the same artifacts."""
    covered = _names([f for f in rule_code_files() if f.suffix == ".py" and f.is_relative_to(SITE_SCONS)])
    assert not covered & set(RECIPES), sorted(covered & set(RECIPES))


def test_hermetic_imports_nothing_of_the_domain_rules() -> None:
    for path in sorted((SITE_SCONS / "hermetic").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("pydist"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("pydist") for a in node.names), path.name
