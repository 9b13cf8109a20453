"""The multi-turn chat loop: read a message, run a turn, render it, repeat.

The loop owns one event loop for the whole chat (the session and the model clients live on it)
and reads input between turns. Ctrl-C during a reply cancels that turn only: the turn runner
rolls the stored conversation back to the user's message and the loop returns to the prompt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from .events import TurnEnded
from .graph import AgentGraph
from .render import Style, TurnRenderer, inert
from .sessions import Conversation, SessionStore
from .turns import TurnRunner

HELP = "Type a message. /exit or end of input (Ctrl-D) ends the chat; Ctrl-C interrupts a reply."
COMMANDS = {"/exit": "end the chat", "/quit": "end the chat",
            "/retry": "send the last message again after a failed or interrupted reply",
            "/help": "show this help"}


@dataclass
class ChatLoop:
    """A chat on conversation `session_id` of `store`, reading lines with `read_line`.

    `read_line` returns None at end of input. `on_open` is told the opened conversation and the
    agent that will answer first, before the first prompt. `on_turn`, when given, is told each
    completed turn: the user's message and its TurnEnded (`chat --record` writes them down).
    """

    graph: AgentGraph
    store: SessionStore
    session_id: str
    read_line: Callable[[str], str | None]
    out: TextIO
    style: Style
    on_open: Callable[[Conversation, str], None]
    echo_input: bool = False
    on_turn: Callable[[str, TurnEnded], None] | None = None
    failed_turns: int = field(default=0, init=False)
    _unanswered: str | None = field(default=None, init=False)

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
                loop.run(self.graph.aclose())
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
            if message.lower() in ("/retry", "/r"):
                if self._unanswered is None:
                    self.out.write("nothing to retry: the last message was answered\n")
                    continue
                message = self._unanswered
                # The failed turn kept the message; take it back so it is stored once.
                loop.run(conversation.session.pop_item())
            elif message.startswith("/"):
                if self._command(message):
                    return
                continue
            if self.echo_input:
                self.out.write(f"you: {inert(message)}\n")
            self._unanswered = message
            try:
                if loop.run(self._turn(runner, renderer, conversation, message)):
                    self._unanswered = None
                else:
                    self.failed_turns += 1
            except KeyboardInterrupt:
                renderer.interrupted()

    async def _turn(self, runner: TurnRunner, renderer: TurnRenderer,
                    conversation: Conversation, message: str) -> bool:
        """Run and render one turn; True when it ended with a reply."""
        ended = False
        async for event in runner.run(conversation, message):
            renderer.render(event)
            ended = isinstance(event, TurnEnded)
            if isinstance(event, TurnEnded) and self.on_turn is not None:
                self.on_turn(message, event)
        return ended

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
