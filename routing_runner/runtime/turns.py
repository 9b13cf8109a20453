"""The turn runner: one user message through the agent graph, streamed as our own events.

Each turn passes only the new message with the session, as the SDK's routing example does
(`Runner.run_streamed(agent, message, session=...)`), and starts with the agent the routing
setting picks. Retries of transient model faults are reported as they are decided. A failed or
interrupted turn is rolled back so the stored conversation holds the user's message and nothing
after it, wherever the interruption lands; once the SDK has stored the whole reply the turn is
complete, and an interruption only waits for its last agent to be written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, replace
from typing import Any

from agents import Agent, Runner
from agents.result import RunResultStreaming

from routing_runner.config.placeholders import context_values
from routing_runner.errors import StoreError, UserInputError
from routing_runner.stores.base import settle
from routing_runner.stores.conversation import Conversation

from .events import (
    Event,
    GuardrailTripped,
    Retrying,
    TextDelta,
    TurnEnded,
    TurnFailed,
    TurnStarted,
)
from .graph import AgentGraph
from .guardrails import GuardrailTrip, trip_of
from .retries import RetryNotice, retry_listener
from .translate import StreamTranslator, describe_failure
from .usage import with_turn


@dataclass(frozen=True)
class _StreamError:
    error: Exception


_DONE = object()


class TurnRunner:
    """Runs turns of conversations on one agent graph."""

    def __init__(self, graph: AgentGraph) -> None:
        self.graph = graph

    async def agent_for(self, conversation: Conversation) -> Agent[Any]:
        """The agent that answers the next message of `conversation`."""
        last = None if self.graph.config.next_turn == "entry" else \
            await conversation.get_active_agent()
        return self.graph.agents[self.graph.config.first_agent(last)]

    async def run(self, conversation: Conversation, message: str, *,
                  first_agent: str | None = None) -> AsyncIterator[Event]:
        """Run one turn; yield its events, ending with TurnEnded or TurnFailed.

        `first_agent` answers instead of the one routing picks (`serve`'s per-agent models).

        A store that cannot be read or written fails this turn only (the server may be back
        for the next one); nothing is sent to the model when the turn cannot start.
        """
        max_turns = self.graph.config.max_turns
        try:
            agent, context = await self._starting(conversation, first_agent)
        except (StoreError, UserInputError) as exc:
            yield TurnFailed(self.graph.config.entry, describe_failure(exc, max_turns)
                             + "; your message was not stored")
            return
        yield TurnStarted(agent.name)
        translator = StreamTranslator(agent.name)
        # SDK events and retry notices meet in one queue, so a retry shows while it waits.
        queue: asyncio.Queue[Any] = asyncio.Queue()
        retries = 0

        def heard(notice: RetryNotice) -> None:
            nonlocal retries
            retries += 1
            queue.put_nowait(notice)

        conversation.begin_turn()
        token = retry_listener.set(heard)
        try:
            result = Runner.run_streamed(
                agent, message, session=conversation.session,
                max_turns=self.graph.config.max_turns, run_config=self.graph.run_config(
                    conversation.session_id), context=context,
            )
        finally:
            retry_listener.reset(token)
        pump = asyncio.ensure_future(self._pump(result, queue))
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, _StreamError):
                    raise item.error
                if isinstance(item, RetryNotice):
                    yield Retrying(translator.agent, item.attempt, item.max_retries,
                                   item.delay, item.reason)
                    continue
                for event in translator.translate(item):
                    yield event
        except asyncio.CancelledError:
            await settle(self._abandon(result, pump, conversation, message))
            raise
        except Exception as exc:
            for event in await self._failed(exc, result, pump, conversation, message,
                                            translator, retries):
                yield event
            return
        for event in translator.held():
            yield event
        yield await self._finish(conversation, message, translator.ended())

    async def _starting(self, conversation: Conversation,
                        first_agent: str | None) -> tuple[Agent[Any], Any]:
        """The agent that answers and the run's context; StoreError or UserInputError when
        the turn cannot start (the store unreadable, a context value missing)."""
        # Only the rows the SDK reads for this turn: the window's limit + 1 (runtime.graph).
        limit = self.graph.config.session.history_limit
        await conversation.check_readable(limit + 1 if limit else None)
        agent = self.graph.agents[first_agent] if first_agent else \
            await self.agent_for(conversation)
        return agent, context_values(self.graph.config.context, conversation.context)

    async def _failed(self, exc: Exception, result: RunResultStreaming,
                      pump: asyncio.Future[None], conversation: Conversation, message: str,
                      translator: StreamTranslator, retries: int) -> list[Event]:
        """The end of a turn the run failed, rolled back: TurnFailed, or a guardrail's trip."""
        rolled_back = await self._rolled_back(
            settle(self._abandon(result, pump, conversation, message)))
        trip = trip_of(exc, self.graph.config)
        if trip is not None and not rolled_back:
            return await self._stopped_by(trip, conversation, message, translator)
        return [TurnFailed(translator.agent, (self.graph.tool_failure(exc) or describe_failure(
            exc, self.graph.config.max_turns, retries, translator)) + rolled_back)]

    async def _stopped_by(self, trip: GuardrailTrip, conversation: Conversation, message: str,
                          translator: StreamTranslator) -> list[Event]:
        """The end of a turn a guardrail stopped, rolled back to the user's message: the
        guardrail's message is stored after it as the agent's answer, so the conversation
        (and the model, next turn) shows what the user was told."""
        agent = translator.agent
        try:
            await settle(conversation.session.add_items(
                [{"role": "assistant", "content": trip.message}]))
        except StoreError as exc:
            return [TurnFailed(agent, describe_failure(exc, self.graph.config.max_turns))]
        ended = replace(translator.ended(), text=trip.message, output=None,
                        guardrail=trip.guardrail)
        return [GuardrailTripped(agent, trip.guardrail, trip.reason),
                TextDelta(agent, trip.message),
                await self._finish(conversation, message, ended)]

    async def _finish(self, conversation: Conversation, message: str,
                      ended: TurnEnded) -> TurnEnded | TurnFailed:
        """The turn's last event, once the SDK has stored the whole reply: from here the turn
        is complete, and a cancellation waits for the last agent to be written beside it."""
        try:
            await settle(conversation.set_active_agent(ended.agent))
            await settle(conversation.set_usage(with_turn(conversation.usage, ended.usage)))
        except StoreError as exc:
            # Without its agent the stored turn would resume with the wrong one, and without
            # its usage the totals would miss it: undo it.
            rolled_back = await self._rolled_back(
                settle(conversation.roll_back_turn({"role": "user", "content": message})))
            return TurnFailed(ended.agent, describe_failure(exc, self.graph.config.max_turns)
                              + rolled_back)
        return ended

    @staticmethod
    async def _pump(result: RunResultStreaming, queue: asyncio.Queue[Any]) -> None:
        try:
            async for sdk_event in result.stream_events():
                queue.put_nowait(sdk_event)
        except Exception as exc:
            queue.put_nowait(_StreamError(exc))
        else:
            queue.put_nowait(_DONE)

    @staticmethod
    async def _abandon(result: RunResultStreaming, pump: asyncio.Future[None],
                       conversation: Conversation, message: str) -> None:
        """Stop the run, wait until it no longer writes, and roll the turn back.

        Callers settle it: a second Ctrl-C must not leave the rollback half done.
        """
        result.cancel()
        pump.cancel()
        tasks = [t for t in (result.run_loop_task, pump) if t is not None]
        await asyncio.wait(tasks)
        await conversation.roll_back_turn({"role": "user", "content": message})

    @staticmethod
    async def _rolled_back(rollback: Awaitable[None]) -> str:
        """Await a turn's rollback; what to add to the failure's message if the store refused."""
        try:
            await rollback
        except StoreError as exc:
            return f"; rolling the turn back failed too: {exc}"
        return ""
