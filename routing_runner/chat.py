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
from .sessions import Conversation, SessionStore
from .turns import TurnRunner

HELP = "Type a message. /exit or end of input (Ctrl-D) ends the chat; Ctrl-C interrupts a reply."
COMMANDS = {"/exit": "end the chat", "/quit": "end the chat", "/help": "show this help"}


@dataclass
class ChatLoop:
    """A chat on conversation `session_id` of `store`, reading lines with `read_line`.

    `read_line` returns None at end of input. `on_open` is told the opened conversation and the
    agent that will answer first, before the first prompt.
    """

    graph: AgentGraph
    store: SessionStore
    session_id: str
    read_line: Callable[[str], str | None]
    out: TextIO
    style: Style
    on_open: Callable[[Conversation, str], None]
    echo_input: bool = False

    def run(self) -> None:
        """Chat until /exit or end of input; the store is closed on the way out."""
        runner = TurnRunner(self.graph)
        renderer = TurnRenderer(self.out, self.style)
        with asyncio.Runner() as loop:
            try:
                conversation = loop.run(self.store.open(self.session_id))
                self.on_open(conversation, loop.run(runner.agent_for(conversation)).name)
                self._loop(loop, runner, renderer, conversation)
            finally:
                loop.run(self.store.close())

    def _loop(self, loop: asyncio.Runner, runner: TurnRunner, renderer: TurnRenderer,
              conversation: Conversation) -> None:
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
                loop.run(self._turn(runner, renderer, conversation, message))
            except KeyboardInterrupt:
                renderer.interrupted()

    async def _turn(self, runner: TurnRunner, renderer: TurnRenderer,
                    conversation: Conversation, message: str) -> None:
        async for event in runner.run(conversation, message):
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
