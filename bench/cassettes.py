"""6. Cassettes: replaying recorded model calls against the offline model answering them.

A CI job replays its transcripts from cassettes (`replay --record-mode none`) where it would
otherwise run the embedded offline model; replaying must cost no more CPU than that. Both
sides run the scenario's conversation on the same offline config, in fresh processes taking
turns (the offline model first in even repetitions): the cassette side replays what an
unmeasured `--record-mode all` run of the same config recorded, so the replies, routes and
session writes are the same on both sides and only the answering of model calls differs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import PYTHON, Section, at_most, bench_env, median, ratio, run_json, scratch
from bench.scenario import CONVERSATION, config_yaml, transcripts_yaml

CPU_TARGET = 1.1


@dataclass(frozen=True)
class CassetteSettings:
    """How much to measure."""

    repetitions: int = 5
    conversations: int = 8


def _worker(folder: Path, settings: CassetteSettings, *cassettes: str) -> dict[str, Any]:
    config = folder / "bench.yaml"
    config.write_text(config_yaml("", folder / "rr.db", provider="offline"), encoding="utf-8")
    transcripts = folder / "conversations.yaml"
    names = ["warmup-1", *(f"measured-{n}" for n in range(settings.conversations))]
    transcripts.write_text(transcripts_yaml(names), encoding="utf-8")
    return run_json([PYTHON, "-m", "bench.rr_worker", "replay", str(config), str(transcripts),
                     "--warmup-prefix", "warmup", *cassettes], bench_env(folder))


def _replayed(folder: Path, settings: CassetteSettings) -> dict[str, Any]:
    shelf = str(folder / "cassettes")
    _worker(folder, settings, "--cassettes", shelf, "--record-mode", "all")
    return _worker(folder, settings, "--cassettes", shelf, "--record-mode", "none")


def run(settings: CassetteSettings) -> Section:
    """Interleaved repetitions; the CPU per turn of each side and their ratio."""
    section = Section("7 cassettes")
    started = time.perf_counter()
    pairs: list[tuple[float, float]] = []
    for repetition in range(settings.repetitions):
        order = ("offline", "cassette") if repetition % 2 == 0 else ("cassette", "offline")
        measured: dict[str, float] = {}
        for side in order:
            with scratch(f"cassettes-{side}") as folder:
                result = _worker(folder, settings) if side == "offline" else \
                    _replayed(folder, settings)
            measured[side] = result["cpu"] / result["turns"]
        pairs.append((measured["cassette"], measured["offline"]))
    section.raw = {"settings": settings.__dict__,
                   "pairs": [{"cassette": c, "offline": o} for c, o in pairs]}
    pair_ratio = median(ratio(c, o) for c, o in pairs)
    section.add("CPU per turn, replayed from cassettes", _ms(median(c for c, _ in pairs)), "ms",
                baseline=_ms(median(o for _, o in pairs)), ratio=pair_ratio,
                target=f"<= {CPU_TARGET:g}", verdict=at_most(pair_ratio, CPU_TARGET),
                note=f"{settings.repetitions}x{settings.conversations} conversations of "
                     f"{len(CONVERSATION)} turns; baseline: the offline model answering")
    section.seconds = time.perf_counter() - started
    return section


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
