"""Transcripts: scripted conversations for `replay`, loaded into typed, frozen objects.

A transcript is one YAML document (a file may hold many, separated by `---`)::

    name: Spanish then French
    tags: [switch]
    config: {routing: {next_turn: last_agent}}    # optional overrides, like a merge patch
    turns:
      - user: Hola, ¿cómo estás?
        expect: {agent: spanish, route: [triage, spanish], language: es}
      - restart                                   # close the session, reopen it fresh
      - user: Je veux apprendre le français.
        expect: {agent: french, contains: message n° 2}

Loading (`replay.load`) collects every problem of every file before anything runs, each located
`file:line:col`: the schema (`schemas/transcript.schema.json`) checks the shape, and the code
checks the meaning against the config - agents that do not exist, routes along handoffs that
are not declared, regular expressions that do not compile, a transcript that expects nothing
(it would pass whatever happened), two transcripts with the same name.

`config` overrides patch the loaded config's document (`Document.merged`) and go through the
config's schema and checks, so a transcript can change whatever a config can say, and a wrong
override is reported at its line in the transcript.

`replay.record.TranscriptRecorder` writes the other way: a chat's turns as a transcript
(`chat --record`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from routing_runner.config.model import Config
from routing_runner.config.tools import ToolMock
from routing_runner.runtime.events import TurnEnded

from .json_checks import JsonCheck
from .tool_checks import ToolsExpectation

TRANSCRIPT_SUFFIXES = (".yaml", ".yml")
RESTART = "restart"
TextKind = Literal["contains", "not_contains", "matches"]
TEXT_KINDS: tuple[TextKind, ...] = ("contains", "not_contains", "matches")
EXPECTATION_KEYS = ("agent", "route", *TEXT_KINDS, "language", "model_calls", "tool_calls",
                    "json", "guardrail", "max_tokens", "max_cost",
                    "no_announced_handoff", "history_seen", "judge", "tools")


@dataclass(frozen=True)
class Location:
    """Where something was written: file and 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Count:
    """An expected number: exactly `minimum` when both bounds are equal, else a range."""

    minimum: int | None
    maximum: int | None

    def allows(self, value: int) -> bool:
        """Whether `value` satisfies this expectation."""
        return (self.minimum is None or value >= self.minimum) and \
            (self.maximum is None or value <= self.maximum)

    def __str__(self) -> str:
        if self.minimum == self.maximum:
            return str(self.minimum)
        if self.maximum is None:
            return f"at least {self.minimum}"
        if self.minimum is None:
            return f"at most {self.maximum}"
        return f"{self.minimum} to {self.maximum}"


@dataclass(frozen=True)
class TextCheck:
    """One check on the reply's text: it contains, does not contain, or matches `value`."""

    kind: TextKind
    value: str
    ignore_case: bool = False

    def pattern(self) -> re.Pattern[str]:
        """The compiled regular expression (a literal one for contains / not_contains)."""
        source = self.value if self.kind == "matches" else re.escape(self.value)
        return re.compile(source, re.IGNORECASE if self.ignore_case else 0)

    def passes(self, text: str) -> bool:
        """Whether `text` satisfies this check."""
        found = self.pattern().search(text) is not None
        return not found if self.kind == "not_contains" else found

    def __str__(self) -> str:
        words = {"contains": "contains", "not_contains": "does not contain",
                 "matches": "matches"}[self.kind]
        suffix = " (ignoring case)" if self.ignore_case else ""
        return f"{words} {self.value!r}{suffix}"


@dataclass(frozen=True)
class HistorySeen:
    """What the answering agent's model call must have received."""

    items: Count | None = None
    tool_calls: bool | None = None


@dataclass(frozen=True)
class JudgeCheck:
    """A rubric the judge model grades the reply against, and the score that passes."""

    rubric: str
    threshold: float = 0.7


@dataclass(frozen=True)
class Expectations:
    """What the reply to one message must look like; None / empty means "not checked"."""

    agent: str | None = None
    route: tuple[str, ...] | None = None
    text: tuple[TextCheck, ...] = ()
    language: str | None = None
    model_calls: Count | None = None
    tool_calls: Count | None = None
    # expect.json: checks on a structured answer (replay.json_checks.JsonCheck).
    json: tuple[JsonCheck, ...] = ()
    guardrail: str | None = None  # the guardrail that stops the turn
    max_tokens: int | None = None
    max_cost: float | None = None
    no_announced_handoff: bool = False
    history_seen: HistorySeen | None = None
    judge: JudgeCheck | None = None
    tools: ToolsExpectation | None = None

    def __bool__(self) -> bool:
        return any((self.agent is not None, self.route is not None, self.text,
                    self.language is not None, self.model_calls is not None,
                    self.tool_calls is not None, self.json, self.guardrail is not None,
                    self.max_tokens is not None, self.max_cost is not None,
                    self.no_announced_handoff, self.history_seen is not None,
                    self.judge is not None, self.tools is not None))


@dataclass(frozen=True)
class Turn:
    """The user's message and the expectations on the reply."""

    user: str
    expect: Expectations
    location: Location
    # This turn's canned tool results; they take the place of the transcript's for these tools.
    # A dict, not a read-only proxy: a replay worker sends its turns to the parent (pickle).
    mocks: Mapping[str, ToolMock] = field(default_factory=dict)


@dataclass(frozen=True)
class Restart:
    """Close the session and reopen it as a new process would."""

    location: Location


Step = Turn | Restart


@dataclass(frozen=True)
class Transcript:
    """One scripted conversation, with the config it runs on (overrides applied)."""

    name: str
    steps: tuple[Step, ...]
    location: Location
    config: Config
    tags: tuple[str, ...] = ()
    description: str | None = None
    overridden: bool = False
    # Values for the config's context keys, given to the conversation before its first turn.
    context: Mapping[str, str] = field(default_factory=dict)
    mocks: Mapping[str, ToolMock] = field(default_factory=dict)

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The user turns, restarts left out."""
        return tuple(step for step in self.steps if isinstance(step, Turn))


# ---------------------------------------------------------------------------------------------
# Finding the files


# ---------------------------------------------------------------------------------------------
# Loading


# ---------------------------------------------------------------------------------------------
# Config overrides: a merge patch applied to the config's document, positions kept


# ---------------------------------------------------------------------------------------------
# Selecting


# ---------------------------------------------------------------------------------------------
# Recording a chat as a transcript


def route_of(ended: TurnEnded) -> tuple[str, ...]:
    """The agents a completed turn went through: the first one, then each handoff target."""
    if not ended.handoffs:
        return (ended.agent,)
    return (ended.handoffs[0].source, *(h.target for h in ended.handoffs))
