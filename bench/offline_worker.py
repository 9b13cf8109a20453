"""The offline model's routing, measured in a fresh process (for bench.offline).

    python -m bench.offline_worker [--limit N]

Builds `configs/languages.yaml` on the offline provider and asks the triage agent's model for
its decision (`OfflineModel.decide`, the exact function its streamed turns use) on every
labelled message. Then times a few whole offline turns through the chat's turn runner. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import ROOT

DATA_SETS = {
    "chat": ROOT / "bench" / "data" / "chat-messages.jsonl",
    "two words": ROOT / "tests" / "data" / "langid" / "word-pairs.jsonl",
    "sentences": ROOT / "tests" / "data" / "langid" / "sentences.jsonl",
}
CONFIG = ROOT / "configs" / "languages.yaml"
EXAMPLES = 8  # misrouted or unrouted messages kept per language and set, for the JSON


def _rows(path: Path, limit: int | None) -> list[dict[str, str]]:
    per_language: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if limit is None or len(per_language[row["lang"]]) < limit:
            per_language[row["lang"]].append(row)
    return [row for rows in per_language.values() for row in rows]


def decisions(limit: int | None) -> dict[str, Any]:
    """Every message's outcome and latency through the triage agent's routing decision."""
    from agents import Handoff, ModelSettings
    from openai.types.responses import ResponseFunctionToolCall

    from routing_runner.config import load_config
    from routing_runner.runtime.graph import build_graph
    from routing_runner.runtime.offline.model import OfflineModel
    from routing_runner.runtime.providers import resolve_provider

    config = load_config(CONFIG, {**os.environ, "ROUTING_RUNNER_PROVIDER": "offline"}).config
    graph = build_graph(config, resolve_provider(config, os.environ))
    triage = graph.entry
    model = triage.model
    assert isinstance(model, OfflineModel)
    handoffs = [h for h in triage.handoffs if isinstance(h, Handoff)]
    language_of_tool = {h.tool_name: config.agents[h.agent_name].language for h in handoffs}
    configured = sorted({a.language for a in config.agents.values() if a.language})
    settings = ModelSettings()

    started = time.perf_counter()
    model.decide("Bonjour, je voudrais de l'aide.", handoffs, settings)
    first = time.perf_counter() - started  # lingua's detectors are built on first use

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for set_name, path in DATA_SETS.items():
        per_language: dict[str, dict[str, Any]] = {}
        for row in _rows(path, limit):
            started = time.perf_counter()
            item = model.decide(row["text"], handoffs, settings)
            seconds = time.perf_counter() - started
            routed = (language_of_tool.get(item.name)
                      if isinstance(item, ResponseFunctionToolCall) else None)
            stats = per_language.setdefault(row["lang"], {"n": 0, "right": 0, "wrong": 0,
                                                          "kept": 0, "seconds": [],
                                                          "examples": []})
            stats["n"] += 1
            stats["seconds"].append(seconds)
            outcome = ("kept" if routed is None else
                       "right" if routed == row["lang"] else "wrong")
            stats[outcome] += 1
            # Right for a configured language; kept for one nobody speaks.
            expected = "right" if row["lang"] in configured else "kept"
            if outcome != expected and len(stats["examples"]) < EXAMPLES:
                # What went wrong, for the JSON report: the message and where it went.
                stats["examples"].append([row["text"], routed or "kept"])
        results[set_name] = per_language
    return {"configured": configured, "first_decision": first, "sets": results}


async def turns(count: int) -> list[float]:
    """Wall time of whole offline turns (route + answer, streamed, stored)."""
    from routing_runner.config import load_config
    from routing_runner.runtime.events import TurnEnded
    from routing_runner.runtime.graph import build_graph
    from routing_runner.runtime.providers import resolve_provider
    from routing_runner.runtime.turns import TurnRunner
    from routing_runner.stores import open_store

    config = load_config(CONFIG, {**os.environ, "ROUTING_RUNNER_PROVIDER": "offline"}).config
    graph = build_graph(config, resolve_provider(config, os.environ))
    runner = TurnRunner(graph)
    store = open_store(config.session)
    messages = [json.loads(line)["text"] for line in
                DATA_SETS["chat"].read_text(encoding="utf-8").splitlines()[:75:3]]
    seconds: list[float] = []
    try:
        conversation = await store.open("bench-offline")
        await conversation.reset()
        for message in (messages * (count // len(messages) + 1))[:count]:
            started = time.perf_counter()
            async for event in runner.run(conversation, message):
                last = event
            seconds.append(time.perf_counter() - started)
            assert isinstance(last, TurnEnded), last
    finally:
        await graph.aclose()
        await store.close()
    return seconds


def main(argv: list[str] | None = None) -> None:
    """Measure and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="messages per language and set")
    parser.add_argument("--turns", type=int, default=20, help="whole offline turns to time")
    args = parser.parse_args(argv)
    result = decisions(args.limit)
    result["turn_seconds"] = asyncio.run(turns(args.turns))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
