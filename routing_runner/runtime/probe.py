"""What each model call was given, captured at the model boundary (`expect.history_seen`).

The SDK builds a model call's input from the session, the run's new items and a handoff's
input filter; what the answering agent actually received is known only where the model is
called. `InputProbe.wrap` is a `build_graph` model hook that notes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agents import Model, ModelResponse
from agents.items import TResponseStreamEvent

from .wrapped import WrappedModel

# Input item types that are a tool (or handoff) call or its output.
_TOOL_ITEMS = frozenset({"function_call", "function_call_output", "custom_tool_call",
                         "custom_tool_call_output", "computer_call", "computer_call_output"})


@dataclass(frozen=True)
class SeenInput:
    """One model call's input: how many items, and how many were tool calls or outputs."""

    agent: str
    items: int
    tool_items: int


def seen_input(agent: str, input: str | list[Any]) -> SeenInput:
    """What a model call with `input` was given."""
    if isinstance(input, str):
        return SeenInput(agent, 1, 0)
    tools = sum(isinstance(item, dict) and item.get("type") in _TOOL_ITEMS for item in input)
    return SeenInput(agent, len(input), tools)


class InputProbe:
    """Notes the input of every model call of a conversation, until taken."""

    def __init__(self) -> None:
        self.calls: list[SeenInput] = []

    def wrap(self, agent: str, model: Model) -> Model:
        """`model`, its calls noted here (a `build_graph` model hook)."""
        return ProbedModel(model, self, agent)

    def take(self) -> list[SeenInput]:
        """The calls noted since the last take (a turn's calls, in order)."""
        calls, self.calls = self.calls, []
        return calls


class ProbedModel(WrappedModel):
    """An agent's model whose inputs an `InputProbe` notes."""

    def __init__(self, inner: Model, probe: InputProbe, agent: str) -> None:
        super().__init__(inner)
        self.probe = probe
        self.agent = agent

    def _note(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        given = args[1] if len(args) > 1 else kwargs["input"]
        self.probe.calls.append(seen_input(self.agent, given))

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """The inner model's response; its input noted."""
        self._note(args, kwargs)
        return await self.inner.get_response(*args, **kwargs)

    async def stream_response(self, *args: Any,
                              **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        """The inner model's stream; its input noted."""
        self._note(args, kwargs)
        async for event in self.inner.stream_response(*args, **kwargs):
            yield event
