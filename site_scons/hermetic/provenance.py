"""Provenance in the formats auditors expect: an in-toto Statement v1 carrying a SLSA Provenance v1 predicate.

Nothing time- or machine-dependent goes in (no timestamps, no host names or paths), so the same build gives
the same statement everywhere; what the statement records is *which* pinned inputs went in, *which*
sandboxed actions ran with which keys, and the digests of what came out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"


@dataclass(frozen=True)
class ResourceDescriptor:
    """A SLSA ResourceDescriptor: something consumed or produced, identified by digest (or, for a host tool
    nobody pins, by the release named in its annotations)."""

    name: str
    sha256: str | None
    uri: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (keys omitted when empty)."""
        data: dict[str, Any] = {"name": self.name}
        if self.sha256:
            data["digest"] = {"sha256": self.sha256}
        if self.uri:
            data["uri"] = self.uri
        if self.annotations:
            data["annotations"] = self.annotations
        return data


def _by_name_and_digest(descriptor: ResourceDescriptor) -> tuple[str, str]:
    return descriptor.name, descriptor.sha256 or ""


def statement(
    *,
    subjects: Iterable[ResourceDescriptor],
    build_type: str,
    external_parameters: dict[str, Any],
    internal_parameters: dict[str, Any],
    dependencies: Iterable[ResourceDescriptor],
    builder_id: str,
    builder_version: dict[str, str],
    byproducts: Iterable[ResourceDescriptor],
) -> dict[str, Any]:
    """An in-toto Statement whose predicate is SLSA Provenance v1, with sorted, deterministic lists."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": s.name, "digest": {"sha256": s.sha256}} for s in sorted(subjects, key=lambda s: s.name)],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": external_parameters,
                "internalParameters": internal_parameters,
                "resolvedDependencies": [d.to_json() for d in sorted(dependencies, key=_by_name_and_digest)],
            },
            "runDetails": {
                "builder": {"id": builder_id, "version": builder_version},
                "byproducts": [b.to_json() for b in sorted(byproducts, key=lambda b: b.name)],
            },
        },
    }
