"""Environment interpolation in a parsed document's string values.

    ${VAR}             the variable's value; an error when it is unset
    ${VAR:-default}    the default when VAR is unset or empty
    ${VAR-default}     the default only when VAR is unset
    ${VAR:?message}    an error saying `message` when VAR is unset or empty
    $$                 a literal dollar sign

Keys are never interpolated, and neither is anything under an `x-*` key (user notes may well
contain `${...}` as text). An unquoted value that is only interpolation is re-typed the way YAML
would type it, so `temperature: ${TEMP:-0.2}` gives a number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from routing_runner.errors import Problem
from routing_runner.user_text import has_surrogates

from .document import Document, PathKey

_TOKEN = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:-|-|:\?)(?P<arg>[^}]*))?\}|(?P<bad>\{[^}]*\}?))"
)


class _Unresolved(Exception):
    pass


def _expand(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        if match["bad"] is not None:
            raise _Unresolved(f"malformed interpolation '${match['bad']}': use ${{NAME}}, "
                              "${NAME:-default} or ${NAME:?message}, and $$ for a dollar sign")
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op == ":?":
            if not value:
                raise _Unresolved(f"environment variable {name} is required: "
                                  f"{arg or 'it is unset or empty'}")
            return value
        if value is None:
            raise _Unresolved(f"environment variable {name} is not set (set it, or write "
                              f"${{{name}:-default}} to give a default)")
        return value

    def replace(match: re.Match[str]) -> str:
        expanded = substitute(match)
        if has_surrogates(expanded):
            # The environment is decoded with surrogateescape; such text cannot be sent.
            raise _Unresolved(f"environment variable {match['name']} holds bytes that are "
                              "not UTF-8 text")
        return expanded

    return _TOKEN.sub(replace, text)


def _retype(text: str) -> Any:
    """Type an interpolated plain scalar as YAML would type a number or a boolean.

    An empty or "null" result stays a string: a variable set to nothing is not "no value".
    """
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, bool | int | float) else text


def interpolate(document: Document, env: Mapping[str, str]) -> list[Problem]:
    """Expand `${...}` in every string value of `document` in place; return the problems."""
    problems: list[Problem] = []

    def walk(value: Any, path: PathKey) -> Any:
        if isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str) and key.startswith("x-"):
                    continue
                value[key] = walk(child, (*path, key))
            return value
        if isinstance(value, list):
            return [walk(child, (*path, i)) for i, child in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            try:
                expanded = _expand(value, env)
            except _Unresolved as exc:
                problems.append(document.problem(path, str(exc)))
                return value
            if any(match["name"] for match in _TOKEN.finditer(value)):
                document.interpolated[path] = value
            if path in document.plain_scalars and _TOKEN.fullmatch(value.strip()):
                return _retype(expanded)
            return expanded
        return value

    document.data = walk(document.data, ())
    return problems
