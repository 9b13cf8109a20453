"""What a replay found: per turn, per conversation, per batch (plain data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from routing_runner.config.model import Config
from routing_runner.errors import (
    EXIT_EXPECTATIONS_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILURE,
)
from routing_runner.runtime.events import ToolCalled
from routing_runner.runtime.usage import Tokens

from .plan import Job
from .script import Transcript, Turn

Status = Literal["passed", "failed", "error"]


@dataclass(frozen=True)
class Observed:
    """What a completed turn did."""

    agent: str
    route: tuple[str, ...]
    text: str
    model_calls: int
    tool_calls: int
    retries: int = 0
    language: str | None = None
    # A structured answer, parsed (agents with an output schema).
    output: Mapping[str, Any] | None = None
    guardrail: str | None = None  # the guardrail that stopped the turn
    # Tokens per agent (runtime.usage) and their cost by the config's prices (None: unpriced).
    usage: Mapping[str, Tokens] = field(default_factory=dict)
    cost: float | None = None
    seen_items: int | None = None  # what the last model call was given (history_seen only)
    seen_tool_items: int | None = None
    tools: tuple[ToolCalled, ...] = ()


@dataclass(frozen=True)
class Mismatch:
    """One expectation a turn missed: what was expected, and what happened instead."""

    check: str
    expected: str
    got: str

    @property
    def got_label(self) -> str:
        """What `got` describes: the text for text checks, else the checked value itself."""
        return "text" if self.check in ("contains", "not_contains", "matches") else self.check


@dataclass(frozen=True)
class TurnResult:
    """One turn of a conversation: passed, failed (mismatches) or error (the run failed)."""

    number: int
    turn: Turn
    status: Status
    seconds: float
    observed: Observed | None = None
    mismatches: tuple[Mismatch, ...] = ()
    error: str | None = None
    first_text_seconds: float | None = None
    after_restart: bool = False
    notes: tuple[str, ...] = ()  # checks not run (a judge with no model)


@dataclass(frozen=True)
class CassetteCounts:
    """A conversation's model calls recorded into, replayed from and missing from cassettes."""

    recorded: int = 0
    replayed: int = 0
    missed: int = 0

    def __add__(self, other: CassetteCounts) -> CassetteCounts:
        return CassetteCounts(self.recorded + other.recorded, self.replayed + other.replayed,
                              self.missed + other.missed)

    def __str__(self) -> str:
        return f"{self.recorded} recorded, {self.replayed} replayed, {self.missed} missed"


@dataclass(frozen=True)
class ConversationResult:
    """One finished conversation: its turns and the run failure that stopped it, if any."""

    job: Job
    status: Status
    turns: tuple[TurnResult, ...]
    seconds: float
    error: str | None = None
    cassette: CassetteCounts | None = None

    @property
    def transcript(self) -> Transcript:
        """The transcript this conversation ran."""
        return self.job.transcript

    def edges(self) -> set[tuple[str, str]]:
        """The handoff edges the conversation's turns took."""
        return {edge for turn in self.turns if turn.observed
                for edge in zip(turn.observed.route, turn.observed.route[1:], strict=False)}


@dataclass(frozen=True)
class BatchResult:
    """Every planned job and the conversations that finished."""

    config: Config
    jobs: tuple[Job, ...]
    conversations: tuple[ConversationResult, ...]
    seconds: float
    stopped: Literal["interrupted", "fail_fast"] | None = None
    rate_limited: int = 0

    def count(self, status: Status) -> int:
        """How many finished conversations ended with `status`."""
        return sum(c.status == status for c in self.conversations)

    @property
    def not_run(self) -> tuple[Job, ...]:
        """The planned jobs that did not finish (interrupted, or stopped by --fail-fast)."""
        done = {c.job.index for c in self.conversations}
        return tuple(job for job in self.jobs if job.index not in done)

    @property
    def exit_code(self) -> int:
        """130 interrupted, 3 a run failed, 1 an expectation failed, 0 all passed."""
        if self.stopped == "interrupted":
            return EXIT_INTERRUPTED
        if self.count("error"):
            return EXIT_RUN_FAILURE
        if self.count("failed"):
            return EXIT_EXPECTATIONS_FAILED
        return EXIT_OK
