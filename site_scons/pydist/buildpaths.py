"""Finding build paths left in a distribution's files.

Every build runs in the same sandbox paths (``/build/src``, ``/build/deps``, ``/toolchain``, ``/sysroot``),
so no machine-specific path can reach the outputs; what must not remain is any *use* of those paths after
installation: a shebang, a script, a pkg-config file, or a compiler or linker flag that sysconfig hands to
builds of extension modules. CPython's recorded build configuration (``_sysconfigdata_*.py``, the config
``Makefile``) also keeps a few purely informational values, such as the configure command line and the
source directory; like python-build-standalone's, those name the (fixed) sandbox and are reported
separately, not as violations.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Where CPython is installed inside the sandbox (its --prefix): a fixed path, relocated at run time.
PREFIX = "/install"

# A sandbox path: one of the fixed sandbox directories, as a whole path component (so "Tools/build/x.py"
# is not one).
SANDBOX_PATH = re.compile(r"/(?:build/(?:src|deps|out|tmp|patches|files)|toolchain|sysroot)(?=[/:'\"\s]|$)")

# A shebang naming the prefix CPython was configured with: it exists only in the build. (The recorded
# configuration keeps that prefix on purpose; sysconfig relocates it at run time, a shebang cannot.)
INSTALL_PREFIX_SHEBANG = re.compile(rb"#![ \t]*" + re.escape(PREFIX.encode()) + rb"/")

# Values of the recorded configuration that describe the build rather than configure later ones.
# PYTHON_FOR_BUILD is how a cross build ran its build Python (``./python -E`` in a native build); nothing
# reads it after installation.
INFORMATIONAL_VARIABLES = frozenset(
    {
        "CONFIG_ARGS",
        "srcdir",
        "abs_srcdir",
        "abs_builddir",
        "RUNSHARED",
        "COVERAGE_INFO",
        "COVERAGE_REPORT",
        "COVERAGE_REPORT_OPTIONS",
        "PY_BUILTIN_MODULE_CFLAGS",
        "TESTPYTHON",
        "TESTRUNNER",
        "PYTHON_FOR_BUILD",
    }
)


@dataclass(frozen=True)
class Finding:
    """One mention of a build path."""

    path: str
    where: str
    informational: bool

    def __str__(self) -> str:
        return f"{self.path}: {self.where} mentions a build path"


def _is_recorded_configuration(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return (
        (name.startswith("_sysconfigdata_") and name.endswith(".py"))
        or (name.startswith("_sysconfig_vars_") and name.endswith(".json"))
        or (name == "Makefile" and "/config-" in rel)
    )


def _variables(rel: str, text: str) -> Iterator[tuple[str, str]]:
    """(name, value) pairs of a recorded configuration file; lines that are not assignments as ("", line)."""
    if rel.endswith(".py"):
        tree = ast.parse(text)  # a SyntaxError is reported by find()
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                        yield str(key.value), str(value.value)
        return
    if rel.endswith(".json"):
        for key, value in json.loads(text).items():
            yield str(key), str(value)
        return
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[:+?]?=(.*)$", line)
        yield (match.group(1), match.group(2)) if match else ("", line)


def check_text(rel: str, data: bytes) -> list[Finding]:
    """The mentions of sandbox paths in one file's contents (`rel` is its path in the install)."""
    if data[:4] == b"\x7fELF" or b"\0" in data[:8192]:
        return []
    if INSTALL_PREFIX_SHEBANG.match(data):
        return [Finding(rel, "its shebang (the build's install prefix)", False)]
    text = data.decode("utf-8", "replace")
    if not SANDBOX_PATH.search(text):
        return []
    if not _is_recorded_configuration(rel):
        line = next(i for i, text_line in enumerate(text.splitlines(), 1) if SANDBOX_PATH.search(text_line))
        return [Finding(rel, f"line {line}", False)]
    try:
        pairs = list(_variables(rel, text))
    except (SyntaxError, ValueError):
        return [Finding(rel, "an unreadable build record", False)]
    findings = []
    for name, value in pairs:
        if SANDBOX_PATH.search(value):
            where = f"variable {name}" if name else f"line {value.strip()[:60]!r}"
            findings.append(Finding(rel, where, name in INFORMATIONAL_VARIABLES))
    return findings


def find(root: Path) -> list[Finding]:
    """Every mention of a sandbox path in the text files under `root` (binaries and archives excluded)."""
    findings: list[Finding] = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix in (".a", ".o"):
            continue
        findings += check_text(str(path.relative_to(root)), path.read_bytes())
    return findings


def violations(root: Path) -> list[Finding]:
    """The findings that are real problems (not the informational build record)."""
    return [f for f in find(root) if not f.informational]
