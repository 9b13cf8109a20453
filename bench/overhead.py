"""1. Per-turn overhead: routing-runner's replay path against the hand-written SDK loop.

Both run the scenario's 5-turn conversation (3 handoffs, 8 model calls) against the same
loopback server, one conversation at a time, in fresh processes taking turns (baseline first
in even repetitions, routing-runner first in odd ones, so drift in the machine's load hits
both). Each process warms up on one conversation, then times `conversations` more.

Per turn: wall time (the measured conversations' total, opening and closing sessions
included, divided by their turns), the overhead (that wall time minus the simulated model's
time per turn, which both sides wait out alike and which would dilute a wall ratio), CPU time
(the whole process, every thread, over the same span), and time to the first streamed text.
Each row gives min / median / max of the per-pair ratios. The machine's foreign load is
sampled around every pair (bench.load); a scored row uses only the pairs taken quiet, and with
fewer than MIN_QUIET of them it is flagged `load` instead of scored.
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
from bench.load import ForeignLoad, LoadSample, describe
from bench.scenario import CONVERSATION, config_yaml, model_seconds, transcripts_yaml

OVERHEAD_TARGET = 1.05  # wall minus model time: the wall ratio itself is mostly model time
CPU_TARGET = 1.2
MIN_QUIET = 3  # quiet pairs a scored row needs
Pair = tuple[dict[str, float | None], dict[str, float | None], LoadSample]


@dataclass(frozen=True)
class OverheadSettings:
    """How much to measure."""

    repetitions: int = 5
    conversations: int = 4
    latency: float = 0.05
    token_delay: float = 0.002


def _summary(result: dict[str, Any], model_turn: float) -> dict[str, float | None]:
    turns = result["turns"]
    return {"wall": result["wall"] / turns, "overhead": result["wall"] / turns - model_turn,
            "cpu": result["cpu"] / turns, "ttft": median(result["ttft"]),
            "turn_wall": median(result["turn_wall"])}


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
    """Interleaved repetitions; rows for wall, overhead, CPU and first-token time per turn."""
    section = Section("1 per-turn overhead")
    started = time.perf_counter()
    model_turn = model_seconds(settings.latency, settings.token_delay) / len(CONVERSATION)
    pairs: list[Pair] = []
    with Loopback(settings.latency, settings.token_delay) as server:
        for repetition in range(settings.repetitions):
            order = ("baseline", "rr") if repetition % 2 == 0 else ("rr", "baseline")
            measured: dict[str, dict[str, float | None]] = {}
            with ForeignLoad(server.cpu_seconds) as load:
                for side in order:
                    with scratch(f"overhead-{side}") as folder:
                        result = (_baseline(server, folder, settings) if side == "baseline"
                                  else _routing_runner(server, folder, settings))
                    measured[side] = _summary(result, model_turn)
            pairs.append((measured["rr"], measured["baseline"], load))
    section.raw = {"settings": settings.__dict__,
                   "pairs": [{"rr": rr, "baseline": base, "load": load.__dict__}
                             for rr, base, load in pairs]}
    note = (f"{settings.repetitions}x{settings.conversations} conversations of "
            f"{len(CONVERSATION)} turns, L={settings.latency * 1000:g} ms, "
            f"model {model_turn * 1000:.0f} ms/turn; {describe([p[2] for p in pairs])}")
    for key, label, target in (("wall", "wall time per turn", None),
                               ("overhead", "overhead per turn (wall - model)", OVERHEAD_TARGET),
                               ("cpu", "CPU time per turn", CPU_TARGET),
                               ("ttft", "time to first token", None),
                               ("turn_wall", "turn wall (median turn)", None)):
        _add_row(section, pairs, key, label, target, note if key == "wall" else "")
    extra = median((p[0]["cpu"] or 0) - (p[1]["cpu"] or 0) for p in pairs)
    section.add("extra CPU per turn", _ms(extra), "ms",
                note="routing-runner minus the baseline")
    section.seconds = time.perf_counter() - started
    return section


def _add_row(section: Section, pairs: list[Pair], key: str, label: str,
             target: float | None, note: str) -> None:
    """One measure: medians of both sides, the spread of the per-pair ratios, and a verdict
    from the quiet pairs only (`load` when too few were quiet)."""
    taken = [(ratio(p[0][key], p[1][key]), p[2].busy) for p in pairs]
    ratios = [r for r, _ in taken if r is not None]
    quiet = [r for r, busy in taken if r is not None and not busy]
    spread = (f"ratio min/median/max {min(ratios):.2f}/{median(ratios) or 0:.2f}/"
              f"{max(ratios):.2f} over {len(ratios)} pairs, {len(quiet)} quiet") if ratios else ""
    scored = len(quiet) >= MIN_QUIET or not pairs
    pair_ratio = median(quiet) if scored else median(ratios)
    verdict = "info" if target is None else at_most(pair_ratio, target) if scored else "load"
    section.add(label, _ms(median(p[0][key] for p in pairs)), "ms",
                baseline=_ms(median(p[1][key] for p in pairs)), ratio=pair_ratio,
                target=f"<= {target:g}" if target else "", verdict=verdict,
                note="; ".join(part for part in (spread, note) if part))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
