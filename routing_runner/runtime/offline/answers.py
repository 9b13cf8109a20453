"""The offline model's answer for an agent with an output schema: a JSON object that fits it.

Deterministic: every property of an object is filled (required or not), each value from the
schema's own words first - `const`, the first of `enum`, `default`, the first of `examples` -
else the simplest value of its type: a string is the latest user message (cut or padded to
the length bounds), a number the lowest the bounds allow, a boolean true, a list as many
items as `minItems` asks (at least one). `anyOf` / `oneOf` take their first branch, `allOf`
its branches merged, `$ref` the local definition it names. A `pattern` or `format` cannot be
guessed: give such a property a `default` or `examples` for offline runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_MAX_DEPTH = 16


def example(schema: Mapping[str, Any], text: str) -> Any:
    """A value following `schema`, using `text` for free-form strings."""
    return _Example(schema, text).value(schema, 0)


class _Example:
    def __init__(self, root: Mapping[str, Any], text: str) -> None:
        self.root = root
        self.text = text

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        reference = schema.get("$ref")
        if not isinstance(reference, str) or not reference.startswith("#/"):
            return schema
        target: Any = self.root
        for part in reference[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) \
                if isinstance(target, Mapping) else {}
        return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}

    def value(self, schema: Mapping[str, Any], depth: int) -> Any:
        schema = self.resolve(schema)
        for word in ("const", "default"):
            if word in schema:
                return schema[word]
        for word in ("enum", "examples"):
            if isinstance(schema.get(word), list) and schema[word]:
                return schema[word][0]
        for word in ("anyOf", "oneOf"):
            if isinstance(schema.get(word), list) and schema[word]:
                return self.value({**schema, word: None, **schema[word][0]}, depth + 1)
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, self.resolve(part))
            return self.value(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        return self.typed(kind, schema, depth)

    def typed(self, kind: str, schema: Mapping[str, Any], depth: int) -> Any:
        if depth > _MAX_DEPTH:
            return None
        if kind == "object":
            properties = schema.get("properties", {})
            return {name: self.value(sub, depth + 1) for name, sub in properties.items()}
        if kind == "array":
            count = max(1, int(schema.get("minItems", 1)))
            if "maxItems" in schema:
                count = min(count, int(schema["maxItems"]))
            items = schema.get("items", {})
            return [self.value(items if isinstance(items, Mapping) else {}, depth + 1)
                    for _ in range(count)]
        if kind in ("integer", "number"):
            return _number(kind, schema)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(self.text, schema)


def _merge(left: dict[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**left, **right}
    if "properties" in left and "properties" in right:
        merged["properties"] = {**left["properties"], **right["properties"]}
    return merged


def _number(kind: str, schema: Mapping[str, Any]) -> int | float:
    low: float = 0
    if "minimum" in schema:
        low = schema["minimum"]
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + (1 if kind == "integer" else 0.5)
    if "maximum" in schema and low > schema["maximum"]:
        low = schema["maximum"]
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0 and low % step:
        low = (low // step + 1) * step
    return int(low) if kind == "integer" else float(low)


def _string(text: str, schema: Mapping[str, Any]) -> str:
    value = " ".join(text.split()) or "-"
    if "maxLength" in schema:
        value = value[:int(schema["maxLength"])].rstrip()
    return value.ljust(int(schema.get("minLength", 0)), ".")


# A word or phrase quoted in a classifier's instructions: "refund", 'chargeback', “weather”.
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']+)'|“([^”]+)”")


def verdict(instructions: str, text: str) -> dict[str, Any]:
    """A guardrail classifier's offline verdict: tripped when `text` holds a quoted term.

    The terms are what the instructions quote ('Trip when the message is about "refunds"');
    matching ignores case. Instructions that quote nothing never trip offline.
    """
    folded = text.casefold()
    for match in _QUOTED.finditer(instructions):
        term = next(group for group in match.groups() if group is not None)
        if term.strip() and term.casefold() in folded:
            return {"tripped": True, "reason": f"the text mentions {term!r}"}
    return {"tripped": False, "reason": "no term the instructions quote is in the text"}
