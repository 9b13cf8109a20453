"""`expect.judge`: a conversation's judged turns, asked of the config's judge model.

With no judge model to ask (none declared, its key not set, or the offline model) a judged
turn is not passed: the check is reported as not run, and `--require-judge` fails it. The
judge's model sits behind the conversation's cassette, so its calls are recorded and replayed
like the agents'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from routing_runner.config.model import Config
from routing_runner.runtime.cassettes import Tape
from routing_runner.runtime.judge import Judge
from routing_runner.runtime.providers import ResolvedModel
from routing_runner.runtime.translate import describe_failure

from .results import ConversationResult, Mismatch
from .script import Turn

NO_JUDGE = "no judge model: declare one under judge: in the config"


class TurnJudge:
    """Asks the judge about each judged turn of one conversation (the model built once)."""

    def __init__(self, resolved: ResolvedModel | str | None, config: Config, require: bool,
                 tape: Callable[[], Tape | None]) -> None:
        self.resolved = resolved
        self.config = config
        self.require = require
        self.tape = tape
        self.judge: Judge | None = None

    async def check(self, turn: Turn, reply: str) -> tuple[list[Mismatch], list[str]]:
        """What the judge found wrong with the reply, and notes (the check not run)."""
        wanted = turn.expect.judge
        if wanted is None:
            return [], []
        if not isinstance(self.resolved, ResolvedModel):
            why = self.resolved or NO_JUDGE
            if self.require:
                return [Mismatch("judge", "a judge model (--require-judge)", why)], []
            return [], [f"judge not run: {why}"]
        if self.judge is None:
            tape = self.tape()
            self.judge = Judge(self.config, self.resolved, tape.wrap if tape else None)
        try:
            verdict = await self.judge.verdict(wanted.rubric, wanted.threshold, turn.user, reply)
        except Exception as exc:  # the judge failing fails the check, not the conversation
            tape = self.tape()
            if tape is not None:
                tape.take_miss()  # said here; not the next turn's
            return [Mismatch("judge", "a verdict", describe_failure(exc, 1))], []
        if verdict.passed:
            return [], []
        return [Mismatch("judge", f"score >= {wanted.threshold:g} for: {wanted.rubric}",
                         f"{verdict.score:.2f}: {verdict.reason}")], []

    async def aclose(self) -> None:
        """Close the judge's clients, if it was asked anything."""
        if self.judge is not None:
            await self.judge.aclose()


def not_run_lines(results: Sequence[ConversationResult]) -> list[str]:
    """The judged turns that were not judged, one line each (first run of each turn only)."""
    lines: dict[str, None] = {}
    for result in results:
        for turn in result.turns:
            for note in turn.notes:
                lines[f"  {result.transcript.name} turn {turn.number} "
                      f"({turn.turn.location}): {note}"] = None
    return list(lines)
