"""A turn's token and cost budgets (`expect.max_tokens`, `expect.max_cost`) against its usage."""

from __future__ import annotations

from routing_runner.runtime.usage import summed

from .results import Mismatch, Observed
from .script import Expectations


def budget_misses(expect: Expectations, observed: Observed) -> tuple[Mismatch, ...]:
    """The budgets the turn went over (a cost budget without prices is missed, and says so)."""
    missed = []
    total = summed(observed.usage)
    if expect.max_tokens is not None and total.total > expect.max_tokens:
        unit = " words (offline model)" if total.words else ""
        missed.append(Mismatch("max_tokens", f"at most {expect.max_tokens}",
                               f"{total.total}{unit}"))
    if expect.max_cost is not None:
        if observed.cost is None:
            missed.append(Mismatch("max_cost", f"at most {expect.max_cost}",
                                   "no cost: give `prices` for every model the turn used"
                                   if not total.words else
                                   "no cost: the offline model counts words, not tokens"))
        elif observed.cost > expect.max_cost:
            missed.append(Mismatch("max_cost", f"at most {expect.max_cost}",
                                   f"{observed.cost:.6f}"))
    return tuple(missed)
