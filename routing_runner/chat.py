"""The multi-turn chat loop: read a message, run a turn, render it, repeat.

The prompt appears at once: the Agents SDK (over a second to import) loads and the agent graph
is built on a thread while the user types, and the conversation is reserved - refused if
another process has it - without the SDK. The loop owns one event loop for the whole chat (the
session and the model clients live on it) and reads input between turns. Ctrl-C during a reply
cancels that turn only: the turn runner rolls the stored conversation back to the user's
message and the loop returns to the prompt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from .config import Config
from .events import TurnEnded
from .render import Style, TurnRenderer, inert
from .sessions import Conversation, Reservation, SessionStore
from .user_text import check_chat_line

if TYPE_CHECKING:
    from .graph import AgentGraph
    from .turns import TurnRunner

HELP = "Type a message. /exit or end of input (Ctrl-D) ends the chat; Ctrl-C interrupts a reply."
COMMANDS = {"/exit": "end the chat", "/quit": "end the chat",
            "/retry": "send the last message again after a failed or interrupted reply",
            "/help": "show this help"}


def _load(build: Callable[[], AgentGraph]) -> AgentGraph:
    graph = build()
    graph.warm_up()
    return graph


@dataclass
class _Ready:
    """What the first message waits for: the graph, its runner, the opened conversation."""

    graph: AgentGraph
    runner: TurnRunner
    conversation: Conversation


@dataclass
class ChatLoop:
    """A chat on conversation `session_id` of `store`, reading lines with `read_line`.

    `build_graph` is called on a background thread. `read_line` returns None at end of input.
    `on_open` is told the reserved conversation and the agent that will answer first, before
    the first prompt. `on_turn`, when given, is told each completed turn: the user's message
    and its TurnEnded (`chat --record` writes them down).
    """

    config: Config
    build_graph: Callable[[], AgentGraph]
    store: SessionStore
    session_id: str
    read_line: Callable[[str], str | None]
    out: TextIO
    style: Style
    on_open: Callable[[Reservation, str], None]
    echo_input: bool = False
    on_turn: Callable[[str, TurnEnded], None] | None = None
    failed_turns: int = field(default=0, init=False)
    _unanswered: str | None = field(default=None, init=False)

    def run(self) -> None:
        """Chat until /exit or end of input; the store is closed on the way out."""
        renderer = TurnRenderer(self.out, self.style)
        with ThreadPoolExecutor(1, thread_name_prefix="load-agents") as background, \
                asyncio.Runner() as loop:
            loading: Future[AgentGraph] | None = None
            try:
                # Reserve before loading: a shared store's driver may import the SDK itself,
                # and two threads importing one package at once can break its import.
                reservation = loop.run(self.store.reserve(self.session_id))
                loading = background.submit(_load, self.build_graph)
                last = reservation.summary.last_agent if reservation.summary else None
                self.on_open(reservation, self.config.first_agent(last))
                self._loop(loop, loading, reservation, renderer)
            finally:
                if loading is not None and loading.done() and loading.exception() is None:
                    loop.run(loading.result().aclose())
                loop.run(self.store.close())

    def _loop(self, loop: asyncio.Runner, loading: Future[AgentGraph],
              reservation: Reservation, renderer: TurnRenderer) -> None:
        ready: _Ready | None = None
        while True:
            line = self.read_line(self.style.agent("you") + "> ")
            if line is None:
                return
            checked = check_chat_line(line)
            if checked.note is not None:
                self.out.write(checked.note + "\n")
            if checked.message is None:
                continue
            message = checked.message
            if message.lower() in ("/retry", "/r"):
                if self._unanswered is None or ready is None:
                    self.out.write("nothing to retry: the last message was answered\n")
                    continue
                message = self._unanswered
                # The failed turn kept the message; take it back so it is stored once.
                loop.run(ready.conversation.session.pop_item())
            elif message.startswith("/"):
                if self._command(message):
                    return
                continue
            if self.echo_input:
                self.out.write(f"you: {inert(message)}\n")
            if ready is None:
                ready = self._ready(loop, loading, reservation)
            self._unanswered = message
            try:
                if loop.run(self._turn(ready, renderer, message)):
                    self._unanswered = None
                else:
                    self.failed_turns += 1
            except KeyboardInterrupt:
                renderer.interrupted()

    def _ready(self, loop: asyncio.Runner, loading: Future[AgentGraph],
               reservation: Reservation) -> _Ready:
        from .turns import TurnRunner

        graph = loading.result()  # raises what building the graph raised
        conversation = loop.run(self.store.attach(reservation))
        return _Ready(graph, TurnRunner(graph), conversation)

    async def _turn(self, ready: _Ready, renderer: TurnRenderer, message: str) -> bool:
        """Run and render one turn; True when it ended with a reply."""
        ended = False
        async for event in ready.runner.run(ready.conversation, message):
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
