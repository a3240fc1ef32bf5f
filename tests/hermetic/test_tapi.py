"""The .tbd rewrite LLVM 19's ld64.lld needs, on the shapes the macOS stubs use (the linker itself reads the
rewritten stub in tests/integration/test_macos_cross.py)."""

from __future__ import annotations

import re
from pathlib import Path

from hermetic.tapi import rewrite_targets, rewrite_tree

# The layout of the ziglang wheel's libSystem.tbd: flow lists over several lines, the same list in the
# document header and in its export sections, and a library that lists arm64 and arm64e.x1 both.
STUB = """--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, x86_64-maccatalyst, arm64e-macos, arm64e-maccatalyst,
                   arm64e.x1-macos, arm64e.x1-maccatalyst ]
install-name:    '/usr/lib/libSystem.B.dylib'
exports:
  - targets:         [ x86_64-macos, x86_64-maccatalyst, arm64e-macos, arm64e-maccatalyst,
                       arm64e.x1-macos, arm64e.x1-maccatalyst ]
    symbols:         [ _printf, _arm64e.x1-looking_symbol ]
--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos, arm64e-macos, arm64e.x1-macos ]
install-name:    '/usr/lib/system/libcompiler_rt.dylib'
...
"""


def test_unknown_architectures_become_arm64_once() -> None:
    text = rewrite_targets(STUB)
    assert "x1" not in text.replace("_arm64e.x1-looking_symbol", "")
    assert (
        text.count(
            "targets:         [ x86_64-macos, x86_64-maccatalyst, arm64e-macos, arm64e-maccatalyst, arm64-macos, "
            "arm64-maccatalyst ]"
        )
        == 2
    )
    # arm64 was listed already: no duplicate.
    assert (
        "targets:         [ x86_64-macos, arm64-macos, arm64e-macos ]\ninstall-name:    '/usr/lib/system/libc" in text
    )
    # Symbol lists and everything else are untouched.
    assert "symbols:         [ _printf, _arm64e.x1-looking_symbol ]" in text
    lists = re.compile(r"targets:\s*\[[^\]]*\]")
    assert lists.sub("", text) == lists.sub("", STUB)
    assert rewrite_targets(text) == text


def test_a_stub_without_unknown_targets_is_unchanged() -> None:
    plain = "--- !tapi-tbd\ntargets: [ arm64-macos ]\ninstall-name: '/usr/lib/libz.1.dylib'\n...\n"
    assert rewrite_targets(plain) == plain


def test_rewrite_tree_changes_only_stubs_that_need_it(tmp_path: Path) -> None:
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/libSystem.tbd").write_text(STUB)
    (tmp_path / "usr/lib/libz.tbd").write_text("targets: [ arm64-macos ]\n")
    (tmp_path / "usr/lib/notes.txt").write_text("targets: [ arm64e.x1-macos ]\n")
    changed = rewrite_tree(tmp_path)
    assert changed == [tmp_path / "usr/lib/libSystem.tbd"]
    assert (tmp_path / "usr/lib/notes.txt").read_text() == "targets: [ arm64e.x1-macos ]\n"
    assert "arm64-macos" in (tmp_path / "usr/lib/libSystem.tbd").read_text()
