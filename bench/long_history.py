"""4. Long conversations: the cost of a turn as the stored history grows.

For each size, a fresh process pre-fills one SQLite conversation with that many items
(`bench.scenario.history_items`: user messages, handoff calls and their outputs, replies),
warms up on an empty conversation, then times turns of the scenario through the chat's turn
runner - once with `session.history_limit` (the history window) and once without. The model
answers at once (latency 0), so the figures are the runner's, the SDK's and the client's cost.

Without a window every request carries the whole history, and the openai client re-validates
every item of it, so a turn grows with the conversation. With the window the model sees at
most `history_limit` items: past that size a turn must cost the same whatever the history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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
from bench.scenario import config_yaml

FLAT_TARGET = 1.1  # a windowed turn at the largest size vs at the first size past the window


@dataclass(frozen=True)
class LongSettings:
    """Stored items per run, the window, and turns timed per run."""

    sizes: list[int] = field(default_factory=lambda: [10, 100, 1000, 10000])
    history_limit: int = 200
    turns: int = 3
    quick: bool = False


def _measure(server: Loopback, size: int, limit: int | str, turns: int) -> dict[str, Any]:
    with scratch("long") as folder:
        config = folder / "bench.yaml"
        config.write_text(config_yaml(server.base_url, folder / "long.db", history_limit=limit),
                          encoding="utf-8")
        return run_json([PYTHON, "-m", "bench.rr_worker", "long", str(config),
                         "--items", str(size), "--turns", str(turns)], bench_env(folder))


def run(settings: LongSettings) -> Section:
    """Every size with and without the window."""
    section = Section("4 long conversations")
    started = time.perf_counter()
    results: dict[str, dict[int, dict[str, Any]]] = {"window": {}, "none": {}}
    with Loopback(0.0, 0.0) as server:
        for size in settings.sizes:
            # Quick runs only check the code path: the windowed run alone.
            modes: tuple[tuple[str, int | str], ...] = \
                (("window", settings.history_limit),) if settings.quick else (
                ("window", settings.history_limit), ("none", "all"))
            for mode, limit in modes:
                results[mode][size] = _measure(server, size, limit, settings.turns)
    for size in settings.sizes:
        windowed, plain = results["window"][size], results["none"].get(size)
        cpu_w, wall_w = median(windowed["turn_cpu"]), median(windowed["turn_wall"])
        cpu_n = median(plain["turn_cpu"]) if plain else None
        wall_n = median(plain["turn_wall"]) if plain else None
        assert cpu_w is not None and wall_w is not None
        section.add(f"{size:,} items: CPU per turn", cpu_w * 1000, "ms",
                    baseline=None if cpu_n is None else cpu_n * 1000, ratio=ratio(cpu_w, cpu_n),
                    note=f"window {settings.history_limit} vs none; wall {wall_w * 1000:.0f} "
                         f"vs {(wall_n or 0) * 1000:.0f} ms")
    past = [size for size in settings.sizes if size > settings.history_limit]
    if len(past) >= 2 and not settings.quick:
        first, last = past[0], past[-1]
        flat = _cpu(results, "window", last) / _cpu(results, "window", first)
        growth = _cpu(results, "none", last) / _cpu(results, "none", first)
        section.add(f"window: turn at {last:,} / at {first:,} items", flat, "x",
                    target=f"<= {FLAT_TARGET:g}", verdict=at_most(flat, FLAT_TARGET),
                    note=f"without the window: {growth:.1f}x")
    section.raw = {"settings": settings.__dict__, "results": results}
    section.seconds = time.perf_counter() - started
    return section


def _cpu(results: dict[str, dict[int, dict[str, Any]]], mode: str, size: int) -> float:
    value = median(results[mode][size]["turn_cpu"])
    assert value is not None
    return value
