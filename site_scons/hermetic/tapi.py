"""Text-based stubs (``.tbd``, Apple's TAPI format) that the pinned ld64.lld can read.

A ``.tbd`` file stands in for a system dylib at link time: its install name and the symbols it exports, per
target (``<arch>-<platform>``). The macOS stubs shipped with current SDKs (and the ziglang wheel) list
``arm64e.x1`` targets, a newer arm64e ABI that LLVM 19's TAPI reader does not know: it rejects the whole file
("unknown architecture"). Those targets describe the same exports as the file's arm64 slices, so rewriting
them to ``arm64`` (merging duplicates) gives a stub lld 19 links arm64 code against.
"""

from __future__ import annotations

import re
from pathlib import Path

# Architectures LLVM 19 does not know, and the one each stands in for.
UNKNOWN_ARCHES = {"arm64e.x1": "arm64"}

# A YAML flow sequence of targets, possibly over several lines: `targets: [ a, b,\n   c ]`.
_TARGETS = re.compile(r"(targets:\s*)\[([^\]]*)\]")


def rewrite_targets(text: str) -> str:
    """`text` with every unknown target architecture renamed, and each targets list kept free of duplicates."""

    def rewrite(match: re.Match[str]) -> str:
        targets: list[str] = []
        for item in match.group(2).split(","):
            target = item.strip()
            if not target:
                continue
            arch, sep, platform = target.partition("-")
            target = f"{UNKNOWN_ARCHES.get(arch, arch)}{sep}{platform}"
            if target not in targets:
                targets.append(target)
        return f"{match.group(1)}[ {', '.join(targets)} ]"

    return _TARGETS.sub(rewrite, text)


def rewrite_tree(root: Path) -> list[Path]:
    """Rewrite every ``.tbd`` file under `root` in place (it is being materialized); return those changed."""
    changed = []
    for path in sorted(root.rglob("*.tbd")):
        if path.is_symlink():
            continue
        text = path.read_text()
        new = rewrite_targets(text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed
