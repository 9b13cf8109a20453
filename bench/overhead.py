"""1. Per-turn overhead: routing-runner's replay path against the hand-written SDK loop.

Both run the scenario's 5-turn conversation (3 handoffs, 8 model calls) against the same
loopback server, one conversation at a time, in fresh processes taking turns (baseline first
in even repetitions, routing-runner first in odd ones, so drift in the machine's load hits
both). Each process warms up on one conversation, then times `conversations` more.

Per turn: wall time (the measured conversations' total, opening and closing sessions
included, divided by their turns), CPU time (the whole process, every thread, over the same
span), and time to the first streamed text. The ratios are medians of the per-repetition
ratios.
"""

from __future__ import annotations

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
from bench.scenario import CONVERSATION, config_yaml, model_seconds, transcripts_yaml

WALL_TARGET = 1.05
CPU_TARGET = 1.2


@dataclass(frozen=True)
class OverheadSettings:
    """How much to measure."""

    repetitions: int = 5
    conversations: int = 4
    latency: float = 0.05
    token_delay: float = 0.002


def _summary(result: dict[str, Any]) -> dict[str, float | None]:
    turns = result["turns"]
    return {"wall": result["wall"] / turns, "cpu": result["cpu"] / turns,
            "ttft": median(result["ttft"]), "turn_wall": median(result["turn_wall"])}


def _baseline(server: Loopback, folder: Path, settings: OverheadSettings) -> dict[str, Any]:
    return run_json([PYTHON, "-m", "bench.baseline_sdk_loop", "--base-url", server.base_url,
                     "--database", str(folder / "baseline.db"),
                     "--conversations", str(settings.conversations), "--warmup", "1"],
                    bench_env(folder))


def _routing_runner(server: Loopback, folder: Path, settings: OverheadSettings
                    ) -> dict[str, Any]:
    config = folder / "bench.yaml"
    config.write_text(config_yaml(server.base_url, folder / "rr.db"), encoding="utf-8")
    transcripts = folder / "conversations.yaml"
    names = ["warmup-1", *(f"measured-{n}" for n in range(settings.conversations))]
    transcripts.write_text(transcripts_yaml(names), encoding="utf-8")
    return run_json([PYTHON, "-m", "bench.rr_worker", "replay", str(config), str(transcripts),
                     "--warmup-prefix", "warmup"], bench_env(folder))


def run(settings: OverheadSettings) -> Section:
    """Interleaved repetitions; rows for wall, CPU and first-token time per turn."""
    section = Section("1 per-turn overhead")
    started = time.perf_counter()
    pairs: list[tuple[dict[str, float | None], dict[str, float | None]]] = []
    with Loopback(settings.latency, settings.token_delay) as server:
        for repetition in range(settings.repetitions):
            order = ("baseline", "rr") if repetition % 2 == 0 else ("rr", "baseline")
            measured: dict[str, dict[str, float | None]] = {}
            for side in order:
                with scratch(f"overhead-{side}") as folder:
                    result = (_baseline(server, folder, settings) if side == "baseline"
                              else _routing_runner(server, folder, settings))
                measured[side] = _summary(result)
            pairs.append((measured["rr"], measured["baseline"]))
    section.raw = {"settings": settings.__dict__,
                   "pairs": [{"rr": rr, "baseline": base} for rr, base in pairs]}
    model_turn = model_seconds(settings.latency, settings.token_delay) / len(CONVERSATION)
    note = (f"{settings.repetitions}x{settings.conversations} conversations of "
            f"{len(CONVERSATION)} turns, L={settings.latency * 1000:g} ms, "
            f"model {model_turn * 1000:.0f} ms/turn")
    for key, label, target in (("wall", "wall time per turn", WALL_TARGET),
                               ("cpu", "CPU time per turn", CPU_TARGET),
                               ("ttft", "time to first token", None),
                               ("turn_wall", "turn wall (median turn)", None)):
        rr = median(p[0][key] for p in pairs)
        base = median(p[1][key] for p in pairs)
        pair_ratio = median(ratio(p[0][key], p[1][key]) for p in pairs)
        section.add(label, _ms(rr), "ms", baseline=_ms(base), ratio=pair_ratio,
                    target=f"<= {target:g}" if target else "",
                    verdict=at_most(pair_ratio, target) if target else "info",
                    note=note if key == "wall" else "")
    extra = median((p[0]["cpu"] or 0) - (p[1]["cpu"] or 0) for p in pairs)
    section.add("extra CPU per turn", _ms(extra), "ms",
                note="routing-runner minus the baseline")
    section.seconds = time.perf_counter() - started
    return section


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
