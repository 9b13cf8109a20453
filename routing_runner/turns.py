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
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

from agents import Agent, Runner
from agents.exceptions import AgentsException, MaxTurnsExceeded, ModelBehaviorError
from agents.result import RunResultStreaming

from .errors import RoutingRunnerError, StoreError
from .events import Event, Retrying, StreamTranslator, TurnFailed, TurnStarted
from .graph import AgentGraph
from .providers import endpoint_hint
from .render import redact_url, redact_urls
from .retries import (
    RetryNotice,
    error_chain,
    error_code,
    provider_error,
    quota_exhausted,
    retry_listener,
)
from .sessions import Conversation, settle


def describe_failure(exc: BaseException, max_turns: int, retries: int = 0,
                     seen: StreamTranslator | None = None) -> str:
    """One line saying what failed, the request id where there is one, and what to do.

    `seen` is what the turn's stream showed before the failure: an `error` event the
    provider sent, or a response that never completed, explain the SDK's generic errors.
    """
    text = _describe(exc, max_turns)
    if isinstance(exc, ModelBehaviorError) and seen is not None:
        if seen.stream_error:
            text = f"the provider reported an error in its stream: {seen.stream_error}; /retry"
        elif seen.response_open:
            text = "the provider's stream ended before the response was complete; /retry"
    if retries:
        text += f" (after {retries} retr{'y' if retries == 1 else 'ies'})"
    return redact_urls(" ".join(text.split()))


def _describe(exc: BaseException, max_turns: int) -> str:
    import openai

    if isinstance(exc, RoutingRunnerError):
        return str(exc)  # already written for the user (a store failure, say)
    refused = provider_error(exc)
    if refused is not None:
        return str(refused)  # raised by our HTTP client's check, wrapped by the openai client
    unreachable = next((e for e in error_chain(exc) if isinstance(e, openai.APIConnectionError)),
                       None)
    if unreachable is not None:
        # LiteLLM wraps a refused connection in an HTTP 500 error; it is still no answer.
        exc = unreachable
    if isinstance(exc, MaxTurnsExceeded):
        return (f"no agent answered within run.max_turns={max_turns} model calls "
                "(a handoff loop?); raise run.max_turns or check the handoffs")
    if isinstance(exc, openai.APIStatusError):
        request = f", request id {exc.request_id}" if exc.request_id else ""
        what = f"HTTP {exc.status_code}{request}"
        if exc.status_code == 401:
            return f"the provider rejected the API key ({what}); check the key variable"
        if quota_exhausted(exc):
            return f"the provider's quota is exhausted ({what}); check the plan and billing"
        if exc.status_code == 429:
            return f"the provider is rate limiting ({what}); wait, then /retry"
        if exc.status_code == 404:
            return _not_found(exc, what)
        if exc.status_code >= 500:
            return f"the provider failed ({what}): {exc.message}; /retry later"
        return f"the provider refused the request ({what}): {exc.message}"
    if isinstance(exc, openai.APITimeoutError):
        return "the model did not answer in time (model.timeout); /retry, or raise model.timeout"
    if isinstance(exc, openai.APIConnectionError):
        # The innermost cause says what happened ("[Errno 111] Connection refused").
        *_, cause = error_chain(exc)
        detail = f": {cause}" if cause is not exc else ""
        return f"cannot reach the model provider{detail}; is it running? then /retry"
    if isinstance(exc, openai.APIError):
        return f"the provider's stream failed: {exc.message}; /retry"
    if isinstance(exc, json.JSONDecodeError):
        return f"the provider sent a malformed stream (not JSON): {exc}; /retry"
    if isinstance(exc, ModelBehaviorError):
        return f"the model answered something the runner cannot use: {exc}"
    if isinstance(exc, AgentsException):
        return f"the run failed: {exc}"
    return f"the run failed: {type(exc).__name__}: {exc}"


def _not_found(exc: Any, what: str) -> str:
    """A 404: an unknown model, or - far more often - a base_url that is not the API's."""
    if error_code(exc) == "model_not_found":
        return f"the provider does not know the model ({what}): {exc.message}; check model.name"
    url = str(exc.response.request.url)
    return f"nothing answers at {redact_url(url)} ({what}); {endpoint_hint(url)}"


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

    async def run(self, conversation: Conversation, message: str) -> AsyncIterator[Event]:
        """Run one turn; yield its events, ending with TurnEnded or TurnFailed.

        A store that cannot be read or written fails this turn only (the server may be back
        for the next one); nothing is sent to the model when the turn cannot start.
        """
        max_turns = self.graph.config.max_turns
        try:
            await conversation.check_readable()
            agent = await self.agent_for(conversation)
        except StoreError as exc:
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
                max_turns=self.graph.config.max_turns, run_config=self.graph.run_config(),
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
            rolled_back = await self._rolled_back(
                settle(self._abandon(result, pump, conversation, message)))
            yield TurnFailed(translator.agent, describe_failure(
                exc, max_turns, retries, translator) + rolled_back)
            return
        ended = translator.ended()
        try:
            # The SDK has stored the whole reply: from here the turn is complete, and a
            # cancellation waits for the last agent to be written beside it.
            await settle(conversation.set_active_agent(ended.agent))
        except StoreError as exc:
            # Without its agent the stored turn would resume with the wrong one: undo it.
            rolled_back = await self._rolled_back(
                settle(conversation.roll_back_turn({"role": "user", "content": message})))
            yield TurnFailed(ended.agent, describe_failure(exc, max_turns) + rolled_back)
            return
        yield ended

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
