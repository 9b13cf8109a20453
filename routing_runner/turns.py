"""The turn runner: one user message through the agent graph, streamed as our own events.

Each turn passes only the new message with the session, as the SDK's routing example does
(`Runner.run_streamed(agent, message, session=...)`), and starts with the agent the routing
setting picks. A failed or interrupted turn is rolled back so the stored conversation holds the
user's message and nothing after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, Runner
from agents.exceptions import AgentsException, MaxTurnsExceeded, ModelBehaviorError
from agents.result import RunResultStreaming

from .events import Event, StreamTranslator, TurnFailed, TurnStarted
from .graph import AgentGraph
from .sessions import Conversation


def describe_failure(exc: BaseException, max_turns: int) -> str:
    """One line saying what failed and what to do."""
    return " ".join(_describe(exc, max_turns).split())


def _describe(exc: BaseException, max_turns: int) -> str:
    import openai

    if isinstance(exc, MaxTurnsExceeded):
        return (f"no agent answered within run.max_turns={max_turns} model calls "
                "(a handoff loop?); raise run.max_turns or check the handoffs")
    if isinstance(exc, openai.APIStatusError):
        request = f" (request id {exc.request_id})" if exc.request_id else ""
        return f"model request failed with HTTP {exc.status_code}{request}: {exc.message}"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the model provider: {exc.message}"
    if isinstance(exc, ModelBehaviorError):
        return f"the model answered something the runner cannot use: {exc}"
    if isinstance(exc, AgentsException):
        return f"the run failed: {exc}"
    return f"the run failed: {type(exc).__name__}: {exc}"


class TurnRunner:
    """Runs turns of conversations on one agent graph."""

    def __init__(self, graph: AgentGraph) -> None:
        self.graph = graph

    async def agent_for(self, conversation: Conversation) -> Agent[Any]:
        """The agent that answers the next message of `conversation`."""
        if self.graph.config.next_turn == "entry":
            return self.graph.entry
        active = await conversation.get_active_agent()
        return self.graph.agents.get(active or "", self.graph.entry)

    async def run(self, conversation: Conversation, message: str) -> AsyncIterator[Event]:
        """Run one turn; yield its events, ending with TurnEnded or TurnFailed."""
        agent = await self.agent_for(conversation)
        yield TurnStarted(agent.name)
        translator = StreamTranslator(agent.name)
        conversation.begin_turn()
        result = Runner.run_streamed(
            agent, message, session=conversation.session,
            max_turns=self.graph.config.max_turns, run_config=self.graph.run_config(),
        )
        try:
            async for sdk_event in result.stream_events():
                for event in translator.translate(sdk_event):
                    yield event
        except asyncio.CancelledError:
            await self._abandon(result, conversation, message)
            raise
        except Exception as exc:
            await self._abandon(result, conversation, message)
            yield TurnFailed(translator.agent, describe_failure(exc, self.graph.config.max_turns))
            return
        ended = translator.ended()
        await conversation.set_active_agent(ended.agent)
        yield ended

    async def _abandon(self, result: RunResultStreaming, conversation: Conversation,
                       message: str) -> None:
        """Stop the run, wait until it no longer writes, and roll the turn back."""
        result.cancel()
        if result.run_loop_task is not None:
            await asyncio.wait([result.run_loop_task])
        await conversation.roll_back_turn({"role": "user", "content": message})
