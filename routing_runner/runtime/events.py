"""Our own event vocabulary: what a turn did, as the rest of the program sees it.

Renderers and the replayer depend on these classes only; `runtime.translate` is the one place
that turns the SDK's stream events into them, so an SDK upgrade touches that file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .usage import Tokens


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
    """`agent` called a (non-handoff) tool with `arguments` (JSON text), which gave `output`.

    A function or MCP tool is reported once its output is back; a hosted tool, whose output
    stays on the provider's side, when it is called (`output` None).
    """

    agent: str
    tool: str
    arguments: str = ""
    output: str | None = None


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
    # The answer of an agent with an output schema, parsed (its JSON text is `text`).
    output: Mapping[str, Any] | None = None
    # The guardrail that tripped: `text` is then its message, and the stored note.
    guardrail: str | None = None
    # Tokens per agent, in the order the agents were called (runtime.usage).
    usage: Mapping[str, Tokens] = field(default_factory=dict)
    tools: tuple[ToolCalled, ...] = ()


@dataclass(frozen=True)
class GuardrailTripped:
    """The guardrail `guardrail` stopped the turn of `agent`, for `reason` (may be empty)."""

    agent: str
    guardrail: str
    reason: str


@dataclass(frozen=True)
class TurnFailed:
    """The turn did not complete; the stored conversation keeps the user's message only."""

    agent: str
    message: str
    interrupted: bool = False


Event = (TurnStarted | TextDelta | AgentChanged | ToolCalled | Retrying | TurnEnded | TurnFailed
         | GuardrailTripped)


