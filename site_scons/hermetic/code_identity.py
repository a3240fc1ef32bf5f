"""The identity of code that runs in-process: the source files a module imports, transitively, and one digest.

Steps that run inside the build process (packing archives, writing metadata) have no action description to
hash, so their key digests the code that runs them: the module that defines them and every module of the
same source tree it imports, found from the import statements themselves (function bodies included), plus the
data files they read. Editing any of those rebuilds what the steps made; editing anything else does not.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path


def _module_file(name: str, source_root: Path) -> Path | None:
    """The file of module `name` under `source_root` (a package's ``__init__.py``), or None if not there."""
    base = source_root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(name: str, path: Path) -> Iterator[str]:
    """Every module name an import statement in `path` may load (anywhere: function bodies too), with the
    packages above it, and ``from X import y`` also as ``X.y`` in case y is a submodule."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*anchor, *([node.module] if node.module else [])])
            found = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for full in found:
            parts = full.split(".")
            yield from (".".join(parts[:i]) for i in range(1, len(parts) + 1))


def module_closure(roots: Iterable[str], source_root: Path) -> list[Path]:
    """The source files of `roots` and of every module they import, transitively, found under `source_root`
    (third-party and standard-library modules are not followed: their versions are pinned elsewhere)."""
    files: dict[str, Path] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in files or not name:
            continue
        path = _module_file(name, source_root)
        if path is None:
            continue
        files[name] = path
        pending.extend(_imported_names(name, path))
    return sorted(set(files.values()))


def digest_of(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 over (label, sha256) pairs: an edit, a rename, an added or removed file all change it."""
    digest = hashlib.sha256()
    for label, file_digest in sorted(entries):
        digest.update(f"{label}\0{file_digest}\n".encode())
    return digest.hexdigest()
