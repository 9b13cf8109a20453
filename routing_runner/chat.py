"""The multi-turn chat loop: read a message, run a turn, render it, repeat.

The prompt appears at once: the Agents SDK (over a second to import) loads and the agent graph
is built on a thread while the user types, and the conversation is reserved - refused if
another process has it - without the SDK. The loop owns one event loop for the whole chat (the
session and the model clients live on it) and reads input between turns.

Ctrl-C during a reply cancels that turn only: the turn runner rolls the stored conversation back
to the user's message and the loop returns to the prompt. That holds while the first reply
still waits for the SDK too: the message is kept in memory and stored as soon as the
conversation is open. Ctrl-C at the prompt, a second Ctrl-C during a reply, SIGTERM, or Ctrl-C
in a one-shot chat (`-m`) end the chat once the rollback is done, with KeyboardInterrupt.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from .config.model import Config
from .config.placeholders import context_values
from .errors import StoreError, UserInputError
from .render import TurnRenderer
from .runtime.events import TurnEnded, TurnFailed
from .runtime.usage import UsageTally, stored_usage, usage_line
from .stores.base import Reservation, SessionStore
from .stores.conversation import Conversation
from .user_text import check_chat_line
from .wording import Style, inert

if TYPE_CHECKING:
    from .runtime.graph import AgentGraph
    from .runtime.turns import TurnRunner

T = TypeVar("T")
# How long a turn waits while another process answers the same conversation (shared stores).
TURN_WAIT = 30.0

HELP = "Type a message. /exit or end of input (Ctrl-D) ends the chat; Ctrl-C interrupts a reply."
COMMANDS = {"/exit": "end the chat", "/quit": "end the chat",
            "/retry": "send the last message again after a failed or interrupted reply",
            "/usage": "tokens (and cost) per agent over this conversation's turns",
            "/help": "show this help"}


def _load(build: Callable[[], AgentGraph]) -> AgentGraph:
    graph = build()
    graph.warm_up()
    return graph


class _Signals:
    """SIGINT and SIGTERM during a chat.

    Waiting at the prompt, a signal raises KeyboardInterrupt at once. Anywhere else it is
    only recorded: while work runs on the event loop the first signal cancels it (a turn then
    rolls back) and later ones are counted, so a rollback always finishes; one that lands
    after a line was read but before its reply began makes `run` skip that work - raising
    there would lose the message the user just sent.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._task: asyncio.Task[Any] | None = None
        self._at_prompt = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle both signals for the duration (only the main thread can)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self._at_prompt:
            raise KeyboardInterrupt
        task = self._task
        if task is not None and len(self.received) == 1:
            task.get_loop().call_soon_threadsafe(task.cancel)

    def read(self, read_line: Callable[[str], str | None], prompt: str) -> str | None:
        """`read_line(prompt)`, where a signal (even one already received) ends the chat."""
        if self.received:
            raise KeyboardInterrupt
        self._at_prompt = True
        try:
            return read_line(prompt)
        finally:
            self._at_prompt = False

    def run(self, loop: asyncio.Runner, work: Coroutine[Any, Any, T], *,
            interruptible: bool = True,
            on_skipped: Callable[[], None] | None = None) -> T | None:
        """Run `work` on `loop`; None when a signal cancelled it or came before it began
        (then `work` never runs, and `on_skipped` is called)."""
        async def guarded() -> T | None:
            if interruptible:
                self._task = asyncio.current_task()
            try:
                if self.received and interruptible:
                    work.close()
                    if on_skipped is not None:
                        on_skipped()
                    return None
                return await work
            except asyncio.CancelledError:
                if not self.received:
                    raise
                return None
            finally:
                self._task = None

        return loop.run(guarded())

    def ends_chat(self, one_shot: bool) -> bool:
        """Whether what was received ends the chat rather than only the reply."""
        return one_shot or len(self.received) > 1 or signal.SIGTERM in self.received


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
    and its TurnEnded (`chat --record` writes them down). `one_shot` chats (`-m`) end at the
    first interrupted reply. `require_new`, when set, names what needs a new conversation
    (`--record`): one with messages is refused, UserInputError.
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
    require_new: str | None = None
    one_shot: bool = False
    # Context values given for this chat (--context); stored with the conversation.
    context: Mapping[str, str] = field(default_factory=dict)
    # A dim line of tokens (and cost) after each reply (`chat --usage`); /usage shows the sum.
    show_usage: bool = False
    failed_turns: int = field(default=0, init=False)
    _loading: Future[AgentGraph] | None = field(default=None, init=False)
    _reservation: Reservation | None = field(default=None, init=False)
    _ready: _Ready | None = field(default=None, init=False)
    # Messages interrupted before their reply began (the SDK loading, or a signal just after
    # the line was read): stored, unanswered, before the next message or at exit.
    _unstored: list[str] = field(default_factory=list, init=False)
    _tally: UsageTally = field(init=False)

    def __post_init__(self) -> None:
        self._tally = UsageTally(self.config)

    def run(self) -> None:
        """Chat until /exit or end of input; the store is closed on the way out.

        KeyboardInterrupt when a signal ended the chat (see the module docstring).
        """
        renderer = TurnRenderer(self.out, self.style)
        signals = _Signals()
        with ThreadPoolExecutor(1, thread_name_prefix="load-agents") as background, \
                asyncio.Runner() as loop, signals.installed():
            try:
                # Reserve before loading: a shared store's driver may import the SDK itself,
                # and two threads importing one package at once can break its import.
                reservation = loop.run(self.store.reserve(self.session_id))
                if self.require_new is not None and not reservation.is_new:
                    raise UserInputError(
                        f"{self.require_new} needs a new conversation, and {self.session_id!r} "
                        "has messages already (a replay starts from an empty one)")
                stored = reservation.summary.context if reservation.summary else None
                earlier = stored_usage(reservation.summary.usage if reservation.summary else None)
                self._tally = UsageTally(self.config, earlier, earlier=bool(earlier))
                context_values(self.config.context, {**(stored or {}), **self.context})
                self._loading = background.submit(_load, self.build_graph)
                self._reservation = reservation
                last = reservation.summary.last_agent if reservation.summary else None
                self.on_open(reservation, self.config.first_agent(last))
                try:
                    self._loop(loop, signals, renderer)
                finally:
                    if self._unstored:
                        signals.run(loop, self._store_unstored(), interruptible=False)
            finally:
                loading = self._loading
                if loading is not None and loading.done() and loading.exception() is None:
                    signals.run(loop, loading.result().aclose(), interruptible=False)
                signals.run(loop, self.store.close(), interruptible=False)

    def _loop(self, loop: asyncio.Runner, signals: _Signals, renderer: TurnRenderer) -> None:
        while True:
            line = signals.read(self.read_line, self.style.agent("you") + "> ")
            if line is None:
                return
            checked = check_chat_line(line)
            if checked.note is not None:
                self.out.write(checked.note + "\n")
            if checked.message is None:
                continue
            message = checked.message
            if message.lower() in ("/retry", "/r"):
                retried = signals.run(loop, self._take_back())
                if signals.received:
                    self._interrupted(signals, renderer)
                    continue
                if retried is None:
                    self.out.write("nothing to retry: the last message was answered\n")
                    continue
                message = retried
            elif message.startswith("/"):
                if self._command(message):
                    return
                continue
            if self.echo_input:
                self.out.write(f"you: {inert(message)}\n")
            # A signal before the reply began keeps the message, as one during it does.
            answered = signals.run(loop, self._send(renderer, message),
                                   on_skipped=functools.partial(self._unstored.append, message))
            if signals.received:
                self._interrupted(signals, renderer)
            elif not answered:
                self.failed_turns += 1

    def _interrupted(self, signals: _Signals, renderer: TurnRenderer) -> None:
        """After a signal cancelled a reply: back to the prompt, or end the chat."""
        renderer.interrupted()
        if signals.ends_chat(self.one_shot):
            raise KeyboardInterrupt
        signals.received.clear()

    async def _open(self) -> _Ready:
        """The graph and the open conversation, waiting for the SDK to load if it must."""
        if self._ready is None:
            assert self._loading is not None and self._reservation is not None
            # Shielded: an interrupted wait leaves the loading alone for the next message.
            graph = await asyncio.shield(asyncio.wrap_future(self._loading))
            await graph.start()
            from .runtime.turns import TurnRunner

            conversation = await self.store.attach(self._reservation)
            await conversation.set_context(self.context)
            self._ready = _Ready(graph, TurnRunner(graph), conversation)
        return self._ready

    async def _store_unstored(self) -> None:
        """Store the messages interrupted before the conversation was open, unanswered."""
        ready = await self._open()
        pending, self._unstored = self._unstored, []
        await ready.conversation.add_unanswered(pending)

    async def _take_back(self) -> str | None:
        """The last message if no reply to it is stored, taken back to be sent again."""
        if self._unstored:
            return self._unstored.pop()
        return await (await self._open()).conversation.retract_unanswered()

    async def _send(self, renderer: TurnRenderer, message: str) -> bool:
        """Run and render one turn; True when it ended with a reply."""
        try:
            ready = await self._open()
        except asyncio.CancelledError:
            # Interrupted while the SDK loads: nothing is stored yet, keep it for later.
            self._unstored.append(message)
            raise
        if self._unstored:
            await self._store_unstored()
        ended = started = False
        try:
            # Other processes on a shared store may be answering this conversation too: each
            # turn holds it (stores.turn_lock; a SQLite chat's lease already keeps them out).
            async with self.store.turn_lock(self.session_id, wait=TURN_WAIT):
                started = True
                async for event in ready.runner.run(ready.conversation, message):
                    renderer.render(event)
                    ended = isinstance(event, TurnEnded)
                    if isinstance(event, TurnEnded):
                        self._turn_ended(message, event)
        except StoreError as exc:
            if started:  # the turn ran (and said how it ended): giving the lock back failed
                raise
            # Busy past the wait, or the store unreachable: this turn fails, the chat goes on.
            from .runtime.translate import describe_failure

            renderer.render(TurnFailed(self.config.entry, describe_failure(
                exc, self.config.max_turns) + "; your message was not stored"))
        except asyncio.CancelledError:
            if not started:  # interrupted while waiting for its turn: kept, as before a reply
                self._unstored.append(message)
            raise
        return ended

    def _turn_ended(self, message: str, event: TurnEnded) -> None:
        """What follows a reply: the recorder sees it, its usage is counted (and shown)."""
        if self.on_turn is not None:
            self.on_turn(message, event)
        self._tally.add(event.usage)
        if self.show_usage:
            self.out.write(self.style.dim(usage_line(self.config, event.usage)) + "\n")

    def _command(self, command: str) -> bool:
        """Handle a /command; True when the chat should end."""
        name = command.split()[0].lower()
        if name in ("/exit", "/quit"):
            return True
        if name == "/usage":
            self.out.write("".join(f"{line}\n" for line in self._tally.lines()))
        elif name == "/help":
            self.out.write(HELP + "\n" + "".join(f"  {c:<8} {d}\n" for c, d in COMMANDS.items()))
        else:
            self.out.write(f"unknown command {inert(name)!r}; /help lists the commands\n")
        return False
