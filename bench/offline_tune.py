"""Tune the offline model's routing gates on the tuning split (for routing_runner.language_id).

    python -m bench.offline_tune

The tuning split is tests/data/langid/{sentences,word-pairs}.jsonl (the sample in
../shared/langdata: en fr es de it pt ru ar zh ja) and tuning-{sentences,word-pairs}.jsonl (nl pl
tr sv, the same lines of the same upstream files). The held-out split the README and
bench.offline report on (heldout-*.jsonl, the chat sets) is never read here.

For a 3-language config ("few") and the 14-language one ("many") it searches, per length
bucket, the gates that route the most messages right while keeping wrong handoffs under a cap,
and prints the GATES table to paste into language_id.py with the figures it reaches.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import ROOT
from routing_runner.language_id import (
    LENGTH_BUCKETS,
    Detectors,
    Gates,
    Signals,
    guard_set,
    judge,
)

DATA = ROOT / "tests" / "data" / "langid"
TUNING = ("sentences.jsonl", "word-pairs.jsonl", "tuning-sentences.jsonl",
          "tuning-word-pairs.jsonl")
CONFIGS = {"few": ("en", "fr", "es"),
           "many": ("en", "fr", "es", "de", "it", "pt", "nl", "ru", "ar", "zh", "ja", "pl",
                    "tr", "sv")}
# Wrong handoffs allowed per bucket: the 3-language target is <= 1 % on every set.
WRONG_CAP = {"few": 0.007, "many": 0.02}
STEPS = (0.0, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.01)


@dataclass(frozen=True)
class Row:
    """One labelled tuning message and what the looks said about it."""

    lang: str
    file: str
    bucket: int
    signals: Signals


def _bucket(text: str) -> int:
    length = len(text.strip())
    return next((n for n, bound in enumerate(LENGTH_BUCKETS) if length < bound),
                len(LENGTH_BUCKETS))


def _rows(configured: Sequence[str]) -> list[Row]:
    found = Detectors(frozenset(configured))
    rows = []
    for name in TUNING:
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            rows.append(Row(row["lang"], name, _bucket(row["text"]),
                            found.signals(row["text"])))
    return rows


def _score(rows: Sequence[Row], gates: Gates, configured: Sequence[str]) -> tuple[int, int]:
    right = wrong = 0
    for row in rows:
        got = judge(row.signals, gates).language
        routed = got if got in configured else None
        expected = row.lang if row.lang in configured else None
        right += routed == expected
        wrong += routed is not None and routed != expected
    return right, wrong


def tune(name: str) -> list[Gates]:
    """The best gates per bucket for one config, with the figures they reach."""
    configured = CONFIGS[name]
    rows = _rows(configured)
    chosen = []
    for bucket in range(len(LENGTH_BUCKETS) + 1):
        part = [r for r in rows if r.bucket == bucket]
        best: tuple[int, int, Gates] | None = None
        for values in itertools.product(STEPS, STEPS, STEPS[5:], STEPS[:6]):
            gates = Gates(*values)
            right, wrong = _score(part, gates, configured)
            if wrong <= WRONG_CAP[name] * len(part) and (
                    best is None or (right, -wrong) > (best[0], -best[1])):
                best = (right, wrong, gates)
        assert best is not None
        chosen.append(best[2])
        sys.stderr.write(f"{name} bucket {bucket}: n={len(part)} right {best[0]} "
                         f"wrong {best[1]} {best[2]}\n")
    for file in TUNING:
        part = [r for r in rows if r.file == file]
        right = wrong = 0
        for row in part:
            r, w = _score([row], chosen[row.bucket], configured)
            right, wrong = right + r, wrong + w
        sys.stderr.write(f"{name} {file}: right {100 * right / len(part):.2f} % "
                         f"wrong {100 * wrong / len(part):.2f} % (n={len(part)})\n")
    return chosen


def main() -> None:
    """Tune both configs and print the table."""
    sys.stderr.write(f"guard set of en/fr/es: {sorted(guard_set(CONFIGS['few']))}\n")
    print("GATES: dict[str, tuple[Gates, ...]] = {")
    for name in CONFIGS:
        print(f'    "{name}": (')
        for gates in tune(name):
            print(f"        Gates({gates.foreign}, {gates.guard}, {gates.narrow}, "
                  f"{gates.support}),")
        print("    ),")
    print("}")


if __name__ == "__main__":
    main()
