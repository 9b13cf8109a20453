"""The baseline: the routing loop as one writes it by hand on the Agents SDK.

It does what the SDK's routing example (examples/agent_patterns/routing.py) does - a triage
agent handing off to three language agents, `Runner.run_streamed`, the next turn on the agent
that answered (`result.last_agent`) - with the history in a `SQLiteSession` instead of
`to_input_list()`, because that is what routing-runner keeps. It imports nothing from
routing_runner. Tracing is off, as in routing-runner's default, since it would export to
OpenAI.

    python -m bench.baseline_sdk_loop --base-url URL --chat          # a chat, prompt "you> "
    python -m bench.baseline_sdk_loop --base-url URL --conversations 5 --concurrency 1

The second form runs the scenario's conversation (bench.scenario) that many times and prints
one JSON line of timings: wall and CPU time over all measured turns, and each turn's wall time
and time to its first text delta.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents import (
    Agent,
    RunConfig,
    Runner,
    SQLiteSession,
    handoff,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from openai.types.responses import ResponseTextDeltaEvent

from bench.scenario import AGENTS, API_KEY, CONVERSATION, ENTRY, MODEL_NAME

RUN_CONFIG = RunConfig(tracing_disabled=True)


def build_agents(base_url: str) -> dict[str, Agent[Any]]:
    """The example's agents on the loopback server, handoffs as in the scenario."""
    set_default_openai_client(AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0),
                              use_for_tracing=False)
    set_default_openai_api("responses")
    set_tracing_disabled(True)
    agents: dict[str, Agent[Any]] = {
        spec.name: Agent(name=spec.name, instructions=spec.instructions,
                         handoff_description=spec.handoff_description, model=MODEL_NAME)
        for spec in AGENTS
    }
    for spec in AGENTS:
        agents[spec.name].handoffs = [handoff(agents[target]) for target in spec.handoffs]
    return agents


async def run_turn(agent: Agent[Any], message: str, session: SQLiteSession,
                   on_delta: Callable[[str], None]) -> Agent[Any]:
    """One turn, streamed; returns the agent that answered (it takes the next turn)."""
    result = Runner.run_streamed(agent, message, session=session, run_config=RUN_CONFIG)
    async for event in result.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            on_delta(event.data.delta)
    return result.last_agent


async def chat(agents: dict[str, Agent[Any]], database: Path) -> None:
    """Read messages at a `you> ` prompt until end of input, streaming each reply."""
    session = SQLiteSession("baseline-chat", database)
    agent = agents[ENTRY]
    try:
        while True:
            try:
                # input() blocks the loop between turns, as the SDK example does.
                message = input("you> ")  # noqa: ASYNC250
            except EOFError:
                return
            print(f"{agent.name}: ", end="", flush=True)
            agent = await run_turn(agent, message, session,
                                   lambda delta: print(delta, end="", flush=True))
            print(flush=True)
    finally:
        session.close()


async def conversation(agents: dict[str, Agent[Any]], database: Path, session_id: str,
                       timings: list[tuple[float, float | None]]) -> None:
    """The scenario's conversation in a fresh session; appends (wall, first text) per turn."""
    session = SQLiteSession(session_id, database)
    agent = agents[ENTRY]
    try:
        for step in CONVERSATION:
            started = time.perf_counter()
            first: list[float] = []

            def heard(_delta: str, started: float = started, first: list[float] = first) -> None:
                if not first:
                    first.append(time.perf_counter() - started)

            agent = await run_turn(agent, step.message, session, heard)
            if agent.name != step.agent:
                raise SystemExit(f"baseline: {step.message!r} answered by {agent.name}, "
                                 f"expected {step.agent}")
            timings.append((time.perf_counter() - started, first[0] if first else None))
    finally:
        session.close()


async def batch(agents: dict[str, Agent[Any]], database: Path, count: int, concurrency: int,
                prefix: str) -> list[tuple[float, float | None]]:
    """`count` conversations, at most `concurrency` at once; every turn's timings."""
    timings: list[tuple[float, float | None]] = []
    slots = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with slots:
            await conversation(agents, database, f"{prefix}-{n}", timings)

    await asyncio.gather(*(one(n) for n in range(count)))
    return timings


async def measure(base_url: str, database: Path, count: int, concurrency: int,
                  warmup: int) -> dict[str, Any]:
    """Warm up (imports, first connection), then time `count` conversations."""
    agents = build_agents(base_url)
    if warmup:
        await batch(agents, database, warmup, min(warmup, concurrency), "warmup")
    cpu = time.process_time()
    wall = time.perf_counter()
    timings = await batch(agents, database, count, concurrency, "measured")
    return {"turns": len(timings), "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "turn_wall": [t for t, _ in timings],
            "ttft": [f for _, f in timings if f is not None]}


def main(argv: list[str] | None = None) -> None:
    """Chat, or run and time conversations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the loopback server's /v1 URL")
    parser.add_argument("--database", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--chat", action="store_true", help="chat on stdin/stdout")
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured conversations first")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as folder:
        database = args.database or Path(folder) / "sessions.db"
        if args.chat:
            asyncio.run(chat(build_agents(args.base_url), database))
            return
        result = asyncio.run(measure(args.base_url, database, args.conversations,
                                     args.concurrency, args.warmup))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
