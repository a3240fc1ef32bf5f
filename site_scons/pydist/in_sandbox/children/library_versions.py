"""Read the versions of the libraries this interpreter links, as each library's catalogue row says to: import the
module, evaluate the expression. Print, as JSON, each library's version or why it could not be read.

    python library_versions.py '{"<library>": {"module": "...", "expression": "..."}, ...}'

Output: ``{"<library>": {"version": "..."} | {"error": "..."}, ...}``. A child program of the runtime tests
(runtime_tests.py: pinned_library_versions); the rows come from sources.lock.toml's ``runtime_version``. Standard
library only, Python 3.11 and later.
"""

from __future__ import annotations

import importlib
import json
import sys


def read_version(module: str, expression: str) -> str:
    """``import <module>``, then the value of `expression` (which names the module as it was imported), as text."""
    importlib.import_module(module)
    top = module.partition(".")[0]
    # The expression is a catalogue row's, reviewed like the rest of the repository's code.
    return str(eval(expression, {top: sys.modules[top]}))


def read_versions(rows: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each library's version, or the error that stopped reading it (so every library is reported)."""
    found: dict[str, dict[str, str]] = {}
    for library, row in rows.items():
        try:
            found[library] = {"version": read_version(row["module"], row["expression"])}
        except Exception as e:
            found[library] = {"error": f"{row['module']}: {e!r}"}
    return found


if __name__ == "__main__":
    print(json.dumps(read_versions(json.loads(sys.argv[1]))))
