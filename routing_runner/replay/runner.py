"""Replaying transcripts: each conversation through the turn runner, checked, many at once.

    plan(transcripts)  → jobs: one per transcript and repeat, each with its own session id
    Replayer(jobs).run() → BatchResult: a ConversationResult per finished job

A conversation runs in its own session, through the same `TurnRunner` (and so the same
streaming path) as `chat`. Session ids are derived from the transcript's name, so a run can
be inspected or continued afterwards (`chat --session-id replay-…`); the session is cleared
before the conversation starts, so reruns start fresh.

Resources stay bounded however many transcripts there are: at most `concurrency`
conversations run at once, each opens its store only while it runs and closes it after, and
the session files are served by a small thread pool (SQLite connections are per thread).

When the provider rate-limits one conversation, every conversation waits: `build_graph`'s
model hook wraps each agent's model in `GatedModel` (runtime.gate), which holds calls at a
shared `RateLimitGate`. Retrying stays the job of the SDK's retry loop (`model.retry`); the
gate only makes the whole batch back off together instead of hammering the provider from
every conversation. Results are in `replay.results`, the checks in `replay.expect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TextIO

from routing_runner.config.model import Config
from routing_runner.errors import (
    RoutingRunnerError,
)
from routing_runner.render import TurnRenderer
from routing_runner.runtime.events import Retrying, TextDelta, TurnEnded, TurnFailed
from routing_runner.runtime.gate import RateLimitGate
from routing_runner.runtime.graph import (
    AgentGraph,
    HttpClient,
    ModelHook,
    build_graph,
    new_http_client,
)
from routing_runner.runtime.offline.language_id import detect
from routing_runner.runtime.providers import ResolvedProvider
from routing_runner.runtime.telemetry import transcript_span
from routing_runner.runtime.turns import TurnRunner
from routing_runner.runtime.usage import turn_cost
from routing_runner.stores import open_store
from routing_runner.stores.base import SessionStore, settle
from routing_runner.stores.conversation import Conversation
from routing_runner.wording import Style, inert

from .expect import check
from .plan import SESSION_THREADS, Job
from .results import (
    BatchResult,
    ConversationResult,
    Observed,
    Status,
    TurnResult,
)
from .script import Restart, Turn, route_of

# ---------------------------------------------------------------------------------------------
# Running


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


# Builds a conversation's graph; the hook wraps each model (the batch's rate-limit gate).
GraphBuilder = Callable[[Config, ResolvedProvider, ModelHook], AgentGraph]


class Replayer:
    """Runs jobs with bounded concurrency and collects their results.

    `on_start` and `on_finish` hear about each conversation (for a progress line). With `show`,
    each conversation is rendered as it would be in `chat`: live when one runs at a time, else
    written whole when it finishes so conversations do not interleave.
    """

    def __init__(self, jobs: Sequence[Job], config: Config, *, concurrency: int = 4,
                 fail_fast: bool = False,
                 on_start: Callable[[Job], None] | None = None,
                 on_finish: Callable[[ConversationResult], None] | None = None,
                 show: TextIO | None = None, style: Style | None = None,
                 gate: RateLimitGate | None = None,
                 build: GraphBuilder | None = None) -> None:
        self.jobs = tuple(jobs)
        self.config = config
        self.concurrency = max(1, concurrency)
        self.fail_fast = fail_fast
        self.on_start = on_start
        self.on_finish = on_finish
        self.show = show
        self.style = style or Style(enabled=False)
        retry = config.model.retry
        self.gate = gate or RateLimitGate(retry.initial_delay, retry.max_delay)
        self.build = build
        self._http: HttpClient | None = None
        self.results: dict[int, ConversationResult] = {}
        self.stopped: Literal["interrupted", "fail_fast"] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._crashed: list[asyncio.Task[None]] = []

    def interrupt(self) -> None:
        """Stop: start nothing more and cancel the running conversations (they roll back).

        A second interrupt while they clean up gives up on cleaning up: KeyboardInterrupt.
        """
        if self.stopped == "interrupted":
            raise KeyboardInterrupt
        self._stop("interrupted")

    def stop_fast(self) -> None:
        """Stop as --fail-fast does: another worker's conversation failed."""
        self._stop("fail_fast")

    def _stop(self, why: Literal["interrupted", "fail_fast"]) -> None:
        if self.stopped is None or why == "interrupted":
            self.stopped = why
        self._cancel_running()

    def _cancel_running(self) -> None:
        current = asyncio.current_task()
        for task in self._running:
            if task is not current:  # fail-fast is decided by a finishing task itself
                task.cancel()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A bug, not a failed conversation: stop everything and let it surface.
            self._crashed.append(task)
            self._cancel_running()

    def build_graph(self, config: Config, provider: ResolvedProvider) -> AgentGraph:
        """A conversation's graph; by default on the batch's one HTTP client."""
        if self.build is not None:
            return self.build(config, provider, self.gate.wrap)
        if self._http is None:
            self._http = new_http_client()
        return build_graph(config, provider, http_client=self._http, wrap_model=self.gate.wrap)

    async def run(self, *, handle_signals: bool = False) -> BatchResult:
        """Run every job (until interrupted, or the first failure with fail_fast)."""
        loop = asyncio.get_running_loop()
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        handled = _install_signal_handlers(loop, self.interrupt) if handle_signals else []
        started = time.monotonic()
        try:
            await self._launch()
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
                # What the caller had (the CLI's SIGTERM-as-Ctrl-C), not the default.
                signal.signal(signum, previous[signum] or signal.SIG_DFL)
            if self._http is not None:
                await self._http.aclose()
                self._http = None
        return BatchResult(
            config=self.config, jobs=self.jobs,
            conversations=tuple(self.results[i] for i in sorted(self.results)),
            seconds=time.monotonic() - started, stopped=self.stopped,
            rate_limited=self.gate.trips)

    async def _launch(self) -> None:
        # Acquiring before creating a task keeps at most `concurrency` tasks in existence,
        # rather than hundreds waiting, each holding its transcript's state.
        slots = asyncio.Semaphore(self.concurrency)
        for job in self.jobs:
            await slots.acquire()
            if self.stopped is not None or self._crashed:
                slots.release()
                break
            task = asyncio.create_task(self._job(job), name=job.session_id)
            self._running.add(task)
            task.add_done_callback(self._done)
            task.add_done_callback(lambda _: slots.release())
        while self._running:
            await asyncio.wait(set(self._running))
        if self._crashed:
            self._crashed[0].result()  # raises the exception

    async def _job(self, job: Job) -> None:
        if self.on_start is not None:
            self.on_start(job)
        buffer = io.StringIO() if self.show is not None and self.concurrency > 1 else None
        try:
            with transcript_span(job.transcript.config, job.transcript.name, job.session_id):
                result = await _ConversationRun(self, job, buffer or self.show).run()
        except asyncio.CancelledError:
            # Stopped from outside (interrupt, fail-fast): it counts as not run.
            return
        self.results[job.index] = result
        if buffer is not None and self.show is not None:
            self.show.write(buffer.getvalue())
            self.show.flush()
        if self.on_finish is not None:
            self.on_finish(result)
        if self.fail_fast and result.status != "passed":
            self._stop("fail_fast")


def _install_signal_handlers(loop: asyncio.AbstractEventLoop,
                             handler: Callable[[], None]) -> list[signal.Signals]:
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not available off the main thread or on Windows; Ctrl-C then raises as usual.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, handler)
            installed.append(signum)
    return installed


class _ConversationRun:
    """One job's conversation: open, run each step, check each turn, close."""

    def __init__(self, replayer: Replayer, job: Job, out: TextIO | None) -> None:
        self.replayer = replayer
        self.job = job
        self.config = job.transcript.config
        self.out = out
        self.languages = [a.language for a in self.config.agents.values() if a.language]

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
        status: Status = "error" if error else (
            "failed" if any(t.status == "failed" for t in turns) else "passed")
        return ConversationResult(self.job, status, tuple(turns), time.monotonic() - started,
                                  error)

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
            graph = self.replayer.build_graph(self.config, self.job.provider)
        except BaseException:
            await store.close()
            raise
        return _Open(store, conversation, graph, TurnRunner(graph))

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
        async for event in opened.runner.run(opened.conversation, turn.user):
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
        if ended is None:
            return TurnResult(number, turn, "error", seconds,
                              error=failure or "the turn ended without a reply",
                              first_text_seconds=first_text, after_restart=after_restart)
        language = None
        if turn.expect.language is not None:
            language = detect(ended.text, self.languages).language
        observed = Observed(ended.agent, route_of(ended), ended.text, ended.model_calls,
                            ended.tool_calls, retries, language, ended.output, ended.guardrail,
                            ended.usage, turn_cost(self.config, ended.usage))
        missed = check(turn.expect, observed)
        return TurnResult(number, turn, "failed" if missed else "passed", seconds, observed,
                          missed, first_text_seconds=first_text, after_restart=after_restart)


def run_replay(replayer: Replayer, *, handle_signals: bool = True,
               on_loop: Callable[[asyncio.AbstractEventLoop], None] | None = None) -> BatchResult:
    """Run `replayer` on an event loop of its own; SIGINT/SIGTERM stop it cleanly.

    `on_loop` is given the loop before the run starts (a worker adds a signal handler there).
    """
    with asyncio.Runner() as runner:
        loop = runner.get_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(SESSION_THREADS, thread_name_prefix="replay-session"))
        if on_loop is not None:
            on_loop(loop)
        return runner.run(replayer.run(handle_signals=handle_signals))
