"""`expect.tools`: which tools a turn called, with which arguments, in which order.

    expect:
      tools:
        calls: [{name: lookup_order, args: {order_id: A1}}]   # args: a subset match
        order: in_order                                     # exact | in_order | any
        not_called: [refund]

A list in place of the mapping is its `calls`, in order. `exact` wants the calls and no
others, in this order; `in_order` these calls in this order, others allowed between them;
`any` these calls in any order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from routing_runner.config.model import Config
from routing_runner.config.tools import FunctionToolConfig, McpToolConfig
from routing_runner.runtime.events import ToolCalled

Order = Literal["exact", "in_order", "any"]


@dataclass(frozen=True)
class ToolCallCheck:
    """One expected call: the tool's name and a subset of its arguments.

    Plain containers: a replay worker sends its turns to the parent (pickle).
    """

    name: str
    args: Mapping[str, Any] | None = None

    def matches(self, call: ToolCalled) -> bool:
        """Whether `call` is this tool, with (at least) these arguments."""
        return call.tool == self.name and (self.args is None
                                           or _subset(self.args, _arguments(call)))

    def __str__(self) -> str:
        if self.args is None:
            return self.name
        return f"{self.name} {json.dumps(dict(self.args), ensure_ascii=False, sort_keys=True)}"


@dataclass(frozen=True)
class ToolsExpectation:
    """The calls a turn must make (in `order`) and the tools it must not call."""

    calls: tuple[ToolCallCheck, ...] = ()
    order: Order = "in_order"
    not_called: tuple[str, ...] = ()

    @classmethod
    def from_raw(cls, raw: Sequence[Any] | Mapping[str, Any]) -> ToolsExpectation:
        """From the schema-valid `expect.tools` value."""
        spec: Mapping[str, Any] = {"calls": raw} if isinstance(raw, list) else raw  # type: ignore[assignment]
        calls = tuple(
            ToolCallCheck(c, None) if isinstance(c, str)
            else ToolCallCheck(c["name"], dict(c["args"]) if "args" in c else None)
            for c in spec.get("calls", ()))
        return cls(calls, spec.get("order", "in_order"), tuple(spec.get("not_called", ())))

    def names(self) -> list[str]:
        """Every tool name this expectation mentions."""
        return [c.name for c in self.calls] + list(self.not_called)

    def missed(self, calls: Sequence[ToolCalled]) -> str | None:
        """What is wrong with `calls`, or None when they satisfy this expectation."""
        forbidden = sorted({c.tool for c in calls if c.tool in self.not_called})
        if forbidden:
            return f"not to call {', '.join(forbidden)}"
        if not self._calls_match(list(calls)):
            joined = ", then " if self.order != "any" else ", "
            words = {"exact": "exactly ", "in_order": "", "any": "in any order "}[self.order]
            return f"{words}{joined.join(str(c) for c in self.calls)}"
        return None

    def _calls_match(self, calls: list[ToolCalled]) -> bool:
        if self.order == "exact":
            return len(calls) == len(self.calls) and all(
                check.matches(call) for check, call in zip(self.calls, calls, strict=True))
        if self.order == "in_order":
            remaining = iter(calls)
            return all(any(check.matches(call) for call in remaining) for check in self.calls)
        unused = list(calls)
        for check in self.calls:
            found = next((call for call in unused if check.matches(call)), None)
            if found is None:
                return False
            unused.remove(found)
        return True


def known_tool_names(config: Config) -> set[str] | None:
    """The names the model can call tools by; None when an MCP server's tools are among them
    (they are known once the server runs)."""
    if any(isinstance(entry.spec, McpToolConfig) for entry in config.tools.values()):
        return None
    return {entry.spec.tool_name for entry in config.tools.values()
            if isinstance(entry.spec, FunctionToolConfig)}


def describe_calls(calls: Sequence[ToolCalled]) -> str:
    """The observed calls on one line, as an expectation mismatch shows them."""
    if not calls:
        return "no tool calls"
    return ", then ".join(f"{c.tool} {' '.join(c.arguments.split())}".strip() for c in calls)


def _arguments(call: ToolCalled) -> Any:
    try:
        return json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return None


def _subset(expected: Any, observed: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(observed, Mapping) and all(
            key in observed and _subset(value, observed[key]) for key, value in expected.items())
    return bool(expected == observed)
