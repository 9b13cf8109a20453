"""When the offline model calls an agent's tools: a fixed rule, so a tools config runs with no key.

- It calls a tool when the latest user message names it - `lookup_order`, or with spaces
  for underscores, `lookup order`, in any case - and the tool was not yet called since that
  message. Routing by language comes first: a message for another agent is handed off.
- Arguments: `name=value` pairs in the message (`order_id=A1`) fill the parameters they name;
  every other required text parameter takes, in order, the next word of the message holding
  a digit (`A1` in "lookup order A1"). Other parameters are left out.
- Once the tool's output is back, it answers as usual and quotes each output of this turn.

Hosted tools run on OpenAI's servers and are never called offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agents import FunctionTool, Tool

from routing_runner.stores.items import output_text

_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)")
_WORD = re.compile(r"[\w-]+")


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def this_turn(items: Sequence[Any]) -> list[Any]:
    """The items after the latest user message: what this turn has done so far."""
    for index in range(len(items) - 1, -1, -1):
        if _field(items[index], "role") == "user":
            return list(items[index + 1:])
    return list(items)


def _names(message: str, tool: str) -> bool:
    text = message.lower()
    return tool.lower() in text or tool.lower().replace("_", " ") in text


def tool_call(latest: str, turn: Sequence[Any], tools: Sequence[Tool]) -> tuple[str, str] | None:
    """The (tool name, JSON arguments) the offline model calls now, or None."""
    called = {_field(item, "name") for item in turn if _field(item, "type") == "function_call"}
    for tool in tools:
        if isinstance(tool, FunctionTool) and tool.name not in called and _names(latest, tool.name):
            return tool.name, json.dumps(_arguments(latest, tool.params_json_schema))
    return None


def _arguments(message: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    given = {k: v for k, v in _PAIR.findall(message) if k in properties}
    ids = iter(w for w in _WORD.findall(_PAIR.sub(" ", message))
               if any(c.isdigit() for c in w))
    for name in schema.get("required", ()):
        if name not in given and properties.get(name, {}).get("type") == "string":
            value = next(ids, None)
            if value is not None:
                given[name] = value
    return given


def tool_results(turn: Sequence[Any], tools: Sequence[Tool]) -> list[tuple[str, str]]:
    """(tool name, output) of every call of `tools` this turn, in order."""
    names = {tool.name for tool in tools if isinstance(tool, FunctionTool)}
    calls = {_field(item, "call_id"): _field(item, "name") for item in turn
             if _field(item, "type") == "function_call"}
    results = []
    for item in turn:
        if _field(item, "type") == "function_call_output":
            name = calls.get(_field(item, "call_id"))
            if name in names:
                results.append((str(name), output_text(_field(item, "output"))))
    return results
