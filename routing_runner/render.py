"""Terminal rendering of turn events: streamed text under the speaking agent's name.

Model output is untrusted: control characters, escape sequences and bidi overrides are shown
inert (`wording.inert`), never passed to the terminal; `wording.Style` colours it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TextIO

from .runtime.events import (
    AgentChanged,
    Event,
    GuardrailTripped,
    Retrying,
    TextDelta,
    ToolCalled,
    TurnEnded,
    TurnFailed,
)
from .wording import Style, inert

TOOL_LINE_LIMIT = 160


def tool_line(event: ToolCalled, limit: int = TOOL_LINE_LIMIT) -> str:
    """`  [tool] name {arguments} -> output` on one line, cut to `limit` characters."""
    text = " ".join(f"{event.tool} {event.arguments}".split())
    if event.output is not None:
        text += " -> " + " ".join(event.output.split())
    return "  [tool] " + (text if len(text) <= limit else text[:limit - 1] + "…")


@dataclass
class TurnRenderer:
    """Writes a turn's events to `out` as they arrive."""

    out: TextIO
    style: Style
    _speaking: str | None = field(default=None, init=False)

    def _end_line(self) -> None:
        if self._speaking is not None:
            self.out.write("\n")
            self._speaking = None

    def render(self, event: Event) -> None:
        """Show one event."""
        if isinstance(event, TextDelta):
            if self._speaking != event.agent:
                self._end_line()
                self.out.write(f"{self.style.agent(inert(event.agent))}: ")
                self._speaking = event.agent
            self.out.write(inert(event.text))
        elif isinstance(event, AgentChanged):
            self._end_line()
            self.out.write(self.style.dim(inert(f"  [handoff] {event.source} -> {event.target}"))
                           + "\n")
        elif isinstance(event, GuardrailTripped):
            self._end_line()
            reason = f": {event.reason}" if event.reason else ""
            self.out.write(self.style.dim(inert(f"  [guardrail] {event.guardrail}{reason}"))
                           + "\n")
        elif isinstance(event, ToolCalled):
            self._end_line()
            self.out.write(self.style.dim(inert(tool_line(event))) + "\n")
        elif isinstance(event, Retrying):
            self._end_line()
            self.out.write(self.style.dim(inert(
                f"  [retry] {event.reason}; retrying in {event.delay:.1f}s "
                f"({event.attempt}/{event.max_retries})")) + "\n")
        elif isinstance(event, TurnEnded):
            self._end_line()
            if event.output is not None:
                pretty = json.dumps(event.output, indent=2, ensure_ascii=False)
                self.out.write(f"{self.style.agent(inert(event.agent))}:\n"
                               + "\n".join(inert(line) for line in pretty.splitlines()) + "\n")
        elif isinstance(event, TurnFailed):
            self._end_line()
            what = "interrupted" if event.interrupted else "error"
            self.out.write(self.style.error(f"  [{what}] {inert(event.message)}") + "\n")
        self.out.flush()

    def interrupted(self) -> None:
        """Show that the user interrupted the reply."""
        self.render(TurnFailed(self._speaking or "", "reply interrupted; the conversation keeps "
                                                    "your message", interrupted=True))
