"""Tune the offline model's routing gates on the tuning split (for runtime/offline/language_id).

    python -m bench.offline_tune

The tuning split is tests/data/langid/{sentences,word-pairs}.jsonl (the sample in
../shared/langdata: en fr es de it pt ru ar zh ja) and tuning-{sentences,word-pairs}.jsonl (nl pl
tr sv, the same lines of the same upstream files). The held-out split the README and
bench.offline report on (heldout-*.jsonl, the chat sets) is never read here.

For a 3-language config ("few") and the 14-language one ("many") it searches, per length
bucket, the gates that route the most messages right while keeping wrong handoffs under a cap,
and prints the GATES table to paste into gates.py with the figures it reaches.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import ROOT
from routing_runner.runtime.offline.gates import LENGTH_BUCKETS, Gates
from routing_runner.runtime.offline.language_id import Detectors, Signals, guard_set, judge

DATA = ROOT / "tests" / "data" / "langid"
TUNING = ("sentences.jsonl", "word-pairs.jsonl", "tuning-sentences.jsonl",
          "tuning-word-pairs.jsonl")
CONFIGS = {"few": ("en", "fr", "es"),
           "many": ("en", "fr", "es", "de", "it", "pt", "nl", "ru", "ar", "zh", "ja", "pl",
                    "tr", "sv")}
# Wrong handoffs allowed per bucket: the 3-language target is <= 1 % on every set; with 14
# languages every unconfigured language is rare and a kept message costs as much as a wrong one.
WRONG_CAP = {"few": 0.007, "many": 0.04}
WIDE_STEPS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.01)
NARROW_STEPS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SUPPORT_STEPS = (0.0, 0.1, 0.2, 0.3)
AGREE_STEPS = (0.7, 0.9, 0.99, 1.01)
# A message in a configured language kept by triage costs its writer a second try; most
# messages a deployment sees are in its configured languages, so each counts twice.
CONFIGURED_WEIGHT = 2


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


def _score(rows: Sequence[Row], gates: Gates, configured: Sequence[str]) -> tuple[int, int, int]:
    """Right, wrong, and the weighted right the search maximises."""
    right = wrong = weighted = 0
    for row in rows:
        got = judge(row.signals, gates).language
        routed = got if got in configured else None
        expected = row.lang if row.lang in configured else None
        right += routed == expected
        weighted += (routed == expected) * (CONFIGURED_WEIGHT if expected else 1)
        wrong += routed is not None and routed != expected
    return right, wrong, weighted


Flat = tuple[float, float, float, float, bool, bool, bool, bool | None]


def _flat(rows: Sequence[Row], configured: Sequence[str]) -> list[Flat]:
    """What `judge` reads of each row, plus its label, as plain tuples for a fast search."""
    flat = []
    for row in rows:
        s = row.signals
        flat.append((s.foreign_confidence if s.foreign else -1.0,
                     s.guard_weight if s.guard else -1.0, s.narrow, s.support,
                     s.agrees and s.candidate is not None, s.candidate is not None
                     and s.candidate == row.lang, row.lang in configured,
                     None if s.evidence is None else s.evidence == s.candidate))
    return flat


def _fast_score(flat: Sequence[Flat], g: Gates) -> tuple[int, int, int]:
    """`_score` over `_flat` rows (the same decision as `judge`, written out for speed)."""
    right = wrong = weighted = 0
    for foreign, guard, narrow, support, agrees, correct, spoken, words in flat:
        # Words decide first (True: the candidate, False: an unconfigured language).
        routed = words if words is not None else (
            foreign < g.foreign and guard < g.guard and narrow > 0 and (
                (narrow >= g.narrow and support >= g.support)
                or (agrees and support >= g.agree)))
        if routed and correct:
            right += 1
            weighted += CONFIGURED_WEIGHT
        elif routed:
            wrong += 1
        elif not spoken:
            right += 1
            weighted += 1
    return right, wrong, weighted


def tune(name: str) -> list[Gates]:
    """The best gates per bucket for one config, with the figures they reach."""
    configured = CONFIGS[name]
    rows = _rows(configured)
    chosen = []
    for bucket in range(len(LENGTH_BUCKETS) + 1):
        part = [r for r in rows if r.bucket == bucket]
        flat = _flat(part, configured)
        best: tuple[int, int, int, Gates] | None = None
        for values in itertools.product(WIDE_STEPS, WIDE_STEPS, NARROW_STEPS, SUPPORT_STEPS,
                                        AGREE_STEPS):
            gates = Gates(*values)
            right, wrong, weighted = _fast_score(flat, gates)
            if wrong <= WRONG_CAP[name] * len(part) and (
                    best is None or (weighted, -wrong) > (best[2], -best[1])):
                best = (right, wrong, weighted, gates)
        assert best is not None
        assert _score(part, best[3], configured) == best[:3], "fast search disagrees with judge"
        chosen.append(best[3])
        sys.stderr.write(f"{name} bucket {bucket}: n={len(part)} right {best[0]} "
                         f"wrong {best[1]} {best[3]}\n")
    for file in TUNING:
        part = [r for r in rows if r.file == file]
        right = wrong = 0
        for row in part:
            r, w, _ = _score([row], chosen[row.bucket], configured)
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
                  f"{gates.support}, {gates.agree}),")
        print("    ),")
    print("}")


if __name__ == "__main__":
    main()
