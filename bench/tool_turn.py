"""6. A turn with one function-tool call: routing-runner against a hand-written SDK loop.

Both sides run the same conversations - `turns` turns of "Where is my order A1?", each a
model call that calls `lookup_order` (bench/bench_tools.py), the tool, and a model call that
answers - against the same loopback server, in fresh processes taking turns as in section 1.
routing-runner reads the tool from its config (`tools:`, `python_path:`) and replays
transcripts that expect the call; the baseline is the SDK's `function_tool` on an `Agent`
with `Runner.run_streamed` and a `SQLiteSession`.

    python -m bench.tool_turn baseline --base-url URL --conversations 4 --turns 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    Loopback,
    Section,
    at_most,
    bench_env,
    median,
    ratio,
    run_json,
    scratch,
)
from bench.scenario import API_KEY, MODEL_NAME, TOOL_AGENT, TOOL_MESSAGE, TOOL_NAME

CPU_TARGET = 1.2
BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ToolTurnSettings:
    """How much to measure."""

    repetitions: int = 5
    conversations: int = 4
    turns: int = 5
    latency: float = 0.05
    token_delay: float = 0.002


# ---------------------------------------------------------------------------------------------
# The baseline, in its own process (imports nothing from routing_runner)


async def _baseline(base_url: str, database: Path, conversations: int, turns: int
                    ) -> dict[str, Any]:
    from agents import (
        Agent,
        RunConfig,
        Runner,
        SQLiteSession,
        function_tool,
        set_default_openai_api,
        set_default_openai_client,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    from bench.bench_tools import lookup_order

    set_default_openai_client(AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0),
                              use_for_tracing=False)
    set_default_openai_api("responses")
    set_tracing_disabled(True)
    agent: Agent[Any] = Agent(name=TOOL_AGENT.name, instructions=TOOL_AGENT.instructions,
                              model=MODEL_NAME, tools=[function_tool(lookup_order)])
    run_config = RunConfig(tracing_disabled=True)

    async def conversation(session_id: str) -> int:
        session = SQLiteSession(session_id, database)
        calls = 0
        try:
            for _ in range(turns):
                result = Runner.run_streamed(agent, TOOL_MESSAGE, session=session,
                                             run_config=run_config)
                async for event in result.stream_events():
                    if event.type == "run_item_stream_event" and event.name == "tool_output":
                        calls += 1
        finally:
            session.close()
        return calls

    await conversation("warmup")
    cpu = time.process_time()
    wall = time.perf_counter()
    calls = [await conversation(f"measured-{n}") for n in range(conversations)]
    return {"turns": conversations * turns, "tool_calls": sum(calls),
            "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


# ---------------------------------------------------------------------------------------------
# routing-runner's side: a config and transcripts for bench.rr_worker


def config_yaml(base_url: str, database: Path) -> str:
    """The tool turn's agent as a routing-runner config on the loopback server."""
    return "\n".join([
        "# Written by bench/tool_turn.py.",
        f"entry: {TOOL_AGENT.name}",
        f"model: {{provider: openai, name: {MODEL_NAME}, base_url: {json.dumps(base_url)}}}",
        f"session: {{path: {json.dumps(str(database))}}}",
        f"python_path: [{json.dumps(str(BENCH))}]",
        f"tools: {{{TOOL_NAME}: {{function: 'bench_tools:{TOOL_NAME}'}}}}",
        "agents:",
        f"  {TOOL_AGENT.name}:",
        f"    instructions: {json.dumps(TOOL_AGENT.instructions)}",
        f"    tools: [{TOOL_NAME}]",
    ]) + "\n"


def transcripts_yaml(names: list[str], turns: int) -> str:
    """One transcript per name: `turns` tool turns, each expecting the one call."""
    turn = (f"  - user: {json.dumps(TOOL_MESSAGE)}\n"
            f"    expect: {{tools: {{calls: [{TOOL_NAME}], order: exact}}}}\n")
    return "---\n".join(f"name: {name}\nturns:\n{turn * turns}" for name in names)


def _routing_runner(server: Loopback, folder: Path, settings: ToolTurnSettings
                    ) -> dict[str, Any]:
    config = folder / "tools.yaml"
    config.write_text(config_yaml(server.base_url, folder / "rr.db"), encoding="utf-8")
    transcripts = folder / "tool-turns.yaml"
    names = ["warmup-1", *(f"measured-{n}" for n in range(settings.conversations))]
    transcripts.write_text(transcripts_yaml(names, settings.turns), encoding="utf-8")
    return run_json([PYTHON, "-m", "bench.rr_worker", "replay", str(config), str(transcripts),
                     "--warmup-prefix", "warmup"], bench_env(folder))


def _baseline_process(server: Loopback, folder: Path, settings: ToolTurnSettings
                      ) -> dict[str, Any]:
    return run_json([PYTHON, "-m", "bench.tool_turn", "baseline", "--base-url", server.base_url,
                     "--database", str(folder / "baseline.db"),
                     "--conversations", str(settings.conversations),
                     "--turns", str(settings.turns)], bench_env(folder))


def run(settings: ToolTurnSettings) -> Section:
    """Interleaved repetitions; the CPU and wall time of a tool turn on each side."""
    section = Section("8 tool turn")
    started = time.perf_counter()
    pairs: list[dict[str, dict[str, float]]] = []
    with Loopback(settings.latency, settings.token_delay) as server:
        for repetition in range(settings.repetitions):
            order = ("baseline", "rr") if repetition % 2 == 0 else ("rr", "baseline")
            measured: dict[str, dict[str, float]] = {}
            for side in order:
                with scratch(f"tools-{side}") as folder:
                    result = (_baseline_process(server, folder, settings) if side == "baseline"
                              else _routing_runner(server, folder, settings))
                measured[side] = {"cpu": result["cpu"] / result["turns"],
                                  "wall": result["wall"] / result["turns"]}
            pairs.append(measured)
    section.raw = {"settings": settings.__dict__, "pairs": pairs}
    note = (f"{settings.repetitions}x{settings.conversations} conversations of "
            f"{settings.turns} turns, 1 tool call and 2 model calls a turn")
    for key, label, target in (("cpu", "CPU time per tool turn", CPU_TARGET),
                               ("wall", "wall time per tool turn", None)):
        pair_ratio = median(ratio(p["rr"][key], p["baseline"][key]) for p in pairs)
        section.add(label, _ms(median(p["rr"][key] for p in pairs)), "ms",
                    baseline=_ms(median(p["baseline"][key] for p in pairs)), ratio=pair_ratio,
                    target=f"<= {target:g}" if target else "",
                    verdict=at_most(pair_ratio, target) if target else "info",
                    note=note if key == "cpu" else "")
    section.seconds = time.perf_counter() - started
    return section


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def main(argv: list[str] | None = None) -> None:
    """The baseline side: run and time the conversations, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["baseline"])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--database", type=Path)
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-tool-baseline-") as folder:
        database = args.database or Path(folder) / "sessions.db"
        result = asyncio.run(_baseline(args.base_url, database, args.conversations, args.turns))
    if result["tool_calls"] != result["turns"]:
        # A turn without its tool call would time the wrong work.
        raise SystemExit(f"tool_turn baseline: {result['tool_calls']} tool calls in "
                         f"{result['turns']} turns")
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
