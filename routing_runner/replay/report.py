"""Reporting a replay on the terminal: the progress line and the summary.

Everything here reads a `BatchResult` and writes text; nothing runs. The terminal summary, the
JSON and the JUnit file (`replay.files`) are three views of the same result and agree on every
count; coverage and pass rates come from `replay.stats`.

Model output is untrusted: the terminal and JUnit views show it inert (`wording.inert`), so a
reply cannot move the cursor or produce XML a CI server cannot read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from routing_runner.wording import PLAIN, Style, count, inert

from .expect import excerpt
from .plan import Job
from .results import BatchResult, ConversationResult, Mismatch, TurnResult
from .stats import Coverage, _edge, coverage, pass_rates

PROGRESS_INTERVAL = 0.1


# ---------------------------------------------------------------------------------------------
# Derived views: coverage and pass rates


# ---------------------------------------------------------------------------------------------
# Terminal


def summary_line(result: BatchResult) -> str:
    """The one-line verdict: counts of conversations by outcome, turns, time."""
    turns = sum(len(c.turns) for c in result.conversations)
    parts = [f"{result.count('passed')} passed", f"{result.count('failed')} failed",
             count(result.count("error"), "error")]
    if result.not_run:
        parts.append(f"{len(result.not_run)} not run")
    return (f"replay: {', '.join(parts)} ({count(len(result.jobs), 'conversation')}, "
            f"{count(turns, 'turn')}) in {result.seconds:.2f}s")


def conversation_heading(conversation: ConversationResult) -> str:
    """`FAILED name (file:line) session id`, with the run number when repeating."""
    job = conversation.job
    run = f" [run {job.repeat} of {job.repeats}]" if job.repeats > 1 else ""
    word = "ERROR" if conversation.status == "error" else "FAILED"
    return inert(f"{word} {conversation.transcript.name}{run} "
                 f"({conversation.transcript.location}) session {job.session_id}")


def turn_details(turn: TurnResult, colours: Style = PLAIN) -> list[str]:
    """A failing turn in diff style: `- expected` / `+ got`, then what happened around it."""
    lines = [inert(f"  turn {turn.number} ({turn.turn.location}): you: "
                   f"\"{excerpt(turn.turn.user)}\"")
             + (" (after a restart)" if turn.after_restart else "")]
    if turn.error is not None:
        lines.append(colours.expected(f"    run failed: {inert(turn.error)}"))
        return lines
    shown: set[str] = set()
    for mismatch in turn.mismatches:
        lines.append(colours.expected(f"  - {_label(mismatch.check)}: {inert(mismatch.expected)}"))
        lines.append(colours.got(f"  + {mismatch.got_label}: {_got(mismatch)}"))
        shown.add(mismatch.got_label)
    observed = turn.observed
    if observed is not None:
        context = [("agent", observed.agent), ("route", " -> ".join(observed.route)),
                   ("text", f"\"{excerpt(observed.text)}\"")]
        lines.extend(colours.dim(inert(f"    {label}: {value}")) for label, value in context
                     if label not in shown)
    return lines


def _label(check: str) -> str:
    return check.replace("_", " ")


def _got(mismatch: Mismatch) -> str:
    if mismatch.got_label == "text":
        return f"\"{inert(mismatch.got)}\""
    return inert(mismatch.got)


def failure_details(conversation: ConversationResult,
                    colours: Style = PLAIN) -> list[str]:
    """Every failing turn of `conversation` and the run failure that stopped it."""
    lines = [colours.bold(conversation_heading(conversation))]
    for turn in conversation.turns:
        if turn.status != "passed":
            lines.extend(turn_details(turn, colours))
    if conversation.error is not None and not any(t.error for t in conversation.turns):
        lines.append(colours.expected(f"    run failed: {inert(conversation.error)}"))
    return lines


def summary(result: BatchResult, colours: Style = PLAIN) -> str:
    """The terminal summary: failures in diff style, pass rates, coverage, the verdict."""
    lines: list[str] = []
    for conversation in result.conversations:
        if conversation.status != "passed":
            lines.extend(failure_details(conversation, colours))
            lines.append("")
    repeats = max((job.repeats for job in result.jobs), default=1)
    if repeats > 1:
        lines.extend(_pass_rate_lines(result, repeats))
    lines.append(coverage_line(coverage(result)))
    if result.rate_limited:
        lines.append(f"rate limited {count(result.rate_limited, 'time')}; "
                     "the batch waited together each time")
    if result.stopped == "interrupted":
        lines.append(f"interrupted: {len(result.conversations)} of {len(result.jobs)} "
                     "conversations finished; the rest were not run")
    elif result.stopped == "fail_fast":
        lines.append(f"stopped at the first failure (--fail-fast): "
                     f"{count(len(result.not_run), 'conversation')} not run")
    lines.append(colours.bold(summary_line(result)))
    return "\n".join(lines) + "\n"


def _pass_rate_lines(result: BatchResult, repeats: int) -> list[str]:
    rates = pass_rates(result)
    lines = [f"pass rate per turn ({repeats} runs each):"]
    steady = 0
    for rate in rates:
        if rate.passed == rate.runs == repeats:
            steady += 1
            continue
        lines.append(inert(f"  {rate.passed}/{rate.runs}  {rate.transcript}, turn {rate.turn} "
                           f"({rate.location})"))
    if steady:
        lines.append(f"  {count(steady, 'other turn')} passed {repeats}/{repeats}")
    return lines


def coverage_line(cov: Coverage) -> str:
    """`handoff coverage: 5 of 12 edges; never taken: a -> b, ...`."""
    line = f"handoff coverage: {len(cov.taken)} of {count(len(cov.declared), 'edge')} taken"
    if cov.never:
        line += "; never taken: " + ", ".join(_edge(e) for e in cov.never)
    return inert(line)


class Progress:
    """Live progress: one redrawn line on a terminal, else a plain line per conversation."""

    def __init__(self, stream: TextIO, total: int, *, live: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.total = total
        self.live = live
        self.clock = clock
        self.running = 0
        self.done = 0
        self.failed = 0
        self._drawn_at = float("-inf")  # the first frame is drawn at once
        self._width = 0

    def started(self, job: Job) -> None:
        """A conversation started."""
        self.running += 1
        self._draw()

    def finished(self, conversation: ConversationResult) -> None:
        """A conversation finished."""
        self.running -= 1
        self.done += 1
        self.failed += conversation.status != "passed"
        if self.live:
            self._draw(force=self.done == self.total)
            return
        word = {"passed": "ok", "failed": "FAILED", "error": "ERROR"}[conversation.status]
        run = f" [run {conversation.job.repeat}]" if conversation.job.repeats > 1 else ""
        width = len(str(self.total))
        self.stream.write(f"[{self.done:>{width}}/{self.total}] {word} "
                          f"{inert(conversation.transcript.name)}{run} "
                          f"({conversation.seconds:.2f}s)\n")
        self.stream.flush()

    def _draw(self, *, force: bool = False) -> None:
        if not self.live:
            return
        now = self.clock()
        if not force and now - self._drawn_at < PROGRESS_INTERVAL:
            return
        self._drawn_at = now
        text = (f"replay: {self.done}/{self.total} done, {self.failed} failed, "
                f"{self.running} running")
        self.stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self.stream.flush()

    def close(self) -> None:
        """Clear the live line so the summary starts on a clean line."""
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


# ---------------------------------------------------------------------------------------------
# JSON


# ---------------------------------------------------------------------------------------------
# JUnit XML


