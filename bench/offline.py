"""5. The embedded offline model: routing accuracy and latency per language.

Every labelled message goes to the triage agent's routing decision (`OfflineModel.decide`,
what its streamed turns call) on `configs/languages.yaml` (en, fr, es). A message in a
configured language must be handed to the agent that speaks it ("right"), not to another one
("wrong"); triage may keep a message it cannot tell ("kept": the user is asked again, which is
cheaper than a wrong agent). A message in a language nobody speaks should be kept.

Sets: `chat` (bench/data/chat-messages.jsonl, short hand-written chat messages), `two words`
and `sentences` (the lingua-py sample in tests/data/langid, see its NOTICE). The targets are the
floors tests/test_language_id.py holds the detector to on the lingua sample; the chat set has
no target yet and is reported as measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.common import (
    PYTHON,
    Section,
    at_least,
    at_most,
    bench_env,
    median,
    percentile,
    run_json,
    scratch,
)

# (set, "right" floor, "wrong" ceiling) over the configured languages, as in the unit tests.
TARGETS = {"sentences": (0.98, 0.01), "two words": (0.85, 0.03)}
UNCONFIGURED_MISROUTED = 0.05  # sentences in languages nobody speaks taken for a configured one


@dataclass(frozen=True)
class OfflineSettings:
    """Messages per language and set (None: all of them)."""

    limit: int | None = None


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _latency(stats: list[dict[str, Any]]) -> str:
    seconds = [s for stat in stats for s in stat["seconds"]]
    mid, p95 = median(seconds), percentile(seconds, 0.95)
    return f"median {(mid or 0) * 1000:.2f} ms, p95 {(p95 or 0) * 1000:.2f} ms"


def run(settings: OfflineSettings) -> Section:
    """Run the worker and turn its counts into rows."""
    section = Section("5 offline model")
    started = time.perf_counter()
    args = [PYTHON, "-m", "bench.offline_worker"]
    if settings.limit is not None:
        args += ["--limit", str(settings.limit), "--turns", "3"]
    with scratch("offline") as folder:
        result = run_json(args, bench_env(folder))
    configured: list[str] = result["configured"]
    for set_name, per_language in result["sets"].items():
        for language in configured:
            stats = per_language.get(language)
            if not stats:
                continue
            section.add(f"{set_name}, {language}: routed right",
                        100 * _share(stats["right"], stats["n"]), "%",
                        note=f"wrong {100 * _share(stats['wrong'], stats['n']):.1f}%, kept "
                             f"{100 * _share(stats['kept'], stats['n']):.1f}%, n={stats['n']}; "
                             f"{_latency([stats])}")
        ours = [per_language[lang] for lang in configured if lang in per_language]
        n = sum(s["n"] for s in ours)
        right = _share(sum(s["right"] for s in ours), n)
        wrong = _share(sum(s["wrong"] for s in ours), n)
        floor, ceiling = TARGETS.get(set_name, (None, None))
        if floor is not None and ceiling is not None:
            section.add(f"{set_name}, {'+'.join(configured)}: right / wrong", 100 * right, "%",
                        baseline=100 * wrong, target=f">= {floor:.0%} / <= {ceiling:.0%}",
                        verdict="ok" if at_least(right, floor) == "ok"
                        and at_most(wrong, ceiling) == "ok" else "MISS",
                        note=f"baseline column: wrong %; n={n}")
        others = [stats for lang, stats in per_language.items() if lang not in configured]
        if others:
            m = sum(s["n"] for s in others)
            misrouted = _share(sum(s["right"] + s["wrong"] for s in others), m)
            is_target = set_name == "sentences"
            section.add(f"{set_name}, {len(others)} other languages: kept",
                        100 * _share(sum(s["kept"] for s in others), m), "%",
                        target=f"misrouted <= {UNCONFIGURED_MISROUTED:.0%}" if is_target else "",
                        verdict=at_most(misrouted, UNCONFIGURED_MISROUTED) if is_target
                        else "info",
                        note=f"misrouted {100 * misrouted:.1f}%, n={m}; {_latency(others)}")
    section.add("first decision (loads lingua)", result["first_decision"] * 1000, "ms")
    turn = median(result["turn_seconds"])
    section.add("whole offline turn (route + answer)", (turn or 0) * 1000, "ms",
                note=f"median of {len(result['turn_seconds'])} streamed, stored turns")
    section.raw = {"configured": configured, "first_decision": result["first_decision"],
                   "turn_seconds": result["turn_seconds"],
                   "sets": {name: {lang: {k: v for k, v in stats.items() if k != "seconds"}
                                   | {"median_ms": 1000 * (median(stats["seconds"]) or 0)}
                                   for lang, stats in per_language.items()}
                            for name, per_language in result["sets"].items()}}
    section.seconds = time.perf_counter() - started
    return section
