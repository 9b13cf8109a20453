"""Replay across several worker processes, each with its own event loop.

One Python process tops out near 40 turns a second here whatever the concurrency (the SDK spends
about 20 ms of CPU per turn), so a batch that should use every core needs processes. Workers are
forked after the transcripts are loaded and checked: they inherit the plan (and the imported SDK)
instead of re-reading it, and send back only what a finished conversation produced.

Workers run in their own process group so a terminal's Ctrl-C reaches the parent only, which
passes a single SIGINT on; each worker then stops as a single-process replay does, rolling back
what was running and reporting what finished. A rate limit seen by one worker pauses that
worker's conversations; the others find out from their own 429s.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import queue as queues
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal

from .config import Config
from .errors import RunFailure
from .replay import BatchResult, ConversationResult, Job, Replayer, TurnResult, run_replay

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


@dataclass(frozen=True)
class _Done:
    stopped: Literal["interrupted", "fail_fast"] | None
    rate_limited: int


def available() -> bool:
    """Whether worker processes can be forked here (POSIX)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _worker(shard: Sequence[Job], config: Config, concurrency: int, fail_fast: bool,
            outbox: Any) -> None:
    os.setpgrp()
    # A signal can arrive before the event loop exists (the default action of SIGUSR1 would
    # kill the worker, SIGINT would raise mid-setup): note it, act on it once the loop runs.
    early: set[int] = set()
    for noted in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(noted, lambda received, _frame: early.add(received))
    replayer = Replayer(
        shard, config, concurrency=concurrency, fail_fast=fail_fast,
        on_start=lambda job: outbox.put(("start", job.index)),
        on_finish=lambda r: outbox.put(_Finished(r.job.index, r.status, r.turns, r.seconds,
                                                 r.error)),
    )
    actions = {signal.SIGINT: replayer.interrupt, signal.SIGTERM: replayer.interrupt,
               signal.SIGUSR1: replayer.stop_fast}

    def prepare(loop: asyncio.AbstractEventLoop) -> None:
        for signum, action in actions.items():
            loop.add_signal_handler(signum, action)
        # One interrupt, even if both SIGINT and SIGTERM came: a second would abandon cleanup.
        for action in {actions[signal.Signals(received)] for received in early}:
            action()

    result = run_replay(replayer, handle_signals=False, on_loop=prepare)
    outbox.put(_Done(result.stopped, result.rate_limited))
    outbox.close()
    outbox.join_thread()


def run_in_workers(jobs: Sequence[Job], config: Config, *, workers: int, concurrency: int,
                   fail_fast: bool = False,
                   on_start: Callable[[Job], None] | None = None,
                   on_finish: Callable[[ConversationResult], None] | None = None) -> BatchResult:
    """Run `jobs` in `workers` processes sharing `concurrency` conversations at once."""
    context = multiprocessing.get_context("fork")
    count = max(1, min(workers, len(jobs)))
    per_worker = max(1, math.ceil(concurrency / count))
    outbox = context.Queue()
    # Flush so buffered output is not written twice, once by each forked copy.
    sys.stdout.flush()
    sys.stderr.flush()
    processes = [context.Process(target=_worker, name=f"replay-worker-{n}", daemon=True,
                                 args=(jobs[n::count], config, per_worker, fail_fast, outbox))
                 for n in range(count)]
    by_index = {job.index: job for job in jobs}
    results: dict[int, ConversationResult] = {}
    done: list[_Done] = []
    interrupted = False
    fast_stopped = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        _signal_all(processes, signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        for process in processes:
            process.start()
        while len(done) < count:
            try:
                message = outbox.get(timeout=POLL_SECONDS)
            except queues.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead and len(done) < count:
                    _stop_all(processes)
                    raise RunFailure(f"replay worker {dead[0].name} stopped unexpectedly "
                                     f"(exit code {dead[0].exitcode})") from None
                continue
            if isinstance(message, _Done):
                done.append(message)
            elif isinstance(message, _Finished):
                result = ConversationResult(by_index[message.index], message.status,
                                            message.turns, message.seconds, message.error)
                results[message.index] = result
                if on_finish is not None:
                    on_finish(result)
                if fail_fast and result.status != "passed" and not fast_stopped:
                    fast_stopped = True
                    _signal_all(processes, signal.SIGUSR1)
            elif on_start is not None:
                on_start(by_index[message[1]])
    finally:
        for process in processes:
            process.join(timeout=30)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    stopped: Literal["interrupted", "fail_fast"] | None = None
    if interrupted or any(d.stopped == "interrupted" for d in done):
        stopped = "interrupted"
    elif fast_stopped or any(d.stopped == "fail_fast" for d in done):
        stopped = "fail_fast"
    return BatchResult(config=config, jobs=tuple(jobs),
                       conversations=tuple(results[i] for i in sorted(results)),
                       seconds=time.monotonic() - started, stopped=stopped,
                       rate_limited=sum(d.rate_limited for d in done))


def _signal_all(processes: Sequence[multiprocessing.process.BaseProcess], signum: int) -> None:
    for process in processes:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signum)


def _stop_all(processes: Sequence[multiprocessing.process.BaseProcess]) -> None:
    _signal_all(processes, signal.SIGTERM)
