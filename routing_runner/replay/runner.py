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
from typing import Literal, TextIO

from routing_runner.config.model import Config
from routing_runner.runtime.gate import RateLimitGate
from routing_runner.runtime.graph import (
    AgentGraph,
    HttpClient,
    ModelHook,
    build_graph,
    new_http_client,
)
from routing_runner.runtime.mcp import McpPool
from routing_runner.runtime.providers import ResolvedProvider
from routing_runner.runtime.telemetry import transcript_span
from routing_runner.runtime.wrapped import chain
from routing_runner.wording import Style

from .cassettes import Cassettes
from .conversation_run import ConversationRun
from .plan import SESSION_THREADS, Job
from .results import BatchResult, ConversationResult

# ---------------------------------------------------------------------------------------------
# Running


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
                 build: GraphBuilder | None = None,
                 cassettes: Cassettes | None = None, require_judge: bool = False) -> None:
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
        self.cassettes = cassettes
        self.require_judge = require_judge
        self._http: HttpClient | None = None
        # One MCP server per tool entry for the whole batch of this process, stopped at its end.
        self._mcp = McpPool()
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

    def build_graph(self, config: Config, provider: ResolvedProvider,
                    inner: ModelHook | None = None) -> AgentGraph:
        """A conversation's graph; by default on the batch's one HTTP client. `inner` wraps
        each model inside the rate-limit gate (the cassette, the input probe)."""
        wrap = chain(inner, self.gate.wrap)
        if self.build is not None:
            return self.build(config, provider, wrap)
        if self._http is None:
            self._http = new_http_client()
        return build_graph(config, provider, http_client=self._http, wrap_model=wrap,
                           mcp_pool=self._mcp)

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
            await self._mcp.stop()
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
                result = await ConversationRun(self, job, buffer or self.show).run()
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
