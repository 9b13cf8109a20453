"""What a batch covered and how often each turn passed: route coverage and pass rates."""

from __future__ import annotations

from dataclasses import dataclass

from .results import BatchResult


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
