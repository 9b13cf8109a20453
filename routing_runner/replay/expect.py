"""Checking one turn's observed route and text against the transcript's expectations."""

from __future__ import annotations

from collections.abc import Sequence

from routing_runner.runtime.offline.language_id import primary_subtag

from .budgets import budget_misses
from .handoff_checks import handoff_checks
from .json_checks import check_json
from .results import Mismatch, Observed
from .script import Expectations, TextCheck
from .tool_checks import describe_calls

EXCERPT = 120


def check(expect: Expectations, observed: Observed,
          languages: Sequence[str] = ()) -> tuple[Mismatch, ...]:
    """Every expectation `observed` misses, in the order the transcript format lists them
    (`languages`: the config's, whose phrases `no_announced_handoff` looks for)."""
    missed: list[Mismatch] = []
    if expect.agent is not None and observed.agent != expect.agent:
        missed.append(Mismatch("agent", expect.agent, observed.agent))
    if expect.route is not None and observed.route != expect.route:
        missed.append(Mismatch("route", " -> ".join(expect.route), " -> ".join(observed.route)))
    for text_check in expect.text:
        if not text_check.passes(observed.text):
            missed.append(Mismatch(text_check.kind, _expected_text(text_check),
                                   excerpt(observed.text, text_check)))
    if expect.language is not None and (
            observed.language is None
            or primary_subtag(observed.language) != primary_subtag(expect.language)):
        missed.append(Mismatch("language", expect.language, observed.language or "uncertain"))
    for name, count, value in (("model_calls", expect.model_calls, observed.model_calls),
                               ("tool_calls", expect.tool_calls, observed.tool_calls)):
        if count is not None and not count.allows(value):
            missed.append(Mismatch(name, str(count), str(value)))
    if expect.guardrail is not None and observed.guardrail != expect.guardrail:
        missed.append(Mismatch("guardrail", expect.guardrail,
                               observed.guardrail or "none tripped"))
    missed += [Mismatch("json", expected, got)
               for expected, got in check_json(expect.json, observed.output, observed.text)]
    if expect.tools is not None:
        wrong = expect.tools.missed(observed.tools)
        if wrong is not None:
            missed.append(Mismatch("tools", wrong, describe_calls(observed.tools)))
    missed.extend(handoff_checks(expect, observed, languages))
    return tuple(missed) + budget_misses(expect, observed)


def _expected_text(text_check: TextCheck) -> str:
    suffix = " (ignoring case)" if text_check.ignore_case else ""
    return f"{text_check.value!r}{suffix}"


def excerpt(text: str, near: TextCheck | None = None, limit: int = EXCERPT) -> str:
    """A one-line excerpt of `text`: its start, or around what a not_contains check found."""
    flat = " ".join(text.split())
    start = 0
    if near is not None and near.kind == "not_contains":
        found = near.pattern().search(flat)
        if found is not None:
            start = max(0, found.start() - limit // 3)
    piece = flat[start:start + limit]
    return ("…" if start else "") + piece + ("…" if start + limit < len(flat) else "")
