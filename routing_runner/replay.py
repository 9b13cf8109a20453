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

When the provider rate-limits one conversation, every conversation waits: the model of each
agent is wrapped in `GatedModel`, which holds calls at a shared `RateLimitGate`. Retrying
stays the job of the SDK's retry loop (configured by `model.retry`); the gate only makes the
whole batch back off together instead of hammering the provider from every conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import signal
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import openai
from agents import Model, ModelResponse
from agents.items import TResponseStreamEvent
from openai import DefaultAsyncHttpxClient

from .config import Config, SessionConfig
from .descriptors import open_descriptors, open_file_limit
from .errors import (
    EXIT_EXPECTATIONS_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILURE,
    RoutingRunnerError,
)
from .events import Retrying, TextDelta, TurnEnded, TurnFailed
from .graph import AgentGraph, api_http_client, build_graph
from .language_id import detect, primary_subtag
from .providers import ResolvedProvider, resolve_provider
from .render import Style, TurnRenderer, inert
from .retries import quota_exhausted
from .sessions import Conversation, SessionStore, open_store, settle
from .transcript import Expectations, Restart, TextCheck, Transcript, Turn, route_of
from .turns import TurnRunner

SESSION_PREFIX = "replay-"
EXCERPT = 120
# SQLite connections are per thread and per session, so the threads serving session files
# bound the connections each running conversation may hold.
SESSION_THREADS = 2
# Longest Retry-After the gate honours; the SDK's retry policy gives up beyond it anyway.
MAX_GATE_DELAY = 60.0

Status = Literal["passed", "failed", "error"]


def session_id_for(transcript: Transcript, repeat: int = 1, repeats: int = 1) -> str:
    """`replay-<slug of the name>-<hash of the name>`, plus `-r<n>` when repeating.

    Stable across runs and machines, so a run can be found again; the hash keeps names whose
    slugs collide (`Español`, `espanol`) apart.
    """
    ascii_name = unicodedata.normalize("NFKD", transcript.name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].strip("-")
    digest = hashlib.sha256(transcript.name.encode()).hexdigest()[:8]
    suffix = f"-r{repeat}" if repeats > 1 else ""
    return f"{SESSION_PREFIX}{slug or 'transcript'}-{digest}{suffix}"


@dataclass(frozen=True)
class Job:
    """One conversation to run: a transcript, its repeat number and its session."""

    index: int
    transcript: Transcript
    provider: ResolvedProvider
    session_id: str
    repeat: int = 1
    repeats: int = 1


def plan(transcripts: Sequence[Transcript], repeat: int = 1,
         env: Mapping[str, str] | None = None) -> list[Job]:
    """A job per transcript and repeat, providers resolved (ProviderError before any run)."""
    environment = os.environ if env is None else env
    providers: dict[int, ResolvedProvider] = {}
    jobs: list[Job] = []
    for transcript in transcripts:
        key = id(transcript.config)
        if key not in providers:
            providers[key] = resolve_provider(transcript.config, environment)
        for n in range(1, repeat + 1):
            jobs.append(Job(len(jobs), transcript, providers[key],
                            session_id_for(transcript, n, repeat), n, repeat))
    return jobs


def check_stores(jobs: Sequence[Job]) -> None:
    """Open and close each distinct session store once: a broken one fails before any run."""
    sessions: list[SessionConfig] = []
    for job in jobs:
        if job.transcript.config.session not in sessions:
            sessions.append(job.transcript.config.session)

    async def probe() -> None:
        for session in sessions:
            store = open_store(session)
            try:
                # Shared stores connect lazily: check() proves the server answers now.
                await store.check()
            finally:
                await store.close()

    asyncio.run(probe())


# Descriptors one running conversation holds, by session backend (measured with a sampler of
# /proc/self/fd over batches of each): sqlite, its lock file and a connection (the database and
# its WAL file) on each thread serving session files - the -shm file and the state connection
# are per process; sqlalchemy, a pooled connection, two while its store checks the tables;
# redis, a connection, two when a read and a write overlap.
FILES_PER_SESSION = {"sqlite": 1 + 2 * SESSION_THREADS, "sqlalchemy": 2, "redis": 2,
                     "memory": 0}
# A model on the network adds a socket: a conversation has one request in flight at a time.
FILES_PER_MODEL_CONNECTION = 1
# Files a replaying process opens besides its conversations: the event loop, the shared state
# connection, a store being opened, the worker's pipes, modules imported on first use.
RESERVED_FILES = 32


@dataclass(frozen=True)
class Concurrency:
    """How many conversations a batch runs at once, after fitting the open-file limit."""

    requested: int
    allowed: int
    processes: int
    per_conversation: int
    limit: int | None

    @property
    def notice(self) -> str | None:
        """The one line that says -j was lowered, and why; None when it was not."""
        if self.allowed >= self.requested:
            return None
        each = self.allowed // self.processes
        where = f" in each of {self.processes} workers" if self.processes > 1 else ""
        return (f"replay: -j {self.requested} lowered to {self.allowed}: the open-file limit "
                f"({self.limit}, ulimit -n) leaves room for {each} conversations at once{where}"
                f", {self.per_conversation} files each; raise the limit to run more")


def fit_concurrency(jobs: Sequence[Job], requested: int, processes: int = 1) -> Concurrency:
    """`requested` conversations at once over `processes`, or as many as open files allow.

    The soft open-file limit is first raised as far as the hard limit allows; each process
    (a worker inherits the raised limit) runs its share of the conversations.
    """
    per_conversation = max(
        (FILES_PER_SESSION[job.transcript.config.session.backend]
         + (0 if job.provider.all_offline else FILES_PER_MODEL_CONNECTION) for job in jobs),
        default=0)
    share = -(-requested // processes)
    in_use = open_descriptors() + RESERVED_FILES
    limit = open_file_limit(in_use + share * per_conversation)
    if limit is None or per_conversation == 0:
        return Concurrency(requested, requested, processes, per_conversation, limit)
    each = max(1, (limit - in_use) // per_conversation)
    return Concurrency(requested, min(requested, each * processes), processes,
                       per_conversation, limit)


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Observed:
    """What a completed turn did."""

    agent: str
    route: tuple[str, ...]
    text: str
    model_calls: int
    tool_calls: int
    retries: int = 0
    language: str | None = None


@dataclass(frozen=True)
class Mismatch:
    """One expectation a turn missed: what was expected, and what happened instead."""

    check: str
    expected: str
    got: str

    @property
    def got_label(self) -> str:
        """What `got` describes: the text for text checks, else the checked value itself."""
        return "text" if self.check in ("contains", "not_contains", "matches") else self.check


@dataclass(frozen=True)
class TurnResult:
    """One turn of a conversation: passed, failed (mismatches) or error (the run failed)."""

    number: int
    turn: Turn
    status: Status
    seconds: float
    observed: Observed | None = None
    mismatches: tuple[Mismatch, ...] = ()
    error: str | None = None
    first_text_seconds: float | None = None
    after_restart: bool = False


@dataclass(frozen=True)
class ConversationResult:
    """One finished conversation: its turns and the run failure that stopped it, if any."""

    job: Job
    status: Status
    turns: tuple[TurnResult, ...]
    seconds: float
    error: str | None = None

    @property
    def transcript(self) -> Transcript:
        """The transcript this conversation ran."""
        return self.job.transcript

    def edges(self) -> set[tuple[str, str]]:
        """The handoff edges the conversation's turns took."""
        return {edge for turn in self.turns if turn.observed
                for edge in zip(turn.observed.route, turn.observed.route[1:], strict=False)}


@dataclass(frozen=True)
class BatchResult:
    """Every planned job and the conversations that finished."""

    config: Config
    jobs: tuple[Job, ...]
    conversations: tuple[ConversationResult, ...]
    seconds: float
    stopped: Literal["interrupted", "fail_fast"] | None = None
    rate_limited: int = 0

    def count(self, status: Status) -> int:
        """How many finished conversations ended with `status`."""
        return sum(c.status == status for c in self.conversations)

    @property
    def not_run(self) -> tuple[Job, ...]:
        """The planned jobs that did not finish (interrupted, or stopped by --fail-fast)."""
        done = {c.job.index for c in self.conversations}
        return tuple(job for job in self.jobs if job.index not in done)

    @property
    def exit_code(self) -> int:
        """130 interrupted, 3 a run failed, 1 an expectation failed, 0 all passed."""
        if self.stopped == "interrupted":
            return EXIT_INTERRUPTED
        if self.count("error"):
            return EXIT_RUN_FAILURE
        if self.count("failed"):
            return EXIT_EXPECTATIONS_FAILED
        return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Checking a turn


def check(expect: Expectations, observed: Observed) -> tuple[Mismatch, ...]:
    """Every expectation `observed` misses, in the order the transcript format lists them."""
    missed: list[Mismatch] = []
    if expect.agent is not None and observed.agent != expect.agent:
        missed.append(Mismatch("agent", expect.agent, observed.agent))
    if expect.route is not None and observed.route != expect.route:
        missed.append(Mismatch("route", " -> ".join(expect.route), " -> ".join(observed.route)))
    for text_check in expect.text:
        if not text_check.passes(observed.text):
            missed.append(Mismatch(text_check.kind, _expected_text(text_check),
                                   excerpt(observed.text, text_check)))
    if expect.language is not None and (
            observed.language is None
            or primary_subtag(observed.language) != primary_subtag(expect.language)):
        missed.append(Mismatch("language", expect.language, observed.language or "uncertain"))
    for name, count, value in (("model_calls", expect.model_calls, observed.model_calls),
                               ("tool_calls", expect.tool_calls, observed.tool_calls)):
        if count is not None and not count.allows(value):
            missed.append(Mismatch(name, str(count), str(value)))
    return tuple(missed)


def _expected_text(text_check: TextCheck) -> str:
    suffix = " (ignoring case)" if text_check.ignore_case else ""
    return f"{text_check.value!r}{suffix}"


def excerpt(text: str, near: TextCheck | None = None, limit: int = EXCERPT) -> str:
    """A one-line excerpt of `text`: its start, or around what a not_contains check found."""
    flat = " ".join(text.split())
    start = 0
    if near is not None and near.kind == "not_contains":
        found = near.pattern().search(flat)
        if found is not None:
            start = max(0, found.start() - limit // 3)
    piece = flat[start:start + limit]
    return ("…" if start else "") + piece + ("…" if start + limit < len(flat) else "")


# ---------------------------------------------------------------------------------------------
# The shared rate-limit gate


class RateLimitGate:
    """One backoff shared by every conversation of a batch.

    When a model call is rate-limited the gate closes for the provider's Retry-After, or an
    exponential backoff when it gives none; every model call waits while it is closed.
    """

    def __init__(self, initial_delay: float = 0.5, max_delay: float = 8.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.clock = clock
        self.trips = 0
        self._opens_at = 0.0
        self._streak = 0

    @property
    def closed_for(self) -> float:
        """Seconds until the gate opens (0 when open)."""
        return max(0.0, self._opens_at - self.clock())

    async def wait(self) -> None:
        """Return once the gate is open."""
        # Not an Event: another rate limit may push the opening later while we sleep.
        delay = self.closed_for
        while delay > 0:
            await asyncio.sleep(delay)
            delay = self.closed_for

    def trip(self, retry_after: float | None = None) -> float:
        """Close the gate after a rate limit; return the delay chosen."""
        self.trips += 1
        self._streak += 1
        if retry_after is not None:
            delay = min(max(retry_after, 0.0), MAX_GATE_DELAY)
        else:
            delay = min(self.initial_delay * 2 ** (self._streak - 1), self.max_delay)
        self._opens_at = max(self._opens_at, self.clock() + delay)
        return delay

    def passed(self) -> None:
        """A call went through: the next rate limit starts the backoff over."""
        self._streak = 0


def retry_after(error: openai.APIStatusError) -> float | None:
    """The delay a rate-limit response asks for (retry-after-ms or retry-after seconds)."""
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except ValueError:
            continue
    return None


def _closes_gate(error: BaseException) -> bool:
    """A rate limit the batch should wait out (an exhausted quota will not come back)."""
    return isinstance(error, openai.RateLimitError) and not quota_exhausted(error)


class GatedModel(Model):
    """A model whose calls wait at a shared gate, and close it when rate-limited."""

    def __init__(self, inner: Model, gate: RateLimitGate) -> None:
        self.inner = inner
        self.gate = gate

    def _rate_limited(self, error: BaseException) -> None:
        if _closes_gate(error):
            assert isinstance(error, openai.RateLimitError)
            self.gate.trip(retry_after(error))

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """The inner model's response, once the gate is open."""
        await self.gate.wait()
        try:
            response = await self.inner.get_response(*args, **kwargs)
        except Exception as error:
            self._rate_limited(error)
            raise
        self.gate.passed()
        return response

    async def stream_response(self, *args: Any,
                              **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        """The inner model's stream, once the gate is open."""
        await self.gate.wait()
        try:
            async for event in self.inner.stream_response(*args, **kwargs):
                yield event
        except Exception as error:
            self._rate_limited(error)
            raise
        self.gate.passed()

    def get_retry_advice(self, request: Any) -> Any:
        """The inner model's advice: the SDK's retry loop decides, not this wrapper."""
        return self.inner.get_retry_advice(request)

    async def close(self) -> None:
        """Close the inner model."""
        await self.inner.close()

    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.inner._cleanup_on_run_end(owner)


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


GraphBuilder = Callable[[Config, ResolvedProvider], AgentGraph]


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
        self._http: DefaultAsyncHttpxClient | None = None
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
            return self.build(config, provider)
        if self._http is None:
            self._http = api_http_client()
        return build_graph(config, provider, http_client=self._http)

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
            graph = self.replayer.build_graph(self.config, self.job.provider)
        except BaseException:
            await store.close()
            raise
        for agent in graph.agents.values():
            if isinstance(agent.model, Model) and not isinstance(agent.model, GatedModel):
                agent.model = GatedModel(agent.model, self.replayer.gate)
        return _Open(store, conversation, graph, TurnRunner(graph))

    async def _start_over(self, conversation: Conversation) -> None:
        await conversation.session.clear_session()
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
                            ended.tool_calls, retries, language)
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
