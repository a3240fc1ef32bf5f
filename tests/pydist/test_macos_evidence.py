"""How the Linux evidence toolchain for the macOS target is made from the pins (the cross-compile itself runs in
tests/integration/test_macos_cross.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermetic.errors import ToolchainError
from hermetic.toolchain import load_compiler
from pydist import graph
from pydist.compile_env import CompileEnv
from pydist.macos_evidence import LIBRARIES, NOT_CROSS_BUILT, EvidenceBuild, evidence_platform, evidence_toolchain
from pydist.paths import PINS_SCHEMA, TOOLCHAINS_DIR


def test_the_evidence_toolchain_is_the_pinned_llvm_with_the_macos_sdk() -> None:
    toolchain = evidence_toolchain("x86_64-linux")
    assert toolchain.triple == "aarch64-apple-darwin" and toolchain.xcode is None
    assert toolchain.sandbox == "bubblewrap" and toolchain.build_host == "x86_64-linux"
    assert toolchain.sysroot is not None and toolchain.sysroot.kind == "sdk"
    assert toolchain.sysroot.finish == ("tbd-arm64e.x1-as-arm64",)
    assert toolchain.compiler is not None
    plain = load_compiler(TOOLCHAINS_DIR / "compilers/llvm-19-debian12-x86_64.toml", PINS_SCHEMA)
    # The same packages; one more launcher and LLVM's Mach-O tools under Xcode's names.
    assert toolchain.compiler.packages.packages == plain.packages.packages
    assert toolchain.compiler.packages.target_triples == (*plain.packages.target_triples, "arm64-apple-macos11.0")
    tools = dict(toolchain.compiler.packages.tools)
    assert tools["otool"] == "llvm-otool" and tools["install_name_tool"] == "llvm-install-name-tool"
    assert tools["ld64.lld"] == "ld64.lld"
    # A different directory from the Linux compiler's: the Linux builds' cached compiler is untouched.
    assert toolchain.compiler.packages.id != plain.packages.id
    identity = toolchain.identity()
    assert identity["sysroot"][-1]["finish"] == ["tbd-arm64e.x1-as-arm64"]
    assert "xcode" not in identity


def test_the_evidence_compiles_with_the_launcher_and_links_with_ld64_lld() -> None:
    platform = evidence_platform("x86_64-linux")
    assert not platform.xcode and not platform.native
    env = CompileEnv(platform=platform).autotools_env("zlib-1.3.1")
    assert env["CC"] == "arm64-apple-macos11.0-clang"
    assert env["AR"] == "llvm-ar" and env["MACOSX_DEPLOYMENT_TARGET"] == "11.0"
    assert "-fuse-ld=lld" in env["LDFLAGS"].split()
    assert platform.host_triple == "aarch64-apple-darwin" and platform.build_triple == "x86_64-linux-gnu"
    # No codesign here: the linker signs, and the sign step checks that it did.
    assert platform.sign("x.dylib").startswith('otool -l "x.dylib" | grep -q LC_CODE_SIGNATURE')
    assert "_scproxy" in platform.modules_not_built()
    assert r"[a-z0-9_]+-apple-macos" in platform.compiler_launcher_pattern()


def test_only_hosts_the_pin_names_make_evidence() -> None:
    with pytest.raises(ToolchainError, match="names no evidence toolchain for aarch64-macos"):
        evidence_toolchain("aarch64-macos")


def test_what_is_cross_built_and_what_is_not(tmp_path: Path) -> None:
    platform = evidence_platform("x86_64-linux")
    recipes = {r.name for r in graph.library_recipes(platform)}
    assert set(LIBRARIES) | set(NOT_CROSS_BUILT) - {"util-linux"} == recipes
    assert "util-linux" not in recipes
    with pytest.raises(ToolchainError, match="libedit is not cross-built for macOS here: needs ncurses"):
        EvidenceBuild(tmp_path, tmp_path).build(["libedit"], platform)
    assert not (tmp_path / "macos-evidence").exists()  # refused before anything ran
