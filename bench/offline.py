"""5. The embedded offline model: routing accuracy per set and language, start-up and memory.

Accuracy is measured through the CLI, as a user would see it: every labelled message becomes a
one-turn conversation, `routing-runner replay --json` runs them on the offline provider, and
the agent that answered is compared with the message's language. A message in a language some
agent speaks must reach that agent ("right"); one in a language nobody speaks must stay with
triage (counted right: triage tells the user which languages it can help in). Anything else is
a wrong handoff ("wrong"); a configured language kept by triage is "kept".

Two configs: `configs/languages.yaml` (en, fr, es) and tests/data/configs/fourteen-languages.yaml.
Sets, all held out (never used to tune the gates, see bench/offline_tune.py):
`sentences` and `two words` (tests/data/langid/heldout-*.jsonl, 14 languages, lingua-py test
data lines not in the tuning split, see SOURCE.md there) and `chat` (bench/data/chat-messages.jsonl
and tests/data/langid/chat-messages-more.jsonl, short hand-written chat messages).

bench.offline_worker adds per-message detection time, and the start-up row: the first token of
`chat -m Hola` against `python -c "import agents"` run side by side, and the peak memory of a
3-language chat against that of `import agents`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    PYTHON,
    ROOT,
    ROUTING_RUNNER,
    BenchError,
    Section,
    at_least,
    at_most,
    bench_env,
    run_json,
    scratch,
)

LANGID = ROOT / "tests" / "data" / "langid"
SETS = {
    "sentences": (LANGID / "heldout-sentences.jsonl",),
    "two words": (LANGID / "heldout-word-pairs.jsonl",),
    "chat": (ROOT / "bench" / "data" / "chat-messages.jsonl",
             LANGID / "chat-messages-more.jsonl"),
}
CONFIGS = {
    "3 languages": ROOT / "configs" / "languages.yaml",
    "14 languages": ROOT / "tests" / "data" / "configs" / "fourteen-languages.yaml",
}
# "right" floors per config and set, and the wrong-handoff ceiling (issue 10's targets).
TARGETS = {
    "3 languages": {"sentences": 0.995, "two words": 0.95, "chat": 0.95},
    "14 languages": {"sentences": 0.99, "two words": 0.93, "chat": 0.90},
}
WRONG_CEILING = {"3 languages": 0.01}
MEMORY_LIMIT_MIB = 150  # peak RSS of a 3-language chat above `import agents`
FIRST_TOKEN_RATIO = 1.3  # first token of `chat -m Hola` / `python -c "import agents"`
DETECTION_LIMIT_MS = 1.0
EXAMPLES = 6  # misrouted or kept messages kept per config, set and language, for the JSON


@dataclass(frozen=True)
class OfflineSettings:
    """Messages per language and set (None: all of them); side-by-side start-up runs."""

    limit: int | None = None
    startup_runs: int | None = None  # 5 for a full run, 1 for a limited (quick) one

    @property
    def runs(self) -> int:
        """How many side-by-side start-up runs to make."""
        if self.startup_runs is not None:
            return self.startup_runs
        return 5 if self.limit is None else 1


def _messages(limit: int | None) -> list[tuple[str, str, str]]:
    """(set, language, text) for every labelled message, at most `limit` per set and language."""
    rows: list[tuple[str, str, str]] = []
    for set_name, paths in SETS.items():
        count: dict[str, int] = defaultdict(int)
        for path in paths:
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                if limit is None or count[row["lang"]] < limit:
                    count[row["lang"]] += 1
                    rows.append((set_name, row["lang"], row["text"]))
    return rows


def _replay(config: Path, messages: list[tuple[str, str, str]], expected: list[str],
            folder: Path) -> list[str]:
    """The agent that answered each message, through `routing-runner replay --json`."""
    transcripts = folder / "messages.yaml"
    documents = [{"name": f"{n} {set_name} {lang}",
                  "turns": [{"user": text, "expect": {"agent": agent}}]}
                 for n, ((set_name, lang, text), agent) in enumerate(zip(messages, expected,
                                                                         strict=True))]
    transcripts.write_text(yaml.safe_dump_all(documents, allow_unicode=True), encoding="utf-8")
    report = folder / "report.json"
    env = bench_env(folder, ROUTING_RUNNER_PROVIDER="offline")
    done = subprocess.run([ROUTING_RUNNER, "replay", str(config), str(transcripts), "--json",
                           str(report), "-w", str(min(2, os.cpu_count() or 1)), "-j", "8"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600,
                          check=False)
    if done.returncode not in (0, 1):  # 1: some expectations failed, which is what we count
        raise BenchError(f"replay exited {done.returncode}: {done.stderr[-2000:]}")
    conversations = json.loads(report.read_text(encoding="utf-8"))["conversations"]
    agents = {int(c["name"].split()[0]): c["turns"][0]["observed"]["agent"]
              for c in conversations}
    return [agents[n] for n in range(len(messages))]


def measure(config: Path, limit: int | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Per set and language: n, right, wrong, kept, and a few examples of what went wrong."""
    from routing_runner.config import load_config

    loaded = load_config(config, {"ROUTING_RUNNER_PROVIDER": "offline"}).config
    spoken = {name: agent.language for name, agent in loaded.agents.items()}
    speaker = {lang: name for name, lang in spoken.items() if lang}
    messages = _messages(limit)
    with scratch("offline") as folder:
        answered = _replay(config, messages,
                           [speaker.get(lang, loaded.entry) for _s, lang, _t in messages], folder)
    configured = set(speaker)
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for (set_name, lang, text), agent in zip(messages, answered, strict=True):
        stats = result.setdefault(set_name, {}).setdefault(
            lang, {"n": 0, "right": 0, "wrong": 0, "kept": 0, "examples": []})
        routed = spoken.get(agent)
        expected = lang if lang in configured else None
        outcome = ("right" if routed == expected else "kept" if routed is None else "wrong")
        stats["n"] += 1
        stats[outcome] += 1
        if outcome != "right" and len(stats["examples"]) < EXAMPLES:
            stats["examples"].append([text, agent])
    return result


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _accuracy_rows(section: Section, label: str, result: dict[str, dict[str, dict[str, Any]]]
                   ) -> None:
    for set_name, per_language in result.items():
        n = sum(s["n"] for s in per_language.values())
        right, wrong, kept = (_share(sum(s[k] for s in per_language.values()), n)
                              for k in ("right", "wrong", "kept"))
        floor = TARGETS[label][set_name]
        ceiling = WRONG_CEILING.get(label)
        verdict = at_least(right, floor)
        if ceiling is not None and at_most(wrong, ceiling) != "ok":
            verdict = "MISS"
        target = f">= {floor:.1%}" + (f", wrong <= {ceiling:.0%}" if ceiling else "")
        section.add(f"{label}, {set_name}: right", 100 * right, "%", baseline=100 * wrong,
                    target=target, verdict=verdict,
                    note=f"baseline column: wrong %; kept {100 * kept:.1f}%, n={n}")
        for lang, stats in sorted(per_language.items()):
            section.add(f"  {label}, {set_name}, {lang}", 100 * _share(stats["right"], stats["n"]),
                        "%", note=f"wrong {stats['wrong']}, kept {stats['kept']}, "
                                  f"n={stats['n']}")


def run(settings: OfflineSettings) -> Section:
    """Measure both configs through the CLI and the start-up in a worker; return the rows."""
    section = Section("5 offline model")
    started = time.perf_counter()
    accuracy = {label: measure(path, settings.limit) for label, path in CONFIGS.items()}
    for label, result in accuracy.items():
        _accuracy_rows(section, label, result)
    with scratch("offline-startup") as folder:
        worker = run_json([PYTHON, "-m", "bench.offline_worker", "--runs",
                           str(settings.runs)] +
                          (["--limit", str(settings.limit)] if settings.limit else []),
                          bench_env(folder, ROUTING_RUNNER_PROVIDER="offline"), timeout=1800)
    section.add("detection per message (median / p99)", worker["detect_ms"]["median"], "ms",
                baseline=worker["detect_ms"]["p99"], target=f"< {DETECTION_LIMIT_MS:g} ms",
                verdict=at_most(worker["detect_ms"]["p99"], DETECTION_LIMIT_MS),
                note=f"baseline column: p99; n={worker['detect_ms']['n']}, 3-language config, "
                     "detectors built")
    section.add("language models built (3 languages)", worker["build_seconds"] * 1000, "ms",
                note=f"loaded: {worker['loaded']}")
    first, agents = worker["first_token_seconds"], worker["import_agents_seconds"]
    section.add("first token of `chat -m Hola`", first * 1000, "ms", baseline=agents * 1000,
                target=f"<= {FIRST_TOKEN_RATIO}x import agents",
                verdict=at_most(first / agents, FIRST_TOKEN_RATIO),
                note=f"baseline column: `python -c \"import agents\"`, medians of "
                     f"{settings.runs} side-by-side runs; ratio {first / agents:.2f}")
    chat_mib, agents_mib = worker["chat_peak_mib"], worker["import_agents_peak_mib"]
    section.add("peak RSS of a 3-language chat", chat_mib, "MiB", baseline=agents_mib,
                target=f"<= +{MEMORY_LIMIT_MIB} MiB",
                verdict=at_most(chat_mib - agents_mib, MEMORY_LIMIT_MIB),
                note=f"baseline column: `import agents`; +{chat_mib - agents_mib:.0f} MiB; "
                     f"{worker['chat_messages']} messages typed")
    section.raw = {"accuracy": accuracy, "worker": worker}
    section.seconds = time.perf_counter() - started
    return section
