"""`expect.json`: checks on a structured answer, as a subset and by JSON Pointer.

    expect:
      json:
        status: shipped            # the answer holds at least these keys with these values
        /items/0/sku: B-7          # a key starting with '/' is a JSON Pointer (RFC 6901)

A subset matches when every expected key is present and matches: mappings recursively, lists
item by item with the same length, anything else by equality. A pointer's value matches the
value it points at the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A pointer's escapes are ~0 ('~') and ~1 ('/'); any other '~' is a mistake.
_BAD_ESCAPE = re.compile(r"~(?![01])")


@dataclass(frozen=True)
class JsonCheck:
    """The value expected at `pointer` ("" is the whole answer, matched as a subset)."""

    pointer: str
    expected: Any


def json_checks(raw: Mapping[str, Any]) -> tuple[JsonCheck, ...]:
    """The checks of an `expect.json` mapping: one subset check, then the pointers in order."""
    subset = {k: v for k, v in raw.items() if not k.startswith("/")}
    pointers = [JsonCheck(k, v) for k, v in raw.items() if k.startswith("/")]
    return ((JsonCheck("", subset),) if subset else ()) + tuple(pointers)


def pointer_problem(pointer: str) -> str | None:
    """Why `pointer` is not a JSON Pointer, or None."""
    if _BAD_ESCAPE.search(pointer):
        return (f"{pointer!r} is not a JSON Pointer: '~' must be written ~0 "
                "(and '/' inside a key ~1)")
    return None


def check_json(checks: tuple[JsonCheck, ...], output: Mapping[str, Any] | None,
               text: str) -> list[tuple[str, str]]:
    """(expected, got) of each check `output` misses; all when the agent answered text.

    The report shows the whole answer beside them (its text); `got` says where it differs.
    """
    if not checks:
        return []
    if output is None:
        return [(_show(check.expected) if not check.pointer else
                 f"{check.pointer} = {_show(check.expected)}",
                 f"no JSON answer (the agent answered text: {_show(text[:60])})")
                for check in checks]
    missed = []
    for check in checks:
        found, value = _resolve(output, check.pointer)
        difference = _difference(check.expected, value, check.pointer) if found else \
            f"{check.pointer} is missing"
        if difference is not None:
            shown = _show(check.expected)
            missed.append((f"{check.pointer} = {shown}" if check.pointer else shown,
                           difference))
    return missed


def _resolve(document: Any, pointer: str) -> tuple[bool, Any]:
    value = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, Mapping) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return False, None
    return True, value


def _difference(expected: Any, got: Any, at: str) -> str | None:
    """Where `got` does not contain `expected`, in words; None when it does."""
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"{at or '/'} is {_show(got)}, not a mapping"
        for key, value in expected.items():
            where = f"{at}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if key not in got:
                return f"{where} is missing"
            difference = _difference(value, got[key], where)
            if difference is not None:
                return difference
        return None
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return f"{at or '/'} is {_show(got)}"
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            difference = _difference(want, have, f"{at}/{index}")
            if difference is not None:
                return difference
        return None
    # JSON has one number type: 1 and 1.0 are equal, but true is not 1.
    if expected == got and isinstance(expected, bool) == isinstance(got, bool):
        return None
    return f"{at or '/'} is {_show(got)}"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
