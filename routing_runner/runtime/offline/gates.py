"""When the offline model trusts a detection: gates per message length and language count.

The gates were tuned by bench/offline_tune.py on the tuning split of tests/data/langid (see
SOURCE.md there), never on the held-out split the README reports; language_id.judge applies
them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Up to this many configured languages count as "few": their gates were tuned on a 3-language
# config; more were tuned on a 14-language one.
FEW = 4
# Upper bounds (characters) of the length buckets the gates are given for; the last is open.
LENGTH_BUCKETS = (12, 20, 40, 80)


@dataclass(frozen=True)
class Gates:
    """When to trust a detection, for one length bucket.

    `foreign`: the wide look's top language, when unconfigured, wins at this confidence.
    `guard`: the configured candidate's unconfigured guards together outweigh it at this.
    `narrow`: the narrow look must be this sure, and the wide look give the candidate at least
    `support`. `agree`: or the wide look's top language is the candidate, at this confidence
    (the narrow look splits close relatives, such as configured Spanish and Portuguese, evenly).
    """

    foreign: float
    guard: float
    narrow: float
    support: float
    agree: float


# Tuned by bench/offline_tune.py (tuning split only); one row per length bucket.
GATES: dict[str, tuple[Gates, ...]] = {
    "few": (
        Gates(0.3, 0.5, 0.7, 0.0, 0.7),
        Gates(0.0, 0.5, 0.8, 0.0, 0.99),
        Gates(0.7, 0.5, 0.9, 0.0, 0.7),
        Gates(0.8, 0.8, 0.8, 0.0, 0.99),
        Gates(0.5, 0.7, 0.6, 0.0, 1.01),
    ),
    "many": (
        Gates(1.01, 1.01, 0.0, 0.0, 0.7),
        Gates(1.01, 1.01, 0.0, 0.0, 0.7),
        Gates(0.95, 0.95, 0.4, 0.0, 0.7),
        Gates(1.01, 1.01, 0.0, 0.0, 0.7),
        Gates(0.7, 0.7, 0.0, 0.0, 0.7),
    ),
}


def gates_for(configured_count: int, text: str) -> Gates:
    """The gates for a message of this length with this many configured languages."""
    row = GATES["few" if configured_count <= FEW else "many"]
    length = len(text.strip())
    bucket = next((n for n, bound in enumerate(LENGTH_BUCKETS) if length < bound),
                  len(LENGTH_BUCKETS))
    return row[bucket]

