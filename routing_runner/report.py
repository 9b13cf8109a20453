"""Reporting a replay: progress line, terminal summary, JSON, JUnit XML, coverage, pass rates.

Everything here reads a `BatchResult` and writes text; nothing runs. The terminal summary, the
JSON and the JUnit file are three views of the same result and agree on every count.

Model output is untrusted: the terminal and JUnit views show it inert (`render.inert`), so a
reply cannot move the cursor or produce XML a CI server cannot read.
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .private_files import write_private
from .render import inert
from .replay import (
    BatchResult,
    ConversationResult,
    Job,
    Mismatch,
    TurnResult,
    excerpt,
)

REPORT_VERSION = 1
PROGRESS_INTERVAL = 0.1


# ---------------------------------------------------------------------------------------------
# Styling


@dataclass(frozen=True)
class Colours:
    """ANSI colours for the summary, or none."""

    enabled: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def expected(self, text: str) -> str:
        """A `- expected` line."""
        return self._wrap("31", text)

    def got(self, text: str) -> str:
        """A `+ got` line."""
        return self._wrap("32", text)

    def bold(self, text: str) -> str:
        """A heading."""
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        """Context."""
        return self._wrap("2", text)


# ---------------------------------------------------------------------------------------------
# Derived views: coverage and pass rates


@dataclass(frozen=True)
class Coverage:
    """The config's declared handoff edges, and which of them the run took."""

    declared: tuple[tuple[str, str], ...]
    exercised: frozenset[tuple[str, str]]

    @property
    def never(self) -> tuple[tuple[str, str], ...]:
        """Declared edges no conversation took, in config order."""
        return tuple(edge for edge in self.declared if edge not in self.exercised)

    @property
    def taken(self) -> tuple[tuple[str, str], ...]:
        """Declared edges some conversation took, in config order."""
        return tuple(edge for edge in self.declared if edge in self.exercised)


def coverage(result: BatchResult) -> Coverage:
    """Which declared handoff edges (`config.edges()`) the finished conversations took."""
    exercised = frozenset(edge for c in result.conversations for edge in c.edges())
    return Coverage(tuple(result.config.edges()), exercised)


@dataclass(frozen=True)
class PassRate:
    """How often one turn of one transcript passed over its runs."""

    transcript: str
    turn: int
    location: str
    passed: int
    runs: int


def pass_rates(result: BatchResult) -> list[PassRate]:
    """Each turn's pass count over the runs that reached it, in transcript order."""
    tally: dict[tuple[str, int], list[int]] = {}
    where: dict[tuple[str, int], str] = {}
    for conversation in result.conversations:
        for turn in conversation.turns:
            key = (conversation.transcript.name, turn.number)
            counts = tally.setdefault(key, [0, 0])
            counts[0] += turn.status == "passed"
            counts[1] += 1
            where[key] = str(turn.turn.location)
    return [PassRate(name, number, where[(name, number)], passed, runs)
            for (name, number), (passed, runs) in tally.items()]


def _edge(edge: tuple[str, str]) -> str:
    return f"{edge[0]} -> {edge[1]}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


# ---------------------------------------------------------------------------------------------
# Terminal


def summary_line(result: BatchResult) -> str:
    """The one-line verdict: counts of conversations by outcome, turns, time."""
    turns = sum(len(c.turns) for c in result.conversations)
    parts = [f"{result.count('passed')} passed", f"{result.count('failed')} failed",
             _plural(result.count("error"), "error")]
    if result.not_run:
        parts.append(f"{len(result.not_run)} not run")
    return (f"replay: {', '.join(parts)} ({_plural(len(result.jobs), 'conversation')}, "
            f"{_plural(turns, 'turn')}) in {result.seconds:.2f}s")


def conversation_heading(conversation: ConversationResult) -> str:
    """`FAILED name (file:line) session id`, with the run number when repeating."""
    job = conversation.job
    run = f" [run {job.repeat} of {job.repeats}]" if job.repeats > 1 else ""
    word = "ERROR" if conversation.status == "error" else "FAILED"
    return inert(f"{word} {conversation.transcript.name}{run} "
                 f"({conversation.transcript.location}) session {job.session_id}")


def turn_details(turn: TurnResult, colours: Colours = Colours(False)) -> list[str]:
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
                    colours: Colours = Colours(False)) -> list[str]:
    """Every failing turn of `conversation` and the run failure that stopped it."""
    lines = [colours.bold(conversation_heading(conversation))]
    for turn in conversation.turns:
        if turn.status != "passed":
            lines.extend(turn_details(turn, colours))
    if conversation.error is not None and not any(t.error for t in conversation.turns):
        lines.append(colours.expected(f"    run failed: {inert(conversation.error)}"))
    return lines


def summary(result: BatchResult, colours: Colours = Colours(False)) -> str:
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
        lines.append(f"rate limited {_plural(result.rate_limited, 'time')}; "
                     "the batch waited together each time")
    if result.stopped == "interrupted":
        lines.append(f"interrupted: {len(result.conversations)} of {len(result.jobs)} "
                     "conversations finished; the rest were not run")
    elif result.stopped == "fail_fast":
        lines.append(f"stopped at the first failure (--fail-fast): "
                     f"{_plural(len(result.not_run), 'conversation')} not run")
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
        lines.append(f"  {_plural(steady, 'other turn')} passed {repeats}/{repeats}")
    return lines


def coverage_line(cov: Coverage) -> str:
    """`handoff coverage: 5 of 12 edges; never taken: a -> b, ...`."""
    line = f"handoff coverage: {len(cov.taken)} of {_plural(len(cov.declared), 'edge')} taken"
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


def to_json(result: BatchResult) -> dict[str, Any]:
    """The machine-readable report: totals, coverage, one object per conversation and turn."""
    cov = coverage(result)
    return {
        "version": REPORT_VERSION,
        "config": str(result.config.source),
        "exit_code": result.exit_code,
        "stopped": result.stopped,
        "seconds": round(result.seconds, 4),
        "totals": {
            "conversations": len(result.jobs),
            "passed": result.count("passed"),
            "failed": result.count("failed"),
            "errors": result.count("error"),
            "not_run": len(result.not_run),
            "turns": sum(len(c.turns) for c in result.conversations),
            "rate_limited": result.rate_limited,
        },
        "coverage": {
            "declared": [list(e) for e in cov.declared],
            "taken": [list(e) for e in cov.taken],
            "never": [list(e) for e in cov.never],
        },
        "pass_rates": [
            {"transcript": r.transcript, "turn": r.turn, "location": r.location,
             "passed": r.passed, "runs": r.runs} for r in pass_rates(result)
        ],
        "conversations": [_conversation_json(c) for c in result.conversations],
        "not_run": [_job_json(job) for job in result.not_run],
    }


def _job_json(job: Job) -> dict[str, Any]:
    transcript = job.transcript
    return {"name": transcript.name, "file": transcript.location.file,
            "line": transcript.location.line, "tags": list(transcript.tags),
            "repeat": job.repeat, "session_id": job.session_id}


def _conversation_json(conversation: ConversationResult) -> dict[str, Any]:
    return {
        **_job_json(conversation.job),
        "status": conversation.status,
        "seconds": round(conversation.seconds, 4),
        "error": conversation.error,
        "turns": [_turn_json(t) for t in conversation.turns],
    }


def _turn_json(turn: TurnResult) -> dict[str, Any]:
    observed = turn.observed
    return {
        "turn": turn.number,
        "line": turn.turn.location.line,
        "user": turn.turn.user,
        "after_restart": turn.after_restart,
        "status": turn.status,
        "seconds": round(turn.seconds, 4),
        "first_text_seconds": (None if turn.first_text_seconds is None
                               else round(turn.first_text_seconds, 4)),
        "observed": None if observed is None else {
            "agent": observed.agent, "route": list(observed.route), "text": observed.text,
            "model_calls": observed.model_calls, "tool_calls": observed.tool_calls,
            "retries": observed.retries, "language": observed.language,
        },
        "failures": [{"check": m.check, "expected": m.expected, "got": m.got}
                     for m in turn.mismatches],
        "error": turn.error,
    }


def write_json(result: BatchResult, target: str) -> None:
    """Write the JSON report to `target`, or to stdout when it is `-`."""
    text = json.dumps(to_json(result), indent=2, ensure_ascii=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_private(Path(target), text)


# ---------------------------------------------------------------------------------------------
# JUnit XML


def junit_tree(result: BatchResult) -> ET.ElementTree[ET.Element]:
    """JUnit XML: one testsuite for the config, one testcase per conversation."""
    suite_name = _xml_safe(f"replay {result.config.title}")
    root = ET.Element("testsuites", name="routing-runner replay")
    suite = ET.SubElement(root, "testsuite", {
        "name": suite_name, "tests": str(len(result.jobs)),
        "failures": str(result.count("failed")), "errors": str(result.count("error")),
        "skipped": str(len(result.not_run)), "time": f"{result.seconds:.3f}",
    })
    root.attrib.update({k: suite.attrib[k] for k in ("tests", "failures", "errors", "time")})
    for conversation in result.conversations:
        case = _testcase(suite, conversation.job, conversation.seconds)
        if conversation.status == "passed":
            continue
        first = _first_problem(conversation)
        kind = "error" if conversation.status == "error" else "failure"
        element = ET.SubElement(case, kind, {
            "message": _xml_safe(first),
            "type": "RunFailure" if kind == "error" else "ExpectationFailed",
        })
        element.text = _xml_safe("\n".join(failure_details(conversation)))
    for job in result.not_run:
        case = _testcase(suite, job, 0.0)
        why = "interrupted" if result.stopped == "interrupted" else "stopped by --fail-fast"
        ET.SubElement(case, "skipped", message=f"not run ({why})")
    ET.indent(root)
    return ET.ElementTree(root)


def _testcase(suite: ET.Element, job: Job, seconds: float) -> ET.Element:
    transcript = job.transcript
    name = transcript.name + (f" [run {job.repeat}]" if job.repeats > 1 else "")
    classname = Path(transcript.location.file).with_suffix("").as_posix().strip("./")
    case = ET.SubElement(suite, "testcase", {
        "classname": _xml_safe(classname.replace("/", ".")), "name": _xml_safe(name),
        "file": _xml_safe(transcript.location.file), "line": str(transcript.location.line),
        "time": f"{seconds:.3f}",
    })
    properties = ET.SubElement(case, "properties")
    ET.SubElement(properties, "property", name="session_id", value=job.session_id)
    return case


def _first_problem(conversation: ConversationResult) -> str:
    for turn in conversation.turns:
        if turn.error is not None:
            return f"turn {turn.number}: run failed: {turn.error}"
        if turn.mismatches:
            m = turn.mismatches[0]
            more = len(turn.mismatches) - 1
            extra = f" (and {_plural(more, 'more check')})" if more else ""
            return (f"turn {turn.number}: expected {_label(m.check)} {m.expected}, "
                    f"got {m.got}{extra}")
    return conversation.error or "failed"


_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    # inert() makes control characters visible; XML 1.0 cannot carry them (nor lone
    # surrogates and U+FFFE/U+FFFF) at all, and a CI server would reject the whole file.
    return _NOT_XML.sub("\ufffd", inert(text))


def write_junit(result: BatchResult, path: Path) -> None:
    """Write the JUnit XML report to `path` (created owner-only, never through a symlink)."""
    document = io.BytesIO()
    junit_tree(result).write(document, encoding="utf-8", xml_declaration=True)
    write_private(path, document.getvalue())
