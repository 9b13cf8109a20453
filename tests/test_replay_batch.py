"""Batches: hundreds of conversations at once with bounded resources, interruption, rate limits."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from agents import Model

from routing_runner.config import load_config
from routing_runner.config.model import Config, RetryConfig
from routing_runner.replay.files import junit_tree
from routing_runner.replay.load import load_transcripts
from routing_runner.replay.plan import plan
from routing_runner.replay.report import summary
from routing_runner.replay.results import BatchResult
from routing_runner.replay.runner import Replayer, run_replay
from routing_runner.runtime.gate import GatedModel, RateLimitGate
from routing_runner.runtime.graph import AgentGraph, ModelHook, build_graph
from routing_runner.runtime.providers import ResolvedProvider
from routing_runner.runtime.retries import retry_settings

from .conftest import REPO, run_cli_with_few_files

MESSAGES = [("Hola, ¿cómo estás?", "spanish"),
            ("Je veux apprendre le français.", "french"),
            ("Hello, I need help with my order.", "english")]


def _batch(folder: Path, count: int, per_file: int = 50) -> tuple[Path, Path]:
    """A config with its sessions in `folder`, and `count` generated transcripts."""
    config = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8").replace(
        "  backend: sqlite", "  backend: sqlite\n  path: sessions.db")
    (folder / "bot.yaml").write_text(config, encoding="utf-8")
    transcripts = folder / "transcripts"
    transcripts.mkdir()
    documents = []
    for i in range(count):
        (first, first_agent), (second, second_agent) = MESSAGES[i % 3], MESSAGES[(i + 1) % 3]
        restart = "  - restart\n" if i % 4 == 0 else ""
        documents.append(
            f"name: generated {i}\ntags: [{'even' if i % 2 == 0 else 'odd'}]\nturns:\n"
            f"  - user: {first!r}\n    expect: {{agent: {first_agent}}}\n{restart}"
            f"  - user: {second!r}\n    expect: {{route: [{first_agent}, {second_agent}]}}\n")
    for start in range(0, count, per_file):
        (transcripts / f"batch{start:04}.yaml").write_text(
            "---\n".join(documents[start:start + per_file]), encoding="utf-8")
    return folder / "bot.yaml", transcripts


def _replay(config: Path, transcripts: Path, **options: Any) -> BatchResult:
    cfg = load_config(config, env={}).config
    jobs = plan(load_transcripts([str(transcripts)], cfg, env={}), env={})
    return run_replay(Replayer(jobs, cfg, **options), handle_signals=False)


def test_hundreds_of_conversations_run_32_at_a_time_within_256_file_descriptors(
        tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 240)
    # The real entry point, in a process that may hold at most 256 files: holding every
    # conversation's session (240 lock files, plus SQLite connections) would not fit.
    done = run_cli_with_few_files("replay", str(config), str(transcripts), "-j", "32")
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "replay: 240 passed, 0 failed, 0 errors (240 conversations, 480 turns)" \
        in done.stdout


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_batch_leaves_no_file_or_connection_open(tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 40, per_file=20)
    _replay(config, transcripts, concurrency=4)  # imports and caches warm up first
    # An earlier test's chat may still be building language models in the background (its
    # word-list reader holds a pipe): let it finish so it does not close a file mid-count.
    for thread in threading.enumerate():
        if thread.name == "language-models":
            thread.join()
    before = sorted(os.listdir("/proc/self/fd"))
    peak = 0

    def sample(_: object) -> None:
        nonlocal peak
        peak = max(peak, len(os.listdir("/proc/self/fd")))

    result = _replay(config, transcripts, concurrency=16, on_start=sample, on_finish=sample)
    assert result.count("passed") == 40
    assert sorted(os.listdir("/proc/self/fd")) == before
    # Bounded by the conversations running at once (16), not by the 40 in the batch.
    assert peak - len(before) < 16 * 6


def test_every_conversation_of_a_batch_is_checked(tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 12)
    (transcripts / "batch0000.yaml").write_text(
        (transcripts / "batch0000.yaml").read_text(encoding="utf-8").replace(
            "name: generated 5\n", "name: generated 5\nconfig: {run: {max_turns: 1}}\n"),
        encoding="utf-8")
    result = _replay(config, transcripts, concurrency=8)
    assert (result.count("passed"), result.count("error")) == (11, 1)
    assert [c.transcript.name for c in result.conversations if c.status == "error"] == \
        ["generated 5"]
    assert result.exit_code == 3


# -- interruption ------------------------------------------------------------------------------


def test_an_interrupted_batch_reports_what_finished_and_exits_130(tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 20)
    replayer: Replayer | None = None

    def finished(_: object) -> None:
        assert replayer is not None
        if len(replayer.results) == 3:
            replayer.interrupt()

    cfg = load_config(config, env={}).config
    jobs = plan(load_transcripts([str(transcripts)], cfg, env={}), env={})
    replayer = Replayer(jobs, cfg, concurrency=2, on_finish=finished)
    result = run_replay(replayer, handle_signals=False)

    assert result.stopped == "interrupted"
    assert result.exit_code == 130
    assert len(result.conversations) == 3
    assert all(c.status == "passed" for c in result.conversations)
    assert len(result.not_run) == 17
    assert "interrupted: 3 of 20 conversations finished; the rest were not run" \
        in summary(result)
    skipped = junit_tree(result).getroot().iter("skipped")
    assert [s.get("message") for s in skipped] == ["not run (interrupted)"] * 17
    # The cancelled conversations let go of their sessions: the whole batch runs again.
    assert _replay(config, transcripts, concurrency=4).count("passed") == 20


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_batch_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    config, transcripts = _batch(tmp_path, 240)
    report = tmp_path / "report.xml"
    process = subprocess.Popen(
        [sys.executable, "-m", "routing_runner", "replay", str(config), str(transcripts),
         "-j", "2", "--junit", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:  # non-tty progress: one line per finished conversation
        if " ok generated " in line:
            break
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted: " in stdout and "the rest were not run" in stdout
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("skipped", "0")) > 0 and suite.get("tests") == "240"


# -- the shared rate-limit gate ------------------------------------------------------------------


def _rate_limit(retry_after: str | None = None) -> openai.RateLimitError:
    headers = {"retry-after": retry_after} if retry_after else {}
    response = httpx2.Response(429, headers=headers,
                              request=httpx2.Request("POST", "http://model.test/v1/responses"))
    return openai.RateLimitError("rate limited", response=response, body=None)


def test_the_gate_backs_off_exponentially_and_honours_retry_after() -> None:
    now = [100.0]
    gate = RateLimitGate(initial_delay=0.5, max_delay=2.0, clock=lambda: now[0])
    assert [gate.trip() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    gate.passed()
    assert gate.trip() == 0.5
    assert gate.trip(retry_after=7.0) == 7.0
    assert gate.closed_for == 7.0
    assert gate.trip(retry_after=3600.0) == 60.0  # a longer wait is not worth it
    now[0] += 61.0
    assert gate.closed_for == 0.0


class _Recording:
    """A model double: records when each call reaches it; raises the errors it is given."""

    def __init__(self, calls: list[float], errors: list[Exception] | None = None) -> None:
        self.calls = calls
        self.errors = errors or []

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "response"


def test_one_rate_limited_call_makes_every_model_wait() -> None:
    gate = RateLimitGate()
    calls: list[float] = []
    limited = GatedModel(_Recording(calls, [_rate_limit("0.2")]), gate)  # type: ignore[arg-type]
    other = GatedModel(_Recording(calls), gate)  # type: ignore[arg-type]

    async def scenario() -> None:
        with pytest.raises(openai.RateLimitError):
            await limited.get_response()
        assert await other.get_response() == "response"

    asyncio.run(scenario())
    tripped_at, other_at = calls
    assert other_at - tripped_at >= 0.19
    assert gate.trips == 1


def test_an_exhausted_quota_does_not_hold_the_batch() -> None:
    gate = RateLimitGate()
    quota = openai.RateLimitError(
        "quota", response=httpx2.Response(429, request=httpx2.Request("POST", "http://m.test")),
        body={"error": {"code": "insufficient_quota"}})
    model = GatedModel(_Recording([], [quota]), gate)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        asyncio.run(model.get_response())
    assert (gate.trips, gate.closed_for) == (0, 0.0)


def test_a_rate_limit_in_one_conversation_holds_all_then_the_batch_passes(
        tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 8)
    starts: list[float] = []
    limited_at: list[float] = []

    class Throttled(Model):
        """Wraps an agent's model; the first call of the whole batch is rate limited."""

        def __init__(self, inner: Model) -> None:
            self.inner = inner

        async def get_response(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("replay streams")

        async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            starts.append(time.monotonic())
            if not limited_at:
                limited_at.append(starts[-1])
                raise _rate_limit("0.3")
            async for event in self.inner.stream_response(*args, **kwargs):
                yield event

    # The SDK's retry loop retries the limited call (offline agents have none by default).
    retry = retry_settings(RetryConfig(max_retries=3, initial_delay=0.01, max_delay=0.05))

    def build(cfg: Config, provider: ResolvedProvider, gate: ModelHook) -> AgentGraph:
        graph = build_graph(cfg, provider,
                            wrap_model=lambda name, model: gate(name, Throttled(model)))
        for agent in graph.agents.values():
            agent.model_settings = dataclasses.replace(agent.model_settings, retry=retry)
        return graph

    result = _replay(config, transcripts, concurrency=4, build=build)
    assert result.count("passed") == 8, summary(result)
    assert result.rate_limited == 1
    assert "rate limited 1 time; the batch waited together each time" in summary(result)
    # Every model call after the rate limit, in any conversation, waited for the gate.
    later = [t for t in starts if t > limited_at[0]]
    assert later and min(later) - limited_at[0] >= 0.29
