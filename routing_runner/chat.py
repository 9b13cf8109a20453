"""The multi-turn chat loop: read a message, run a turn, render it, repeat.

The loop owns one event loop for the whole chat (the session and the model clients live on it)
and reads input between turns. Ctrl-C during a reply cancels that turn only: the turn runner
rolls the stored conversation back to the user's message and the loop returns to the prompt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from .graph import AgentGraph
from .render import Style, TurnRenderer, inert
from .sessions import Conversation
from .turns import TurnRunner

HELP = "Type a message. /exit or end of input (Ctrl-D) ends the chat; Ctrl-C interrupts a reply."
COMMANDS = {"/exit": "end the chat", "/quit": "end the chat", "/help": "show this help"}


@dataclass
class ChatLoop:
    """A chat on `conversation`, reading lines with `read_line` (None at end of input)."""

    graph: AgentGraph
    conversation: Conversation
    read_line: Callable[[str], str | None]
    out: TextIO
    style: Style
    echo_input: bool = False

    def run(self) -> None:
        """Chat until /exit or end of input."""
        runner = TurnRunner(self.graph)
        renderer = TurnRenderer(self.out, self.style)
        with asyncio.Runner() as loop:
            while True:
                line = self.read_line(self.style.agent("you") + "> ")
                if line is None:
                    return
                message = line.strip()
                if not message:
                    continue
                if message.startswith("/"):
                    if self._command(message):
                        return
                    continue
                if self.echo_input:
                    self.out.write(f"you: {inert(message)}\n")
                try:
                    loop.run(self._turn(runner, renderer, message))
                except KeyboardInterrupt:
                    renderer.interrupted()

    async def _turn(self, runner: TurnRunner, renderer: TurnRenderer, message: str) -> None:
        async for event in runner.run(self.conversation, message):
            renderer.render(event)

    def _command(self, command: str) -> bool:
        """Handle a /command; True when the chat should end."""
        name = command.split()[0].lower()
        if name in ("/exit", "/quit"):
            return True
        if name == "/help":
            self.out.write(HELP + "\n" + "".join(f"  {c:<8} {d}\n" for c, d in COMMANDS.items()))
        else:
            self.out.write(f"unknown command {inert(name)!r}; /help lists the commands\n")
        return False
