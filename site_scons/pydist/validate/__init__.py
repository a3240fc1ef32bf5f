"""The distribution validator: every check of an archive, reported all at once.

``validate(paths)`` reads a full ``.tar.zst`` and/or install_only ``.tar.gz`` archives and returns every
violation, each naming the file and the rule it breaks. It runs as a build rule after each distribution is
built and as ``python -m pydist validate FILE...``.
"""

from __future__ import annotations

from pathlib import Path

from pydist.validate.report import Report, Violation

__all__ = ["Report", "Violation", "validate"]


def validate(paths: list[Path], *, work: Path | None = None) -> Report:
    """Validate the archives of one build and report every violation (see ``validate.run``)."""
    from pydist.validate import run  # the checks load pyelftools and macholib; only when validating

    return run.validate(paths, work=work)
