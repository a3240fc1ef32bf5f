"""PYTHON.json checked against its JSON Schema (``schema/python-json.schema.json``): what the distribution rule
writes and what the validator reads are held to the same document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from pydist.paths import PYTHON_JSON_SCHEMA


def validate_python_json(data: dict[str, Any], schema_path: Path = PYTHON_JSON_SCHEMA) -> list[str]:
    """Every schema violation of a PYTHON.json document, as one-line messages (empty when valid)."""
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        messages.append(f"PYTHON.json: {where}: {error.message}")
    return messages
