"""Our own event vocabulary, and the one place that translates the SDK's stream events into it.

Renderers and the replayer depend on these classes only, so an SDK upgrade touches this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TurnStarted:
    """A turn begins with `agent` answering."""

    agent: str


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply of `agent`, as it arrives."""

    agent: str
    text: str


@dataclass(frozen=True)
class AgentChanged:
    """The conversation was handed from `source` to `target` through the tool `tool`."""

    source: str
    target: str
    tool: str


@dataclass(frozen=True)
class ToolCalled:
    """`agent` called a (non-handoff) tool."""

    agent: str
    tool: str


@dataclass(frozen=True)
class Retrying:
    """A transient model fault; the request is sent again after `delay` seconds."""

    agent: str
    attempt: int
    max_retries: int
    delay: float
    reason: str


@dataclass(frozen=True)
class TurnEnded:
    """The turn completed; `agent` spoke last and will answer next (unless routing says else)."""

    agent: str
    text: str
    handoffs: tuple[AgentChanged, ...] = ()
    model_calls: int = 0
    tool_calls: int = 0


@dataclass(frozen=True)
class TurnFailed:
    """The turn did not complete; the stored conversation keeps the user's message only."""

    agent: str
    message: str
    interrupted: bool = False


Event = TurnStarted | TextDelta | AgentChanged | ToolCalled | Retrying | TurnEnded | TurnFailed


@dataclass
class StreamTranslator:
    """Turns SDK stream events into ours, tracking the speaking agent and the turn's totals."""

    agent: str
    text_parts: list[str] = field(default_factory=list)
    handoffs: list[AgentChanged] = field(default_factory=list)
    model_calls: int = 0
    tool_calls: int = 0
    pending_handoff_tool: str = ""
    response_open: bool = False
    stream_error: str | None = None

    def translate(self, event: Any) -> list[Event]:
        """Our events for one SDK `StreamEvent` (often none)."""
        kind = getattr(event, "type", None)
        if kind == "raw_response_event":
            data_type = getattr(event.data, "type", None)
            if data_type == "response.output_text.delta":
                self.text_parts.append(event.data.delta)
                return [TextDelta(self.agent, event.data.delta)]
            if data_type == "response.created":
                self.model_calls += 1
                self.response_open = True
                # Only the last model call's text is the reply; earlier text preceded a handoff.
                self.text_parts.clear()
            elif data_type in ("response.completed", "response.incomplete", "response.failed"):
                self.response_open = False
            elif data_type == "error":
                self.stream_error = f"{event.data.code}: {event.data.message}"
            return []
        if kind == "agent_updated_stream_event":
            self.agent = event.new_agent.name
            return []
        if kind == "run_item_stream_event":
            if event.name == "handoff_requested":
                self.pending_handoff_tool = _tool_name(event.item.raw_item)
                return []
            if event.name == "handoff_occured":
                changed = AgentChanged(event.item.source_agent.name, event.item.target_agent.name,
                                       self.pending_handoff_tool)
                self.handoffs.append(changed)
                self.agent = changed.target
                return [changed]
            if event.name == "tool_called":
                self.tool_calls += 1
                return [ToolCalled(self.agent, _tool_name(event.item.raw_item))]
        return []

    def ended(self) -> TurnEnded:
        """The TurnEnded event for what was seen."""
        return TurnEnded(self.agent, "".join(self.text_parts), tuple(self.handoffs),
                         self.model_calls, self.tool_calls)


def _tool_name(raw_item: Any) -> str:
    name = raw_item.get("name") if isinstance(raw_item, dict) else getattr(raw_item, "name", None)
    return str(name or "")
