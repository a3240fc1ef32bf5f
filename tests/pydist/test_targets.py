"""One table per target: what pydist.targets reads, the schema lists that must agree with it, and what a made-up
third Linux architecture meets."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import copy_repository, run_scons
from hermetic.errors import LockError
from pydist import targets, uv_downloads
from pydist.paths import PINS_SCHEMA, PYTHON_JSON_SCHEMA, TOOLCHAINS_DIR


def test_every_target_is_read_from_its_own_file() -> None:
    found = targets.all_targets()
    assert set(found) == {p.stem for p in TOOLCHAINS_DIR.glob("*.toml")}
    x86 = found["x86_64-unknown-linux-gnu"]
    assert x86.runs_on == "x86_64-linux" and x86.uv_platform == ("x86_64", "linux", "gnu")
    assert x86.rules.elf_machine == "EM_X86_64" and targets.elf_machine_number("EM_X86_64") == 62
    assert found["aarch64-apple-darwin"].rules.macho_cputype == 0x0100000C
    assert uv_downloads.UV_PLATFORMS["aarch64-apple-darwin"] == ("aarch64", "darwin", "none")


def test_the_schemas_name_exactly_the_targets() -> None:
    python_json = json.loads(PYTHON_JSON_SCHEMA.read_text())["properties"]
    found = targets.all_targets().values()
    assert set(python_json["target_triple"]["enum"]) == {t.triple for t in found}
    assert set(python_json["python_platform_tag"]["enum"]) == {t.rules.platform_tag for t in found}
    pins = json.loads(PINS_SCHEMA.read_text())["$defs"]
    for kind in ("linuxToolchain", "macosToolchain"):
        os = pins[kind]["properties"]["os"]["const"]
        assert {t.arch for t in found if t.os == os} <= set(pins[kind]["properties"]["arch"]["enum"])


def test_an_unknown_elf_machine_name_is_a_lock_error() -> None:
    with pytest.raises(LockError, match="EM_ARM64 is not an ELF machine name"):
        targets.elf_machine_number("EM_ARM64")


def _riscv64(repo: Path) -> Path:
    """A made-up riscv64 Linux target, cross-built on x86_64 with the aarch64 target's pins as placeholders."""
    text = (repo / "toolchains" / "aarch64-unknown-linux-gnu.toml").read_text()
    text = text.replace("aarch64-unknown-linux-gnu", "riscv64-unknown-linux-gnu").replace(
        'arch = "aarch64"', 'arch = "riscv64"'
    )
    text = text.replace('"EM_AARCH64"', '"EM_RISCV"').replace('"linux-aarch64"', '"linux-riscv64"')
    text = text.replace('uv_platform = ["aarch64"', 'uv_platform = ["riscv64"').replace(
        'build_hosts = ["x86_64-linux", "aarch64-linux"]', 'build_hosts = ["x86_64-linux"]'
    )
    path = repo / "toolchains" / "riscv64-unknown-linux-gnu.toml"
    path.write_text(text)
    return path


@pytest.mark.integration
def test_a_third_linux_architecture_meets_clear_refusals_not_key_errors(tmp_path: Path) -> None:
    repo = copy_repository(tmp_path / "repo")
    shutil.rmtree(repo / "site_scons" / "pydist" / "__pycache__", ignore_errors=True)
    _riscv64(repo)
    # 1. The pin schema lists the architectures: a new one is refused by name until it is added there.
    result = run_scons(repo, "-n", "target=riscv64-unknown-linux-gnu")
    assert result.returncode == LockError.exit_code, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "riscv64-unknown-linux-gnu.toml: arch: 'riscv64' is not one of" in line and "Traceback" not in line
    # 2. With the schema's list extended (README "Adding a target"), every rule asks the target's table, none has
    # a table of its own keyed by architecture; what stops it is the one piece that must learn the architecture:
    # the sysroot generator (its loader's name and zig's header directories).
    schema = repo / "schema" / "pins.schema.json"
    text = schema.read_text()
    schema.write_text(
        re.sub(r'"enum": \[\s*"x86_64",\s*"aarch64"\s*\]', '"enum": ["x86_64", "aarch64", "riscv64"]', text)
    )
    result = run_scons(repo, "-n", "target=riscv64-unknown-linux-gnu", "options=noopt")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    [line] = result.stderr.strip().splitlines()
    assert line == (
        "scons: *** riscv64-unknown-linux-gnu: no glibc sysroot can be generated for it; "
        "glibc sysroots are generated for Linux on x86_64 and aarch64"
    )
