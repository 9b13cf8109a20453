"""What is drawn over the routing graph: a replay's coverage, or one conversation's path.

An overlay names the handoff edges that were taken (with a note: how often, or in which turns)
and, for a conversation, the agents that answered. A report or conversation that took an edge
the config does not declare was made with another config: that is said, not drawn.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from routing_runner.config.files import MIB, UnreadableFile, read_text_file
from routing_runner.config.model import Config
from routing_runner.errors import UserInputError
from routing_runner.wording import count

Edge = tuple[str, str]
# A report of a long batch (every turn's text) is far larger than a config; this only keeps a
# mistyped argument (/dev/zero, a database) from being read until memory runs out.
MAX_REPORT_BYTES = 256 * MIB
REPORT_VERSION = 1


@dataclass(frozen=True)
class Overlay:
    """Edges taken, each with its note; what was not taken is drawn as such."""

    kind: Literal["coverage", "session"]
    summary: str
    notes: Mapping[Edge, str]
    answered: frozenset[str] = field(default_factory=frozenset)

    @property
    def untaken_note(self) -> str:
        """The note of an edge not taken: a coverage gap, or merely off this conversation's path."""
        return "never taken" if self.kind == "coverage" else ""


def coverage_overlay(config: Config, report: Path) -> Overlay:
    """The edges a `replay --json` report's turns took, each with how many times."""
    data = _read_report(report)
    routes: list[tuple[str, Sequence[str]]] = []
    for conversation in data["conversations"]:
        for turn in conversation.get("turns") or ():
            observed = turn.get("observed") if isinstance(turn, dict) else None
            if isinstance(observed, dict) and isinstance(observed.get("route"), list):
                who = f"{report}: conversation {str(conversation.get('name'))!r}"
                routes.append((who, observed["route"]))
    taken = Counter(_declared_steps(config, routes))
    declared = config.edges()
    covered = sum(edge in taken for edge in declared)
    summary = (f"coverage: {covered} of {count(len(declared), 'handoff')} taken over "
               f"{count(len(data['conversations']), 'conversation')}, "
               f"{count(len(routes), 'turn')} ({report.name})")
    return Overlay("coverage", summary,
                   {edge: f"taken {count(n, 'time')}" for edge, n in taken.items()})


def session_overlay(config: Config, session_id: str,
                    routes: Sequence[Sequence[str]]) -> Overlay:
    """One conversation's path: each edge with the turns that took it, and who answered."""
    turns: dict[Edge, list[int]] = {}
    for number, route in enumerate(routes, 1):
        for edge in _declared_steps(config, [(f"session {session_id}: turn {number}", route)]):
            turns.setdefault(edge, []).append(number)
    path = "; ".join(" > ".join(route) for route in routes if route) or "no turns"
    summary = f"session {session_id}: {count(len(routes), 'turn')}, route {path}"
    notes = {edge: ("turn " if len(ns) == 1 else "turns ") + ", ".join(map(str, ns))
             for edge, ns in turns.items()}
    return Overlay("session", summary, notes,
                   frozenset(route[-1] for route in routes if route))


def _declared_steps(config: Config,
                    routes: Iterable[tuple[str, Sequence[str]]]) -> list[Edge]:
    """Every step of the routes (each with who took it); an undeclared step is an error."""
    declared = set(config.edges())
    steps: list[Edge] = []
    for who, route in routes:
        for source, target in pairwise(route):
            edge = (str(source), str(target))
            if edge not in declared:
                raise UserInputError(
                    f"{who} handed off {edge[0]} -> {edge[1]}, which "
                    f"{config.source} does not declare: was it made with another config?")
            steps.append(edge)
    return steps


def _read_report(path: Path) -> dict[str, Any]:
    """A `replay --json` report, checked for the parts the graph reads."""
    try:
        text = read_text_file(path, MAX_REPORT_BYTES)
    except UnreadableFile as error:
        raise UserInputError(f"{path}: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserInputError(f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}; "
                             "--coverage takes the file `replay --json` writes") from None
    if (not isinstance(data, dict) or data.get("version") != REPORT_VERSION
            or not isinstance(data.get("conversations"), list)
            or not all(isinstance(c, dict) for c in data["conversations"])):
        raise UserInputError(f"{path}: not a `replay --json` report (version "
                             f"{REPORT_VERSION}); --coverage takes the file it writes")
    return data
