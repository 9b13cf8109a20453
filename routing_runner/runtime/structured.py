"""Structured output: an agent's JSON Schema as the SDK's output type, validated with jsonschema.

The SDK's own `AgentOutputSchema` starts from a Python type; a config gives a JSON Schema, so
this is the SDK's `AgentOutputSchemaBase` over that schema. The schema is sent non-strict (the
APIs' strict mode forbids much of JSON Schema: optional properties, formats, bounds), and the
answer is validated here against all of it; an answer that does not fit fails the turn with
the first violation, as any answer the runner cannot use does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agents.agent_output import AgentOutputSchemaBase
from agents.exceptions import ModelBehaviorError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match


class JsonSchemaOutput(AgentOutputSchemaBase):
    """The final answer of an agent is JSON following `schema`."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = dict(schema)
        self._validator = Draft202012Validator(self.schema)

    def is_plain_text(self) -> bool:
        """Never: the answer is a JSON object."""
        return False

    def name(self) -> str:
        """The output type's name, as traces show it."""
        return "final_answer"

    def json_schema(self) -> dict[str, Any]:
        """The schema as configured."""
        return self.schema

    def is_strict_json_schema(self) -> bool:
        """Not strict (see the module docstring); validation happens in `validate_json`."""
        return False

    def validate_json(self, json_str: str) -> Any:
        """The parsed answer; ModelBehaviorError saying what is wrong when it does not fit."""
        try:
            value = json.loads(json_str)
        except ValueError as exc:
            raise ModelBehaviorError(f"the answer is not JSON ({exc})") from None
        error = best_match(self._validator.iter_errors(value))
        if error is not None:
            where = "/" + "/".join(str(p) for p in error.absolute_path)
            raise ModelBehaviorError(
                f"the answer does not follow output_schema at {where}: {error.message}")
        return value


def sdk_output_type(schema: Mapping[str, Any] | None) -> JsonSchemaOutput | None:
    """The SDK output type of an agent: None for text answers."""
    return None if schema is None else JsonSchemaOutput(schema)


# What a guardrail's classifier agent answers.
VERDICT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"tripped": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["tripped", "reason"],
    "additionalProperties": False,
}


class VerdictOutput(JsonSchemaOutput):
    """A guardrail classifier's answer: {tripped, reason}."""

    def __init__(self) -> None:
        super().__init__(VERDICT_SCHEMA)

    def name(self) -> str:
        """The output type's name, as traces show it."""
        return "guardrail_verdict"

    def is_strict_json_schema(self) -> bool:
        """Strict: the verdict schema is within what strict mode allows."""
        return True
