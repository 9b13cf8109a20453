"""An agent's `output_schema` / `output_schema_file`: the JSON Schema its final answer follows.

The schema is checked here, where its place in the file is known: it must itself be a valid
JSON Schema (draft 2020-12) and describe a JSON object, the shape the model APIs can be asked
for. A file is JSON, or YAML (its positions are not needed: problems point at the key that
names it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from routing_runner.errors import ConfigError, Problem

from .document import Document, PathKey, parse_document
from .files import read_beside


def output_schema(document: Document, base: Path, spec: Mapping[str, Any], where: PathKey,
                  problems: list[Problem]) -> Mapping[str, Any] | None:
    """The agent's output schema (inline or from its file), or None; problems are added."""
    if "output_schema" in spec and "output_schema_file" in spec:
        problems.append(document.problem((*where, "output_schema_file"),
                                         "give one of 'output_schema' and 'output_schema_file'",
                                         key=True))
        return None
    if "output_schema" in spec:
        return _checked(document, (*where, "output_schema"), spec["output_schema"], problems)
    if "output_schema_file" not in spec:
        return None
    at: PathKey = (*where, "output_schema_file")
    loaded = _read(document, base, spec["output_schema_file"], at, problems)
    return None if loaded is None else _checked(document, at, loaded, problems)


def _read(document: Document, base: Path, relative: str, at: PathKey,
          problems: list[Problem]) -> Any:
    read = read_beside(document, base, relative, at, problems,
                       "must be a file in the config's folder or below it")
    if read is None:
        return None
    text, candidate = read
    shown = document.quote(at, relative)
    try:
        if candidate.suffix == ".json":
            return json.loads(text)
        return parse_document(text, str(candidate)).data
    except (ValueError, ConfigError) as exc:
        detail = exc.problems[0].message if isinstance(exc, ConfigError) and exc.problems \
            else str(exc)
        problems.append(document.problem(at, f"file {shown} is not valid JSON or YAML: {detail}"))
        return None


def _checked(document: Document, at: PathKey, schema: Any,
             problems: list[Problem]) -> Mapping[str, Any] | None:
    if not isinstance(schema, dict):
        problems.append(document.problem(at, "an output schema is a JSON Schema mapping"))
        return None
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        # An inline schema has positions down to the wrong value; a file's point at its key.
        inside = "/".join(str(p) for p in exc.absolute_path)
        problems.append(document.problem(
            (*at, *exc.absolute_path),
            f"not a valid JSON Schema{f' (at /{inside})' if inside else ''}: {exc.message}"))
        return None
    if schema.get("type") != "object":
        problems.append(document.problem(
            at, "the final answer must be a JSON object: give the schema 'type: object' "
                "(put a single value under a property)"))
        return None
    return schema
