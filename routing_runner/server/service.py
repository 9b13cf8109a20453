"""Turns for HTTP requests: one conversation at a time, a bounded number at once.

Each turn runs in a task of its own that holds the conversation's turn lock (`SessionStore.
turn_lock`, valid across workers on a shared store) and feeds our turn events to the response
through a queue. The request waits for the lock before its response begins, so a conversation
that stays busy is a 409 status rather than an error inside a stream. A response that stops
listening (the client went away) cancels its turn, which the turn runner rolls back to the
user's message, as Ctrl-C does in a chat; so does the turn timeout and a shutdown whose grace
period ran out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from routing_runner.config.model import Config
from routing_runner.errors import SessionIdError, SessionInUseError, StoreError
from routing_runner.runtime.events import Event, TurnEnded, TurnFailed
from routing_runner.stores.base import Lease, Reservation, SessionStore, new_session_id

from .metrics import Metrics
from .problems import HttpProblem, busy, not_found

if TYPE_CHECKING:
    from routing_runner.runtime.turns import TurnRunner

# What a client is told to wait before trying again when every turn slot is taken.
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class TurnRequest:
    """One user message for a conversation, as an endpoint understood the request.

    `session_id` None starts a new conversation, whose earlier messages `history` holds as
    (role, text) pairs. `first_agent` (a per-agent model) answers the first message of a new
    conversation instead of the entry agent.
    """

    message: str
    session_id: str | None = None
    history: Sequence[tuple[str, str]] = ()
    first_agent: str | None = None


@dataclass
class Turn:
    """A running turn: its conversation and the events it produces, ending with TurnEnded or
    TurnFailed (TurnFailed `interrupted` when the turn timed out)."""

    session_id: str
    task: asyncio.Task[None] | None = None
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    async def events(self) -> AsyncIterator[Event]:
        """The turn's events; leaving early cancels the turn (it is rolled back)."""
        finished = False
        try:
            while (event := await self.queue.get()) is not None:
                yield event
            finished = True
        finally:
            if not finished and self.task is not None and not self.task.done():
                self.task.cancel()

    async def result(self) -> TurnEnded | TurnFailed:
        """Wait for the turn and return how it ended."""
        last: Event | None = None
        async for event in self.events():
            last = event
        assert isinstance(last, TurnEnded | TurnFailed)  # the runner always ends with one
        return last


class TurnService:
    """Starts turns on one agent graph and one store, within the `serve:` limits."""

    def __init__(self, config: Config, runner: TurnRunner, store: SessionStore,
                 metrics: Metrics) -> None:
        self.config = config
        self.runner = runner
        self.store = store
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    async def begin(self, request: TurnRequest) -> Turn:
        """Start a turn once its conversation is free.

        HttpProblem: 503 when this worker runs as many turns as it may, 404 for an unknown
        conversation, 409 when another request keeps it busy longer than `serve.lock_wait`.
        """
        limits = self.config.serve
        if len(self._tasks) >= limits.max_concurrent_turns:
            raise HttpProblem(503, f"this server runs {limits.max_concurrent_turns} turns at "
                              "once already (serve.max_concurrent_turns); try again shortly",
                              kind="server_error", code="overloaded",
                              headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        reservation = await self._reservation(request.session_id)
        turn = Turn(reservation.session_id)
        locked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turn.task = asyncio.create_task(self._run(turn, request, reservation, locked))
        self._tasks.add(turn.task)
        turn.task.add_done_callback(self._tasks.discard)
        try:
            await locked
        except asyncio.CancelledError:
            turn.task.cancel()  # the request went away while it waited for the conversation
            raise
        return turn

    async def drain(self, grace: float) -> None:
        """Let running turns finish for `grace` seconds, then cancel (roll back) the rest."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _reservation(self, session_id: str | None) -> Reservation:
        """The conversation a request names (it must exist), or a new one."""
        if session_id is None:
            return Reservation(new_session_id(), Lease(), None)
        try:
            summary = await self.store.summary(session_id)
        except SessionIdError as exc:
            raise not_found(str(exc), "session_not_found") from None
        if summary is None:
            raise not_found(f"no conversation {session_id!r} in this server's store; leave "
                            "out X-Session-Id to start one", "session_not_found")
        return Reservation(session_id, Lease(), summary)

    async def _run(self, turn: Turn, request: TurnRequest, reservation: Reservation,
                   locked: asyncio.Future[None]) -> None:
        limits = self.config.serve
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            async with self.store.turn_lock(turn.session_id, wait=limits.lock_wait):
                if reservation.is_new:
                    # Its state record makes the conversation known before the response
                    # names it: a request for it meanwhile waits (409), it is not a 404.
                    await self.store.record_turns(turn.session_id, 0)
                locked.set_result(None)
                try:
                    async with asyncio.timeout(limits.turn_timeout):
                        await self._answer(turn, request, reservation)
                except TimeoutError:
                    self.metrics.error("timeout")
                    turn.queue.put_nowait(TurnFailed(
                        self.config.entry, f"the reply took longer than {limits.turn_timeout:g}"
                        " s (serve.turn_timeout); your message was kept, the reply was not",
                        interrupted=True))
                finally:
                    await self.store.release(turn.session_id)
        except SessionInUseError:
            if not locked.done():
                locked.set_exception(busy(turn.session_id, limits.lock_wait))
        except StoreError as exc:
            self._failed(turn, locked, str(exc))
        finally:
            if not locked.done():  # an unexpected failure: the request must not wait forever
                locked.set_exception(HttpProblem(500, "the turn could not start",
                                                 kind="server_error"))
            self.metrics.in_flight.dec()
            self.metrics.turn_time.observe(time.perf_counter() - started)
            turn.queue.put_nowait(None)

    def _failed(self, turn: Turn, locked: asyncio.Future[None], message: str) -> None:
        """A store failure before or after the turn's events began."""
        self.metrics.error("store")
        if not locked.done():
            locked.set_exception(HttpProblem(503, message, kind="server_error",
                                             code="store_unavailable"))
        else:
            turn.queue.put_nowait(TurnFailed(self.config.entry, message))

    async def _answer(self, turn: Turn, request: TurnRequest,
                      reservation: Reservation) -> None:
        conversation = await self.store.attach(reservation)
        if request.history:
            # A stock client resends the whole conversation: stored before the turn, so its
            # rollback keeps them.
            await conversation.add_history(request.history)
        first = request.first_agent if reservation.is_new else None
        async for event in self.runner.run(conversation, request.message, first_agent=first):
            if isinstance(event, TurnEnded):
                self.metrics.ended(event)
            elif isinstance(event, TurnFailed):
                self.metrics.error("model")
            turn.queue.put_nowait(event)
