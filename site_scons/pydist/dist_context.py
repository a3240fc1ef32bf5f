"""What the distribution rules share, and the key of the steps that run in this process.

Those steps (assembling, converting, checksums, SBOM, provenance) have no action description to hash: their
key digests the code that runs them (``hermetic.code_identity``: the import closure of ``pydist.dist_graph``
within ``site_scons/``) and the data files they read, plus the request, the toolchain and the pins.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hermetic.action import ActionRunner
from hermetic.code_identity import digest_of, module_closure
from hermetic.content_store import sha256_file
from hermetic.fetch import Fetcher
from hermetic.lock import SourcesLock
from hermetic.pins import Pin
from hermetic.toolchain import Toolchain
from pydist.fips_provider import FipsProvider
from pydist.matrix import BuildRequest
from pydist.paths import IN_SANDBOX, PYTHON_JSON_SCHEMA, REPO_ROOT, RUNTIME_CHILDREN, SHIPPED
from pydist.platforms import Platform

SITE_SCONS = REPO_ROOT / "site_scons"

# Bump when what these rules write changes in a way their code digest would not show.
DIST_RULE_VERSION = 1

# The module whose import closure is the code of the in-process steps (it wires all of them).
RULE_MODULES = ("pydist.dist_graph",)
# Files the steps read that are not modules of the build: the schema, what runs in the runtime-test sandbox (the
# scripts and the child programs of the runtime tests), and the modules shipped into the standard library.
RULE_DATA_FILES = (
    PYTHON_JSON_SCHEMA,
    *sorted(IN_SANDBOX.glob("*.*")),
    *sorted(RUNTIME_CHILDREN.glob("*.py")),
    *sorted(SHIPPED.glob("*.py")),
)


def rule_code_files(source_root: Path = SITE_SCONS, data_files: tuple[Path, ...] = RULE_DATA_FILES) -> list[Path]:
    """Every file whose content shapes what the in-process steps write."""
    return sorted({*module_closure(RULE_MODULES, source_root), *data_files})


@cache
def rule_code() -> tuple[tuple[str, str], ...]:
    """(repository path, sha256) of every file of :func:`rule_code_files`, computed once per build."""
    return tuple((p.relative_to(REPO_ROOT).as_posix(), sha256_file(p)) for p in rule_code_files())


@dataclass(frozen=True, kw_only=True)
class DistContext:
    """What the distribution rules of one build share.

    Attributes:
        request: (BuildRequest) what is built.
        lock: (SourcesLock) the sources lock.
        platform: (Platform) the target as built on this host.
        runner: (ActionRunner) runs the sandboxed steps on archives.
        fetcher: (Fetcher) fetches the license sources.
        work_root: (Path) scratch space.
        tests_root: (Path) where runtime-test reports go.
        license_pins: (tuple[Pin, ...]) every source whose license text ships.
        object_format: (str) PYTHON.json's object file format of the shipped objects.
        fips_provider: (FipsProvider) the FIPS provider that ships.
        build_python_toolchain: (Toolchain | None) a cross build's: the toolchain its build Python (the build
            host's own CPython and libraries) was built with.
    """

    request: BuildRequest
    lock: SourcesLock
    platform: Platform
    runner: ActionRunner
    fetcher: Fetcher
    work_root: Path
    tests_root: Path
    license_pins: tuple[Pin, ...]
    object_format: str
    fips_provider: FipsProvider
    build_python_toolchain: Toolchain | None = None

    @property
    def toolchain(self) -> Toolchain:
        """The target's toolchain."""
        return self.platform.toolchain

    @property
    def fips_module(self) -> str:
        """Where the FIPS provider module is, relative to the install (``share/ssl/ossl-modules/fips.so``)."""
        return f"share/ssl/ossl-modules/{self.platform.fips_module}"

    def identity(self, rule: str) -> dict[str, Any]:
        """The settings every distribution rule's signature includes."""
        return {
            "rule": rule,
            "rule_version": DIST_RULE_VERSION,
            "request": {
                "target": self.request.target,
                "python": self.request.python.identity(),
                "options": str(self.request.options),
            },
            "code": digest_of(rule_code()),
            "toolchain": self.toolchain.identity_digest(),
            **(
                {"build_python_toolchain": self.build_python_toolchain.identity_digest()}
                if self.build_python_toolchain
                else {}
            ),
            "licenses": [pin.identity() for pin in self.license_pins],
            "fips_provider": self.fips_provider.record(),
            "source_date_epoch": self.lock.source_date_epoch,
        }
