"""Schema validation of a parsed document, every error located in the source file.

Schemas ship inside the wheel (`routing_runner/schemas/`) and live at the top of the source
tree (`schemas/`); they are looked up in that order so both `pip install .` and
`pip install -e .` find them.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from routing_runner.errors import Problem
from routing_runner.wording import count, did_you_mean

from .document import Document, PathKey


def schema_path(name: str) -> Path:
    """The file of schema `name` (e.g. "config"), packaged copy first, then the source tree."""
    filename = f"{name}.schema.json"
    packaged = resources.files("routing_runner").joinpath("schemas").joinpath(filename)
    if packaged.is_file():
        return Path(str(packaged))
    source_tree = Path(__file__).resolve().parents[2] / "schemas" / filename
    if source_tree.is_file():
        return source_tree
    raise FileNotFoundError(f"schema {filename} is missing from the installation")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema `name`."""
    schema: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return schema


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def validate(document: Document, schema_name: str) -> list[Problem]:
    """Every schema problem of `document`, in file order."""
    problems: list[Problem] = []
    for error in _validator(schema_name).iter_errors(document.data):
        problems.extend(_explain(document, error))
    unique = {(p.line, p.column, p.path, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.line, p.column, p.message))


def _explain(document: Document, error: ValidationError) -> list[Problem]:
    path: PathKey = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        return _unknown_keys(document, path, error.instance, schema)
    if error.validator in ("oneOf", "anyOf"):
        branch = _only_matching_branch(error)
        if branch is not None:
            return [p for sub in branch for p in _explain(document, sub)]
    if "errorMessage" in schema and error.validator != "type":
        return [document.problem(path, str(schema["errorMessage"]))]
    return [document.problem(path, _message(error, document.quote(path, error.instance)))]


def _only_matching_branch(error: ValidationError) -> list[ValidationError] | None:
    """The sub-errors of the one branch whose type fits the value, if exactly one does."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    fitting = [
        errors for errors in branches.values()
        if not any(e.validator == "type" and not e.relative_path for e in errors)
        and not any(e.validator == "$ref" for e in errors)
    ]
    return fitting[0] if len(fitting) == 1 else None


def _unknown_keys(document: Document, path: PathKey, instance: dict[str, Any],
                  schema: dict[str, Any]) -> list[Problem]:
    known = list(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    problems = []
    for key in instance:
        if key in known or any(p.search(str(key)) for p in patterns):
            continue
        if not known:
            message = (f"{key!r} is not a valid name (names start with a letter and use "
                       "letters, digits, '-' and '_')")
        else:
            hint = did_you_mean(str(key), known) or (
                f" (expected one of: {', '.join(known)}; or an x-* note)")
            message = f"unknown key {key!r}{hint}"
        problems.append(document.problem((*path, key), message, key=True))
    return problems


def _message(error: ValidationError, shown: str) -> str:
    """What is wrong; the value appears only as `shown` (as the document quotes it)."""
    validator, instance = error.validator, error.instance
    value: Any = error.validator_value
    if validator == "required":
        missing = [k for k in value if isinstance(instance, dict) and k not in instance]
        return f"missing required key {missing[0]!r}" if missing else error.message
    if validator == "type":
        expected = value if isinstance(value, str) else " or ".join(value)
        return f"expected {_article(expected)}, got {_kind(instance, shown)}"
    if validator == "enum":
        return f"{shown} is not one of: {', '.join(map(str, value))}" + did_you_mean(
            str(instance), [str(v) for v in value])
    if validator == "const":
        return f"must be {value!r}, got {shown}"
    if validator == "pattern":
        return f"{shown} does not have the expected form ({value})"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        word = {"minimum": "at least", "maximum": "at most",
                "exclusiveMinimum": "more than", "exclusiveMaximum": "less than"}[validator]
        return f"must be {word} {value}, got {shown}"
    if validator == "minLength" and value == 1:
        return "must not be empty"
    if validator == "minProperties":
        return f"must have at least {count(value, 'entry', 'entries')}"
    # jsonschema's own messages quote the value; show it the way the document does.
    return error.message.replace(repr(instance), shown)


def _article(kind: str) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string",
             "integer": "an integer", "number": "a number", "boolean": "true or false",
             "null": "nothing"}
    return names.get(kind, kind)


def _kind(value: Any, shown: str) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({shown})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"a number ({shown})"
    return f"a string ({shown})"
