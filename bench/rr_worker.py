"""routing-runner's side of the in-process measurements, one fresh process per measurement.

    python -m bench.rr_worker replay CONFIG TRANSCRIPTS --warmup-prefix warmup
    python -m bench.rr_worker replay CONFIG TRANSCRIPTS --cassettes DIR --record-mode none
    python -m bench.rr_worker long CONFIG --items 1000 --turns 5

`replay` runs transcripts through the library path of `routing-runner replay` (load the config
and transcripts, plan, `Replayer`, `run_replay`), first the warm-up ones, then the measured
ones. `long` pre-fills a stored conversation with that many items, then times turns through
the chat's turn runner. Each prints one JSON line of timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, cast

from bench.scenario import CONVERSATION, history_items
from routing_runner.config import load_config
from routing_runner.replay.load import load_transcripts


def replay(config_path: Path, transcripts: Path, warmup_prefix: str,
           cassettes: Path | None = None, record_mode: str = "none") -> dict[str, Any]:
    """Warm-up transcripts first, then the measured ones, each batch one `run_replay`; with
    `cassettes`, every model call goes through them in `record_mode`."""
    from routing_runner.replay.cassettes import plan_cassettes
    from routing_runner.replay.plan import check_stores, plan
    from routing_runner.replay.runner import Replayer, run_replay

    config = load_config(config_path).config
    every = load_transcripts([str(transcripts)], config)
    shelf = None if cassettes is None else \
        plan_cassettes(cassettes, record_mode, every)  # type: ignore[arg-type]
    warm = [t for t in every if t.name.startswith(warmup_prefix)]
    measured = [t for t in every if not t.name.startswith(warmup_prefix)]
    if warm:
        jobs = plan(warm, 1, os.environ)
        check_stores(jobs)
        _passed(run_replay(Replayer(jobs, config, concurrency=1, cassettes=shelf),
                           handle_signals=False))
    jobs = plan(measured, 1, os.environ)
    cpu = time.process_time()
    wall = time.perf_counter()
    result = run_replay(Replayer(jobs, config, concurrency=1, cassettes=shelf),
                        handle_signals=False)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    _passed(result)
    turns = [turn for conversation in result.conversations for turn in conversation.turns]
    return {"turns": len(turns), "wall": wall, "cpu": cpu,
            "turn_wall": [turn.seconds for turn in turns],
            "ttft": [turn.first_text_seconds for turn in turns
                     if turn.first_text_seconds is not None]}


def _passed(result: Any) -> None:
    """Stop with the first failure: a wrong route would time the wrong work."""
    for conversation in result.conversations:
        if conversation.status != "passed":
            failed = [t for t in conversation.turns if t.status != "passed"]
            detail = conversation.error or (failed[0].mismatches if failed else "")
            raise SystemExit(f"rr_worker: {conversation.transcript.name} "
                             f"{conversation.status}: {detail}")


async def _long(config_path: Path, items: int, turns: int) -> dict[str, Any]:
    from agents.items import TResponseInputItem
    from agents.memory import SQLiteSession

    from routing_runner.runtime.events import TextDelta, TurnEnded, TurnFailed
    from routing_runner.runtime.graph import build_graph
    from routing_runner.runtime.providers import resolve_provider
    from routing_runner.runtime.turns import TurnRunner
    from routing_runner.stores import open_store
    from routing_runner.stores.conversation import Conversation

    config = load_config(config_path).config
    provider = resolve_provider(config, os.environ)
    store = open_store(config.session)
    history, last_agent = history_items(items)
    # Pre-fill directly through the SDK's session, as a long-running chat would have left it.
    prefill = SQLiteSession("long", config.session.database_path())
    await prefill.add_items(cast("list[TResponseInputItem]", history))
    prefill.close()
    await store.set_active_agent("long", last_agent)
    graph = build_graph(config, provider)
    runner = TurnRunner(graph)

    async def turn(conversation: Conversation, message: str) -> tuple[float, float, float | None]:
        """One turn: wall seconds, CPU seconds (every thread), seconds to the first text."""
        cpu = time.process_time()
        started = time.perf_counter()
        first: float | None = None
        ended = False
        async for event in runner.run(conversation, message):
            if isinstance(event, TextDelta) and first is None:
                first = time.perf_counter() - started
            elif isinstance(event, TurnFailed):
                raise SystemExit(f"rr_worker long: turn failed: {event.message}")
            ended = isinstance(event, TurnEnded)
        if not ended:
            raise SystemExit("rr_worker long: the turn did not end with a reply")
        return time.perf_counter() - started, time.process_time() - cpu, first

    try:
        # Warm up on an empty conversation: lazy imports and the first connection.
        warm = await store.open("warmup")
        await turn(warm, CONVERSATION[0].message)
        conversation = await store.open("long")
        timings = [await turn(conversation, CONVERSATION[n % len(CONVERSATION)].message)
                   for n in range(turns)]
        stored = len(await conversation.items())
    finally:
        await graph.aclose()
        await store.close()
    return {"items": items, "stored_after": stored, "turns": len(timings),
            "turn_wall": [t[0] for t in timings], "turn_cpu": [t[1] for t in timings],
            "ttft": [t[2] for t in timings if t[2] is not None]}


def main(argv: list[str] | None = None) -> None:
    """Run one measurement and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    replay_parser = commands.add_parser("replay")
    replay_parser.add_argument("config", type=Path)
    replay_parser.add_argument("transcripts", type=Path)
    replay_parser.add_argument("--warmup-prefix", default="warmup")
    replay_parser.add_argument("--cassettes", type=Path)
    replay_parser.add_argument("--record-mode", default="none")
    long_parser = commands.add_parser("long")
    long_parser.add_argument("config", type=Path)
    long_parser.add_argument("--items", type=int, required=True)
    long_parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args(argv)
    if args.command == "replay":
        result = replay(args.config, args.transcripts, args.warmup_prefix, args.cassettes,
                        args.record_mode)
    else:
        result = asyncio.run(_long(args.config, args.items, args.turns))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
