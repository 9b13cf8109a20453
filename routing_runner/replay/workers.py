"""Replay across several worker processes, each with its own event loop.

One Python process tops out near 40 turns a second here whatever the concurrency (the SDK spends
about 20 ms of CPU per turn), so a batch that should use every core needs processes. Workers are
forked after the transcripts are loaded and checked: they inherit the plan (and the imported SDK)
instead of re-reading it, and send back only what a finished conversation produced.

Workers run in their own process group so a terminal's Ctrl-C reaches the parent only, which
tells every worker to stop; each then stops as a single-process replay does, rolling back what
was running and reporting what finished. A rate limit seen by one worker pauses that
worker's conversations; the others find out from their own 429s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue as queues
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Literal

from routing_runner.config.model import Config
from routing_runner.errors import RunFailure
from routing_runner.runtime.offline.model import preload
from routing_runner.runtime.telemetry import flush_telemetry

from .cassettes import Cassettes
from .plan import Job
from .results import BatchResult, CassetteCounts, ConversationResult, TurnResult
from .runner import Replayer, run_replay

# Workers report "a conversation started/finished" messages; the parent polls at this period
# to notice a worker that died without saying goodbye.
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class _Finished:
    index: int
    status: Literal["passed", "failed", "error"]
    turns: tuple[TurnResult, ...]
    seconds: float
    error: str | None
    cassette: CassetteCounts | None = None

    def result(self, job: Job) -> ConversationResult:
        """The conversation's result, in the parent that planned `job`."""
        return ConversationResult(job, self.status, self.turns, self.seconds, self.error,
                                  self.cassette)


@dataclass(frozen=True)
class _Done:
    stopped: Literal["interrupted", "fail_fast"] | None
    rate_limited: int


def available() -> bool:
    """Whether worker processes can be forked here (POSIX)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _worker(shard: Sequence[Job], config: Config, concurrency: int, fail_fast: bool,
            outbox: Any, interrupt: Any, stop_fast: Any,
            cassettes: Cassettes | None = None, require_judge: bool = False) -> None:
    os.setpgrp()
    # The parent decides when to stop and says so through events the worker polls: a signal
    # could arrive before the worker's event loop exists or after it closed, and kill it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    replayer = Replayer(
        shard, config, concurrency=concurrency, fail_fast=fail_fast,
        on_start=lambda job: outbox.put(("start", job.index)),
        on_finish=lambda r: outbox.put(_Finished(r.job.index, r.status, r.turns, r.seconds,
                                                 r.error, r.cassette)),
        cassettes=cassettes, require_judge=require_judge,
    )

    async def watch() -> None:
        stopping = False
        while not interrupt.is_set():
            if stop_fast.is_set() and not stopping:
                stopping = True
                replayer.stop_fast()
            await asyncio.sleep(POLL_SECONDS)
        replayer.interrupt()

    def prepare(loop: asyncio.AbstractEventLoop) -> None:
        loop.create_task(watch())

    result = run_replay(replayer, handle_signals=False, on_loop=prepare)
    flush_telemetry()  # a forked process ends without running atexit hooks
    outbox.put(_Done(result.stopped, result.rate_limited))
    outbox.close()
    outbox.join_thread()


def worker_count(workers: int, jobs: int, concurrency: int) -> int:
    """The worker processes a batch starts: never more than conversations allowed at once."""
    return max(1, min(workers, jobs, concurrency))


def _preload(config: Config, jobs: Sequence[Job]) -> None:
    """Load the offline model's language data once, before forking: the workers share its
    pages."""
    preload(config, {id(job.provider): job.provider for job in jobs}.values())


def run_in_workers(jobs: Sequence[Job], config: Config, *, workers: int, concurrency: int,
                   fail_fast: bool = False, on_start: Callable[[Job], None] | None = None,
                   on_finish: Callable[[ConversationResult], None] | None = None,
                   cassettes: Cassettes | None = None, require_judge: bool = False) -> BatchResult:
    """Run `jobs` in `workers` processes sharing `concurrency` conversations at once."""
    context = multiprocessing.get_context("fork")
    _preload(config, jobs)
    count = worker_count(workers, len(jobs), concurrency)  # -j stays the total over them
    outbox = context.Queue()
    interrupt, stop_fast = context.Event(), context.Event()
    # Flush so buffered output is not written twice, once by each forked copy.
    sys.stdout.flush()
    sys.stderr.flush()
    processes = [context.Process(target=_worker, name=f"replay-worker-{n}", daemon=True,
                                 args=(jobs[n::count], config, share, fail_fast, outbox,
                                       interrupt, stop_fast, cassettes, require_judge))
                 for n, share in enumerate(_shares(concurrency, count))]
    by_index = {job.index: job for job in jobs}
    results: dict[int, ConversationResult] = {}
    done: list[_Done] = []
    interrupted = fast_stopped = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        interrupt.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        for process in processes:
            process.start()
        while len(done) < count:
            try:
                message = outbox.get(timeout=POLL_SECONDS)
            except queues.Empty:
                _fail_if_one_died(processes)
                continue
            if isinstance(message, _Done):
                done.append(message)
            elif isinstance(message, _Finished):
                result = message.result(by_index[message.index])
                results[message.index] = result
                if on_finish is not None:
                    on_finish(result)
                if fail_fast and result.status != "passed" and not fast_stopped:
                    fast_stopped = True
                    stop_fast.set()
            elif on_start is not None:
                on_start(by_index[message[1]])
    finally:
        for process in processes:
            process.join(timeout=30)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return BatchResult(config=config, jobs=tuple(jobs),
                       conversations=tuple(results[i] for i in sorted(results)),
                       seconds=time.monotonic() - started,
                       stopped=_stopped(interrupted, fast_stopped, done),
                       rate_limited=sum(d.rate_limited for d in done))


def _fail_if_one_died(processes: Sequence[BaseProcess]) -> None:
    """RunFailure (after killing the rest) when a worker exited before saying it was done."""
    dead = [p for p in processes if p.exitcode not in (None, 0)]
    if dead:
        for process in processes:
            process.kill()
        raise RunFailure(f"replay worker {dead[0].name} stopped unexpectedly "
                         f"(exit code {dead[0].exitcode})") from None


def _shares(concurrency: int, count: int) -> list[int]:
    """How many conversations each of `count` workers runs at once: `concurrency` in all."""
    return [concurrency // count + (n < concurrency % count) for n in range(count)]


def _stopped(interrupted: bool, fast_stopped: bool,
             done: Sequence[_Done]) -> Literal["interrupted", "fail_fast"] | None:
    """Why the batch stopped early, as the parent or any worker saw it (interrupt first)."""
    if interrupted or any(d.stopped == "interrupted" for d in done):
        return "interrupted"
    if fast_stopped or any(d.stopped == "fail_fast" for d in done):
        return "fail_fast"
    return None
