"""One job of a replay: its conversation opened, each step run and each turn checked, closed.

`replay.runner.Replayer` runs many of these at once; this is the life of one of them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from routing_runner.errors import RoutingRunnerError
from routing_runner.render import TurnRenderer
from routing_runner.runtime.cassettes import Tape
from routing_runner.runtime.events import Event, Retrying, TextDelta, TurnEnded, TurnFailed
from routing_runner.runtime.graph import AgentGraph, ModelHook
from routing_runner.runtime.offline.language_id import detect
from routing_runner.runtime.probe import InputProbe
from routing_runner.runtime.tools import ToolMocks, mocking
from routing_runner.runtime.turns import TurnRunner
from routing_runner.runtime.usage import turn_cost
from routing_runner.runtime.wrapped import chain
from routing_runner.stores import open_store
from routing_runner.stores.base import SessionStore, settle
from routing_runner.stores.conversation import Conversation
from routing_runner.wording import inert

from .cassettes import cassette_miss, save_tape, tape_counts
from .expect import check
from .judge import TurnJudge
from .plan import Job
from .results import ConversationResult, Observed, Status, TurnResult
from .script import Restart, Turn, route_of

if TYPE_CHECKING:
    from .runner import Replayer


@dataclass
class _Open:
    """A conversation's session, opened with a graph and a runner of its own."""

    store: SessionStore
    conversation: Conversation
    graph: AgentGraph
    runner: TurnRunner

    async def close(self) -> None:
        try:
            await self.store.close()
        finally:
            await self.graph.aclose()



class ConversationRun:
    """One job's conversation: open, run each step, check each turn, close."""

    def __init__(self, replayer: Replayer, job: Job, out: TextIO | None) -> None:
        self.replayer = replayer
        self.job = job
        self.config = job.transcript.config
        self.out = out
        self.languages = [a.language for a in self.config.agents.values() if a.language]
        self.tape: Tape | None = None
        self.judge = TurnJudge(job.provider.judge, self.config, replayer.require_judge,
                               lambda: self.tape)
        self.probe = InputProbe() if any(
            t.expect.history_seen for t in job.transcript.turns) else None
        # A list of canned results is used in order over the whole conversation.
        self.mocks = ToolMocks(job.transcript.mocks)

    async def mocked(self, events: AsyncIterator[Event], turn: Turn) -> AsyncIterator[Event]:
        """`events` of a turn run with the turn's mocks, then the transcript's, answering."""
        with mocking(ToolMocks(turn.mocks), self.mocks):
            async for event in events:
                yield event

    def say(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    async def run(self) -> ConversationResult:
        started = time.monotonic()
        transcript = self.job.transcript
        run_label = f" (run {self.job.repeat} of {self.job.repeats})" if self.job.repeats > 1 \
            else ""
        self.say(self.replayer.style.dim(
            f"== {inert(transcript.name)}{run_label} - {transcript.location} - "
            f"session {self.job.session_id}"))
        turns: list[TurnResult] = []
        error: str | None = None
        opened: _Open | None = None
        doing = "opening the session"
        try:
            opened = await self.open(fresh=True)
            after_restart = False
            for step in transcript.steps:
                if isinstance(step, Restart):
                    doing = f"restarting at {step.location}"
                    self.say(self.replayer.style.dim("  [restart] session closed, reopened "
                                                     "with a fresh store, agents and runner"))
                    current, opened = opened, None
                    await current.close()
                    opened = await self.open(fresh=False)
                    after_restart = True
                    continue
                doing = f"turn {len(turns) + 1}"
                result = await self.turn(opened, step, len(turns) + 1, after_restart)
                after_restart = False
                turns.append(result)
                if result.status == "error":
                    error = f"turn {result.number} ({step.location}): {result.error}"
                    break
        except RoutingRunnerError as exc:
            error = f"{doing}: {exc}"
        except (OSError, RuntimeError, ValueError) as exc:
            # A broken store or backend fails this conversation, not the whole batch.
            error = f"{doing}: {type(exc).__name__}: {exc}"
        finally:
            if opened is not None:
                try:
                    await opened.close()
                except (RoutingRunnerError, OSError, RuntimeError) as exc:
                    error = error or f"closing the session: {exc}"
            await self.judge.aclose()
            error = error or save_tape(self.tape)
        status: Status = "error" if error else (
            "failed" if any(t.status == "failed" for t in turns) else "passed")
        return ConversationResult(self.job, status, tuple(turns), time.monotonic() - started,
                                  error, tape_counts(self.tape))

    async def open(self, *, fresh: bool) -> _Open:
        """The conversation's session in a new store, with a new graph and runner."""
        store = open_store(self.config.session)
        try:
            conversation = await store.open(self.job.session_id)
            if fresh:
                # Settled: a conversation emptied but still naming its old last agent would
                # send the next chat on it to the wrong agent.
                await settle(self._start_over(conversation))
                await conversation.set_context(self.job.transcript.context, keep_others=False)
            if self.tape is None and self.replayer.cassettes is not None:
                self.tape = self.replayer.cassettes.tape(self.job)
            graph = self.replayer.build_graph(self.config, self.job.provider, self.wrap())
        except BaseException:
            await store.close()
            raise
        try:
            await graph.start()
        except BaseException:
            await _Open(store, conversation, graph, TurnRunner(graph)).close()
            raise
        return _Open(store, conversation, graph, TurnRunner(graph))

    def wrap(self) -> ModelHook:
        """Each agent's model behind the conversation's cassette and input probe, if any."""
        return chain(self.tape.wrap if self.tape is not None else None,
                     self.probe.wrap if self.probe is not None else None)

    async def _start_over(self, conversation: Conversation) -> None:
        await conversation.reset()
        if await conversation.get_active_agent() not in (None, self.config.entry):
            await conversation.set_active_agent(self.config.entry)

    async def turn(self, opened: _Open, turn: Turn, number: int,
                   after_restart: bool) -> TurnResult:
        """Run one turn and check it."""
        renderer = TurnRenderer(self.out, self.replayer.style) if self.out else None
        self.say(f"{self.replayer.style.agent('you')}: {inert(turn.user)}")
        started = time.monotonic()
        first_text: float | None = None
        ended: TurnEnded | None = None
        failure: str | None = None
        retries = 0
        async for event in self.mocked(opened.runner.run(opened.conversation, turn.user), turn):
            if renderer is not None:
                renderer.render(event)
            if isinstance(event, TextDelta) and first_text is None:
                first_text = time.monotonic() - started
            elif isinstance(event, Retrying):
                retries += 1
            elif isinstance(event, TurnEnded):
                ended = event
            elif isinstance(event, TurnFailed):
                failure = event.message
        seconds = time.monotonic() - started
        not_recorded = cassette_miss(self.tape)
        if ended is None and not_recorded is not None:
            return TurnResult(number, turn, "failed", seconds, mismatches=(not_recorded,),
                              first_text_seconds=first_text, after_restart=after_restart)
        if ended is None:
            return TurnResult(number, turn, "error", seconds,
                              error=failure or "the turn ended without a reply",
                              first_text_seconds=first_text, after_restart=after_restart)
        language = None
        if turn.expect.language is not None:
            language = detect(ended.text, self.languages).language
        seen = self.probe.take()[-1:] if self.probe is not None else []
        observed = Observed(ended.agent, route_of(ended), ended.text, ended.model_calls,
                            ended.tool_calls, retries, language, ended.output, ended.guardrail,
                            ended.usage, turn_cost(self.config, ended.usage),
                            seen_items=seen[0].items if seen else None,
                            seen_tool_items=seen[0].tool_items if seen else None,
                            tools=ended.tools)
        judged, notes = await self.judge.check(turn, ended.text)
        missed = (*check(turn.expect, observed, self.languages), *judged)
        return TurnResult(number, turn, "failed" if missed else "passed", seconds, observed,
                          missed, first_text_seconds=first_text, after_restart=after_restart,
                          notes=tuple(notes))
