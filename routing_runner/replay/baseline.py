"""`replay --baseline previous.json`: this run against an earlier run's `--json` report.

Turns are matched by transcript name and turn number, over all runs of each (--repeat):

    route drift    the route most runs took changed (a prompt or model change moved the turn
                   to another agent), with both routes
    new failure    every run passed before, and one failed now
    fixed          a run failed before, and every run passed now
    pass-rate drop under --repeat, a drop only counts when the 95% Wilson score intervals of the
                   two pass rates do not overlap: what a handful of samples cannot tell apart is
                   not reported as a regression

`--fail-on new` makes these (and no failure that was already there) decide exit code 1;
`--only-failing previous.json` re-runs only the transcripts that failed in that report.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routing_runner.errors import EXIT_EXPECTATIONS_FAILED, UserInputError
from routing_runner.wording import count

from .script import Transcript

# z for a two-sided 95% interval.
_Z = 1.959963984540054
_ROUTE = " -> "


@dataclass
class TurnTally:
    """One turn of one transcript over a report's runs: passes and the routes taken."""

    location: str = ""
    passed: int = 0
    runs: int = 0
    routes: Counter[str] = field(default_factory=Counter)

    @property
    def route(self) -> str | None:
        """The route most runs took (None when no run completed the turn)."""
        return self.routes.most_common(1)[0][0] if self.routes else None


Tallies = dict[tuple[str, int], TurnTally]


def tally(report: Mapping[str, Any]) -> Tallies:
    """Each turn's passes and routes in a `--json` report (ours, any version 1 file)."""
    tallies: Tallies = {}
    for conversation in report.get("conversations") or ():
        for turn in conversation.get("turns") or ():
            entry = tallies.setdefault((conversation["name"], int(turn["turn"])), TurnTally())
            entry.location = f"{conversation.get('file', '?')}:{turn.get('line', '?')}"
            entry.runs += 1
            entry.passed += turn.get("status") == "passed"
            observed = turn.get("observed")
            if observed:
                entry.routes[_ROUTE.join(observed["route"])] += 1
    return tallies


def read_report(path: Path, option: str) -> dict[str, Any]:
    """An earlier `--json` report; UserInputError (one line) when it is not one."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserInputError(f"{option} {path}: cannot read it: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"{option} {path}: not a JSON report of replay --json "
                             f"({error})") from None
    if not isinstance(report, dict) or report.get("version") != 1 \
            or not isinstance(report.get("conversations"), list):
        raise UserInputError(f"{option} {path}: not a JSON report of replay --json "
                             "(version 1 with conversations)")
    return report


def failing_names(report: Mapping[str, Any]) -> set[str]:
    """The transcripts with a conversation that did not pass (or did not run) in `report`."""
    names = {c["name"] for c in report["conversations"] if c.get("status") != "passed"}
    return names | {job["name"] for job in report.get("not_run") or ()}


def only_failing(transcripts: Sequence[Transcript], report: Mapping[str, Any]
                 ) -> list[Transcript]:
    """The transcripts that failed in `report`."""
    names = failing_names(report)
    return [t for t in transcripts if t.name in names]


def wilson(passed: int, runs: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a pass rate."""
    if runs == 0:
        return 0.0, 1.0
    rate = passed / runs
    denominator = 1 + _Z * _Z / runs
    centre = (rate + _Z * _Z / (2 * runs)) / denominator
    half = _Z * math.sqrt(rate * (1 - rate) / runs + _Z * _Z / (4 * runs * runs)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Change:
    """One turn that changed between the runs."""

    kind: str  # "route drift", "new failure", "fixed", "pass-rate drop"
    transcript: str
    turn: int
    location: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.transcript} turn {self.turn} ({self.location}): {self.detail}"


@dataclass(frozen=True)
class Comparison:
    """Every change against the baseline, in this run's transcript order."""

    baseline: str
    changes: tuple[Change, ...]

    def of(self, kind: str) -> list[Change]:
        """The changes of one kind."""
        return [c for c in self.changes if c.kind == kind]

    @property
    def regressed(self) -> bool:
        """Whether anything got worse: drift, a new failure, a significant drop."""
        return any(c.kind != "fixed" for c in self.changes)

    def lines(self) -> list[str]:
        """The comparison as the summary prints it."""
        counts = ", ".join(count(len(self.of(kind)), noun) for kind, noun in (
            ("route drift", "route drift"), ("new failure", "new failure"),
            ("fixed", "fixed turn"), ("pass-rate drop", "pass-rate drop")))
        return [f"compared with {self.baseline}:", *(f"  {c}" for c in self.changes),
                f"baseline: {counts}"]


def compare(previous: Mapping[str, Any], current: Mapping[str, Any],
            baseline: str) -> Comparison:
    """What changed from `previous` to `current` (both `--json` reports)."""
    before, now = tally(previous), tally(current)
    changes: list[Change] = []
    for key, entry in now.items():
        old = before.get(key)
        if old is not None and old.runs and entry.runs:
            changes.extend(Change(kind, key[0], key[1], entry.location, detail)
                           for kind, detail in _changes(old, entry))
    return Comparison(baseline, tuple(changes))


def _changes(old: TurnTally, new: TurnTally) -> Iterable[tuple[str, str]]:
    if old.route is not None and new.route is not None and old.route != new.route:
        yield "route drift", f"{old.route}, now {new.route}"
    was_clean, is_clean = old.passed == old.runs, new.passed == new.runs
    rates = f"passed {old.passed}/{old.runs}, now {new.passed}/{new.runs}"
    # One run on either side is no sample: a failure where there was none is new.
    sampled = min(old.runs, new.runs) > 1
    if was_clean and not is_clean and (not sampled or _significant_drop(old, new)):
        yield "new failure", rates
    elif sampled and _significant_drop(old, new):
        yield "pass-rate drop", _drop(old, new)
    if not was_clean and is_clean:
        yield "fixed", rates


def _significant_drop(old: TurnTally, new: TurnTally) -> bool:
    return wilson(new.passed, new.runs)[1] < wilson(old.passed, old.runs)[0]


def _drop(old: TurnTally, new: TurnTally) -> str:
    low, high = wilson(old.passed, old.runs)
    now_low, now_high = wilson(new.passed, new.runs)
    return (f"{old.passed}/{old.runs} -> {new.passed}/{new.runs} (95% Wilson intervals "
            f"{low:.2f}-{high:.2f} and {now_low:.2f}-{now_high:.2f} do not overlap)")


def exit_code(run_exit: int, comparison: Comparison | None, fail_on: str) -> int:
    """The exit code with a baseline: `any` keeps the run's and adds 1 for a regression;
    `new` fails (1) only for a regression, never for a failure the baseline had too."""
    if comparison is None:
        return run_exit
    regressed = EXIT_EXPECTATIONS_FAILED if comparison.regressed else 0
    if run_exit != EXIT_EXPECTATIONS_FAILED and run_exit != 0:
        return run_exit  # interrupted, a run failure: not a verdict on the turns
    return max(run_exit, regressed) if fail_on == "any" else regressed
