"""6. `routing-runner serve`: its CPU per turn against in-process replay, and many open streams.

Per-turn CPU: the scenario's 5-turn conversation, streamed through `/v1/chat/completions` of a
real `serve` process (the server's own CPU, read from /proc over the measured conversations,
after a warm-up one), against the same conversations replayed in process (`bench.rr_worker
replay`, as row 1 measures it), in repetitions that take turns going first.

Open streams: `streams` new conversations at once, each one streamed turn answered by one model
call of `latency` (1 s by default), started together by an asyncio client in this process. The
added latency is each request's time to its last byte minus the model's own time; memory per
open stream is the server's peak PSS during the burst above its PSS when idle, per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from bench.common import (
    PYTHON,
    BenchError,
    Loopback,
    Section,
    TreeSampler,
    at_most,
    bench_env,
    median,
    percentile,
    process_cpu,
    ratio,
    scratch,
)
from bench.overhead import OverheadSettings
from bench.overhead import _routing_runner as replay_in_process
from bench.scenario import CONVERSATION, REPLY_WORDS, config_yaml

CPU_TARGET = 1.1
MODEL = "bench-routing"
# A new conversation at the Spanish agent, with a message it answers itself: one model call.
ONE_CALL = ("spanish", "¿Me ayudas con mi pedido, por favor?")


@dataclass(frozen=True)
class ServeSettings:
    """How much to measure."""

    repetitions: int = 3
    conversations: int = 4
    latency: float = 0.05
    token_delay: float = 0.002
    streams: int = 1000
    stream_latency: float = 1.0


def _raise_file_limit() -> None:
    """A stream holds two sockets (client, model): let the server open as many as it may."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def _serving(folder: Path, base_url: str, streams: int) -> Iterator[tuple[str, int]]:
    """A `serve` process on the scenario's config; yields its URL and pid once it answers."""
    config = folder / "bench.yaml"
    config.write_text(config_yaml(base_url, folder / "serve.db") +
                      f"serve: {{max_concurrent_turns: {streams + 10}, lock_wait: 60}}\n",
                      encoding="utf-8")
    port = _free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "routing_runner", "serve", str(config), "--port", str(port)],
        env=bench_env(folder), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, preexec_fn=_raise_file_limit)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"serve exited {process.returncode} before it answered")
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(url + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise BenchError("serve did not answer within 120 s")


async def _turn(client: httpx2.AsyncClient, url: str, message: str, session_id: str | None,
                model: str = MODEL) -> tuple[str, float]:
    """One streamed turn; the conversation's id and the seconds to the stream's last byte."""
    headers = {"X-Session-Id": session_id} if session_id else {}
    started = time.perf_counter()
    async with client.stream("POST", url + "/v1/chat/completions", headers=headers, json={
            "model": model, "stream": True,
            "messages": [{"role": "user", "content": message}]}) as response:
        if response.status_code != 200:
            raise BenchError(f"serve answered {response.status_code}: "
                             f"{(await response.aread())[:200]!r}")
        last = ""
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                last = line
        if '"routing"' not in last and last != "data: [DONE]":
            raise BenchError(f"a stream ended without its routing: {last[:200]}")
    return response.headers["x-session-id"], time.perf_counter() - started


async def _conversations(url: str, count: int) -> int:
    """`count` whole scenario conversations, one after another; the turns taken."""
    turns = 0
    async with httpx2.AsyncClient(timeout=120) as client:
        for _ in range(count):
            session_id = None
            for step in CONVERSATION:
                session_id, _seconds = await _turn(client, url, step.message, session_id)
                turns += 1
    return turns


def _serve_cpu(server: Loopback, folder: Path, settings: ServeSettings) -> dict[str, Any]:
    with _serving(folder, server.base_url, 1) as (url, pid):
        asyncio.run(_conversations(url, 1))  # warm-up: imports, connections, the first turn
        cpu = process_cpu(pid)
        turns = asyncio.run(_conversations(url, settings.conversations))
        return {"turns": turns, "cpu": process_cpu(pid) - cpu}


async def _burst(url: str, streams: int) -> list[float]:
    limits = httpx2.Limits(max_connections=streams + 10, max_keepalive_connections=streams)
    async with httpx2.AsyncClient(timeout=300, limits=limits) as client:
        agent, message = ONE_CALL
        await _turn(client, url, message, None, agent)  # warm-up
        results = await asyncio.gather(*(_turn(client, url, message, None, agent)
                                         for _ in range(streams)))
    return [seconds for _session, seconds in results]


def _streams(settings: ServeSettings) -> dict[str, Any]:
    token_delay = settings.token_delay
    with Loopback(settings.stream_latency, token_delay) as server, \
            scratch("serve-streams") as folder, \
            _serving(folder, server.base_url, settings.streams) as (url, pid):
        asyncio.run(_burst(url, 1))
        idle = TreeSampler(pid, period=0.2)
        time.sleep(0.5)
        idle.stop()
        sampler = TreeSampler(pid, period=0.2)
        try:
            seconds = asyncio.run(_burst(url, settings.streams))
        finally:
            sampler.stop()
    model = settings.stream_latency + (REPLY_WORDS - 1) * token_delay
    added = [s - model for s in seconds]
    return {"added_p50": percentile(added, 0.5), "added_p99": percentile(added, 0.99),
            "turns_per_second": len(seconds) / max(seconds),
            "idle_mb": idle.peak_bytes / 2**20, "peak_mb": sampler.peak_bytes / 2**20,
            "model": model, "streams": len(seconds)}


def run(settings: ServeSettings) -> Section:
    """Rows: CPU per turn against replay; added latency and memory per open stream."""
    section = Section("6 serve")
    started = time.perf_counter()
    pairs: list[tuple[float, float]] = []
    overhead = OverheadSettings(conversations=settings.conversations,
                                latency=settings.latency, token_delay=settings.token_delay)
    with Loopback(settings.latency, settings.token_delay) as server:
        for repetition in range(settings.repetitions):
            measured: dict[str, float] = {}
            for side in (("serve", "replay") if repetition % 2 else ("replay", "serve")):
                with scratch(f"serve-{side}") as folder:
                    result = (_serve_cpu(server, folder, settings) if side == "serve"
                              else replay_in_process(server, folder, overhead))
                measured[side] = result["cpu"] / result["turns"]
            pairs.append((measured["serve"], measured["replay"]))
    pair_ratio = median(ratio(s, r) for s, r in pairs)
    section.add("CPU per turn, serve vs in-process replay", median(s for s, _ in pairs) * 1000,
                "ms", baseline=median(r for _, r in pairs) * 1000, ratio=pair_ratio,
                target=f"<= {CPU_TARGET:g}", verdict=at_most(pair_ratio, CPU_TARGET),
                note=f"{settings.repetitions}x{settings.conversations} conversations of "
                     f"{len(CONVERSATION)} turns, streamed")
    streams = _streams(settings)
    note = (f"{streams['streams']} streams at once, model {streams['model']:.2f} s each "
            "(client in the same machine)")
    section.add("added latency per stream, p50", streams["added_p50"] * 1000, "ms", note=note)
    section.add("added latency per stream, p99", streams["added_p99"] * 1000, "ms",
                note="one worker: the streams share its one core (its turns' CPU)")
    section.add("turns answered per second in the burst", streams["turns_per_second"], "/s")
    per_stream = (streams["peak_mb"] - streams["idle_mb"]) * 1024 / max(1, streams["streams"])
    section.add("memory per open stream", per_stream, "KiB",
                note=f"server PSS {streams['idle_mb']:.0f} MB idle, "
                     f"{streams['peak_mb']:.0f} MB at the peak")
    section.raw = {"settings": settings.__dict__, "pairs": pairs, "streams": streams}
    section.seconds = time.perf_counter() - started
    return section

