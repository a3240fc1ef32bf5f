"""The distribution half of the graph: full archive, install_only, install_only_stripped, SHA256SUMS, the SBOM
and the provenance, each an in-process step (``dist_steps``) with its own key (``dist_context``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cyclonedx

from hermetic import scons_glue
from pydist import provenance, sbom
from pydist.archive_actions import report_path
from pydist.dist_context import DistContext
from pydist.dist_steps import DistSteps, builder_version
from pydist.distribution import DistNames


def declare_distribution(
    env: Any,
    ctx: DistContext,
    names: DistNames,
    dist_dir: Path,
    cpython_node: Any,
    library_nodes: dict[str, Any],
    build_python_nodes: list[Any],
    *,
    fips_node: Any,
) -> list[Any]:
    """Declare the archives, SHA256SUMS, the SBOM and the provenance of one build; returns their nodes.

    `build_python_nodes` are a cross build's build Python and its libraries: not shipped, but their actions ran
    for this build, so the provenance lists them. `fips_node` is the artifact whose FIPS provider ships:
    OpenSSL's own, or the provider's own (``fips_provider=``, then also among `library_nodes`); the runtime
    tests use OpenSSL's ``openssl`` program either way."""
    out_dir = dist_dir / names.directory
    openssl_node = library_nodes["openssl"]
    steps = DistSteps(
        ctx=ctx,
        names=names,
        openssl_artifact=Path(openssl_node.get_abspath()),
        fips_artifact=Path(fips_node.get_abspath()),
        build_python_artifacts=tuple(Path(n.get_abspath()) for n in build_python_nodes),
    )

    def declare(
        name: str, sources: list[Any], work: Any, *, tested: bool = False, identity: Mapping[str, Any] | None = None
    ) -> Any:
        # A runtime-tested archive has its test report as a second target, cached and restored with it.
        targets = [out_dir / name, *([report_path(ctx, out_dir / name)] if tested else [])]
        key = {**ctx.identity(name), **(identity or {})}
        return scons_glue.declare_function(env, [str(t) for t in targets], sources, key, work)[0]

    # The license tarballs are pinned by sha256, and the pins are part of ctx.identity().
    # OpenSSL's artifact gives the full archive its `openssl` program (the same node as fips_node by default).
    full_sources = [cpython_node, fips_node, *([openssl_node] if openssl_node is not fips_node else [])]
    full = declare(names.full, full_sources, steps.full)
    install_only = declare(names.install_only, [full, openssl_node], steps.install_only, tested=True)
    stripped = declare(names.install_only_stripped, [install_only, openssl_node, full], steps.stripped, tested=True)
    archives = [full, install_only, stripped]
    sums = declare("SHA256SUMS", archives, steps.sums)
    # The SBOM's bytes also depend on the CycloneDX library that writes them.
    sbom_node = declare(
        sbom.SBOM_NAME,
        [*archives, cpython_node, *library_nodes.values()],
        steps.write_sbom,
        identity={"cyclonedx-python-lib": cyclonedx.__version__},
    )
    # The provenance names the commit and tools that built it: a new commit writes it again.
    provenance_node = declare(
        provenance.PROVENANCE_NAME,
        [*archives, sums, sbom_node, cpython_node, *library_nodes.values(), *build_python_nodes],
        steps.provenance_statement,
        identity={"builder": builder_version(ctx)},
    )
    return [*archives, sums, sbom_node, provenance_node]
