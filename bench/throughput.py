"""2. Batch throughput: `routing-runner replay` against the limits the model and the CPU set.

A batch of N conversations (the scenario's 5 turns, 8 model calls each) at concurrency C
cannot finish sooner than either limit:

- the model: ceil(N / C) waves, each one conversation's model time (8 x latency plus the
  streamed replies' token time);
- the CPU: every turn costs at least what the SDK alone spends on it (measured here, in the
  same run, with the hand-written loop at the row's latency), plus what the loopback server
  spent answering during the row (it shares the machine's cores), spread over all cores.

Each row runs the real command (`routing-runner replay CONFIG T -j C --workers W --json F`) as
a whole process, timed from start to exit (start-up and reading the transcripts included),
while a sampler records the peak memory (PSS, so forked workers are not counted twice) and
open descriptors of it and its workers. Rows with a small C run 16 waves (N = 16 C) instead
of 1,000 conversations, which at C = 1 would take minutes of waiting on the model alone.
The target row is C = 64 at the configured latency on W workers; the speedup compares W
workers with one process at latency 0, where only the CPU limits.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    CORES,
    PYTHON,
    ROUTING_RUNNER,
    BenchError,
    Loopback,
    Section,
    Verdict,
    at_least,
    at_most,
    bench_env,
    run_json,
    run_watched,
    scratch,
)
from bench.scenario import CONVERSATION, config_yaml, model_calls, model_seconds, transcripts_yaml

LIMIT_TARGET = 1.15          # measured / limit at the target row
TARGET_CONCURRENCY = 64
SPEEDUP_TARGET = 1.8         # W workers against one process, both CPU-bound (latency 0)
BATCH_WAVES = 16             # rows with small C run 16 waves, not 1,000 conversations
CALIBRATION_CONVERSATIONS = 40
CALIBRATION_RUNS = 3


@dataclass(frozen=True)
class ThroughputSettings:
    """Sizes of the batches."""

    conversations: int = 1000
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 64, 128])
    workers: int = CORES
    latency: float = 0.05
    token_delay: float = 0.002
    quick: bool = False


@dataclass(frozen=True)
class Batch:
    """One row: N conversations at concurrency C on W worker processes, latency L."""

    conversations: int
    concurrency: int
    workers: int
    latency: float

    @property
    def label(self) -> str:
        """How the row is named in the table."""
        return (f"N={self.conversations} C={self.concurrency} W={self.workers} "
                f"L={self.latency * 1000:g}ms")


@dataclass(frozen=True)
class Calibration:
    """The SDK's own CPU per turn and the server's CPU per model call, at latency 0."""

    sdk_cpu_per_turn: float
    sdk_turns_per_second: float
    server_cpu_per_call: float


def workers_supported() -> bool:
    """Whether this routing-runner has `replay --workers` (one process per core)."""
    shown = subprocess.run([ROUTING_RUNNER, "replay", "--help"], capture_output=True,
                           text=True, check=False, env={**os.environ, "COLUMNS": "200"})
    return "--workers" in shown.stdout


def calibrate(latency: float, token_delay: float, quick: bool) -> Calibration:
    """The hand-written loop in one process at this latency: CPU per turn, turns per second.

    Measured at the latency of the rows it bounds: paced deltas arrive one by one and cost
    the SDK more CPU than a reply that arrives in one piece, so a limit from latency 0 would
    be too strict for the rows with latency. Its conversations run all at once, as the
    batch rows' do.
    """
    count = 1 if quick else CALIBRATION_CONVERSATIONS
    runs: list[Calibration] = []
    with Loopback(latency, token_delay) as server:
        # The limit of every row rests on this figure: the median of a few processes.
        for _ in range(1 if quick else CALIBRATION_RUNS):
            with scratch("calibrate") as folder:
                server_cpu = server.cpu_seconds()
                result = run_json([PYTHON, "-m", "bench.baseline_sdk_loop", "--base-url",
                                   server.base_url, "--database", str(folder / "baseline.db"),
                                   "--conversations", str(count), "--concurrency", str(count),
                                   "--warmup", "1"], bench_env(folder))
                # Warm-up included: the server answered (count + 1) conversations meanwhile.
                calls = (count + 1) * model_calls()
                runs.append(Calibration(result["cpu"] / result["turns"],
                                        result["turns"] / result["wall"],
                                        (server.cpu_seconds() - server_cpu) / calls))
    runs.sort(key=lambda run: run.sdk_cpu_per_turn)
    return runs[len(runs) // 2]


def _batch(batch: Batch, server: Loopback, token_delay: float) -> dict[str, Any]:
    with scratch("batch") as folder:
        config = folder / "bench.yaml"
        config.write_text(config_yaml(server.base_url, folder / "sessions.db"), encoding="utf-8")
        transcripts = folder / "batch.yaml"
        transcripts.write_text(transcripts_yaml(
            [f"conversation-{n:05d}" for n in range(batch.conversations)]), encoding="utf-8")
        report = folder / "report.json"
        args = [ROUTING_RUNNER, "replay", str(config), str(transcripts),
                "-j", str(batch.concurrency), "--json", str(report)]
        if batch.workers > 1:
            args += ["--workers", str(batch.workers)]
        server_cpu = server.cpu_seconds()
        watched = run_watched(args, bench_env(folder))
        server_cpu = server.cpu_seconds() - server_cpu
        if watched.returncode != 0:
            raise BenchError(f"{batch.label}: replay exited {watched.returncode}:\n"
                             f"{watched.stderr[-1500:]}{watched.stdout[-1500:]}")
        totals = json.loads(report.read_text(encoding="utf-8"))
    turns = totals["totals"]["turns"]
    if turns != batch.conversations * len(CONVERSATION):
        raise BenchError(f"{batch.label}: {turns} turns ran, expected "
                         f"{batch.conversations * len(CONVERSATION)}")
    return {"wall": watched.wall, "batch_seconds": totals["seconds"], "cpu": watched.cpu,
            "server_cpu": server_cpu, "turns": turns, "peak_mb": watched.peak_mb,
            "peak_files": watched.peak_files, "processes": watched.processes}


def limits(batch: Batch, token_delay: float, calibration: Calibration,
           server_cpu: float | None = None) -> dict[str, float]:
    """The model limit and the CPU limit (on all cores) of a batch, in seconds.

    The CPU limit is the SDK's CPU for every turn plus the loopback server's CPU, over all
    cores. The server's share is what it used during the batch when known (`server_cpu`):
    answering 100 streams a second from 64 threads costs it more per call than the
    calibration's quieter run, and those cycles are the simulated model's, not the runner's.
    """
    waves = math.ceil(batch.conversations / batch.concurrency)
    model = waves * model_seconds(batch.latency, token_delay)
    turns = batch.conversations * len(CONVERSATION)
    if server_cpu is None:
        server_cpu = batch.conversations * model_calls() * calibration.server_cpu_per_call
    cpu = (turns * calibration.sdk_cpu_per_turn + server_cpu) / CORES
    return {"model_limit": model, "cpu_limit": cpu, "limit": max(model, cpu)}


def _rows(settings: ThroughputSettings, workers: int) -> list[Batch]:
    """Every C at the configured latency on W workers, then single process vs W at L=0."""
    big = settings.conversations
    if settings.quick:  # the code path only: one small batch on W workers, CPU-bound
        return [Batch(big, settings.concurrency[-1], workers, 0.0)]
    target_c = TARGET_CONCURRENCY
    batches = [Batch(min(big, BATCH_WAVES * c), c, workers, settings.latency)
               for c in settings.concurrency]
    single = min(big, 250)
    batches.append(Batch(single, target_c, 1, settings.latency))
    batches.append(Batch(single, target_c, 1, 0.0))
    batches.append(Batch(min(big, 2 * single), target_c, workers, 0.0))
    # Without --workers the W rows and the single-process rows can coincide.
    return list(dict.fromkeys(batches))


def run(settings: ThroughputSettings) -> Section:
    """Calibrate, run every batch, and compare each with its limit."""
    section = Section("2 batch throughput")
    started = time.perf_counter()
    supported = workers_supported()
    workers = settings.workers if supported else 1
    batches = _rows(settings, workers)
    calibrations: dict[float, Calibration] = {}
    for latency in dict.fromkeys(batch.latency for batch in batches):
        print(f"bench:   calibrating the SDK loop at L={latency * 1000:g}ms", file=sys.stderr,
              flush=True)
        calibration = calibrations[latency] = calibrate(latency, settings.token_delay,
                                                        settings.quick)
        section.add(f"SDK alone, L={latency * 1000:g}ms: CPU per turn",
                    calibration.sdk_cpu_per_turn * 1000, "ms",
                    note=f"{calibration.sdk_turns_per_second:.0f} turns/s in one process; "
                         f"server {calibration.server_cpu_per_call * 1000:.2f} ms CPU/call")
    results: dict[str, Any] = {}
    servers: dict[float, Loopback] = {}
    try:
        for batch in batches:
            if batch.latency not in servers:
                servers[batch.latency] = Loopback(batch.latency, settings.token_delay)
            print(f"bench:   {batch.label}", flush=True, file=sys.stderr)
            measured = _batch(batch, servers[batch.latency], settings.token_delay)
            bound = limits(batch, settings.token_delay, calibrations[batch.latency],
                           measured["server_cpu"])
            results[batch.label] = {**measured, **bound}
            _add_row(section, batch, measured, bound, workers, supported, settings)
    finally:
        for server in servers.values():
            server.close()
    _speedup(section, results, settings, workers, supported)
    section.raw = {"settings": settings.__dict__,
                   "calibration": {str(k): v.__dict__ for k, v in calibrations.items()},
                   "workers_supported": supported, "batches": results}
    section.seconds = time.perf_counter() - started
    return section


def _add_row(section: Section, batch: Batch, measured: dict[str, Any], bound: dict[str, float],
             workers: int, supported: bool, settings: ThroughputSettings) -> None:
    """The batch's wall time against its limit; the target row is C=64 at L on W workers."""
    wall = measured["wall"]
    share = wall / bound["limit"]
    which = "model" if bound["model_limit"] >= bound["cpu_limit"] else "CPU"
    is_target = (batch.concurrency == TARGET_CONCURRENCY and batch.latency == settings.latency
                 and batch.workers == workers and batch.workers > 1)
    verdict: Verdict = at_most(share, LIMIT_TARGET) if is_target else "info"
    if not supported and batch.concurrency == TARGET_CONCURRENCY and batch.latency > 0 \
            and batch.workers == workers:
        verdict = "pending"
    # Faster than the model allows means more than C conversations ran at once.
    warning = "; BELOW THE MODEL LIMIT: over C at once?" if share < 0.95 else ""
    section.add(batch.label, wall, "s", baseline=bound["limit"], ratio=share,
                target=f"<= {LIMIT_TARGET:g}" if verdict != "info" else "", verdict=verdict,
                note=f"{measured['turns'] / wall:,.0f} turns/s; against the {which} limit "
                     f"(model {bound['model_limit']:.1f} s: the waves' model time, so "
                     f"{wall / bound['model_limit']:.1f}x slower than the model allows; CPU "
                     f"{bound['cpu_limit']:.1f} s: the SDK loop's CPU per turn and the "
                     f"server's, over {CORES} cores, not a measured batch); "
                     f"peak {measured['peak_mb']:.0f} MB, {measured['peak_files']} fds, "
                     f"{measured['processes']} procs{warning}")


def _speedup(section: Section, results: dict[str, Any], settings: ThroughputSettings,
             workers: int, supported: bool) -> None:
    """W workers against one process, both at latency 0 (CPU-bound).

    Compared on the batch itself (replay's own time from the first conversation's start to
    the last one's end): the process start-up before it is the same for both and is measured
    in section 3; the whole-process figures are in the note.
    """
    cpu_bound = [(label, r) for label, r in results.items() if label.endswith("L=0ms")]
    single = next((r for label, r in cpu_bound if " W=1 " in label), None)
    multi = next((r for label, r in cpu_bound if " W=1 " not in label), None)
    if single is None:
        return
    if multi is None or not supported:
        section.add(f"speedup, {settings.workers} workers vs 1", None, "x",
                    target=f">= {SPEEDUP_TARGET:g}", verdict="pending",
                    note="replay --workers not available yet")
        return
    single_rate = single["turns"] / single["batch_seconds"]
    multi_rate = multi["turns"] / multi["batch_seconds"]
    speedup = multi_rate / single_rate
    whole = (multi["turns"] / multi["wall"]) / (single["turns"] / single["wall"])
    section.add(f"speedup, {workers} workers vs 1 (L=0)", multi_rate, "turns/s",
                baseline=single_rate, ratio=speedup, target=f">= {SPEEDUP_TARGET:g}",
                verdict=at_least(speedup, SPEEDUP_TARGET),
                note=f"batch time; whole processes {whole:.2f}x; CPU "
                     f"{multi['cpu'] / multi['turns'] * 1000:.1f} vs "
                     f"{single['cpu'] / single['turns'] * 1000:.1f} ms/turn")
