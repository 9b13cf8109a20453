"""Checks of handoffs beyond the schema: a history policy's `n`, and `validate`'s lints.

`check_history_policy` is a meaning check of every load. The lints (`lint_handoffs`) are
advice `validate` prints as warnings: a handoff target the model knows only by its name, and a
cycle of handoffs in which no agent answers, which the model may go round until
`run.max_turns`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routing_runner.errors import Problem

from .document import Document, PathKey
from .model import Config


def check_history_policy(document: Document, item: Mapping[str, Any],
                         where: PathKey) -> list[Problem]:
    """`n` goes with `history: last_n`, and only with it."""
    if item.get("history") == "last_n" and "n" not in item:
        return [document.problem((*where, "history"),
                                 "history last_n needs n, the number of latest turns to pass on")]
    if "n" in item and item.get("history") != "last_n":
        return [document.problem((*where, "n"), "n applies to history: last_n only (the "
                                 f"history here is {item.get('history', 'full')})", key=True)]
    return []


def lint_handoffs(document: Document, config: Config) -> list[Problem]:
    """Warnings for `validate`: undescribed handoff targets, cycles where nobody answers."""
    found = _undescribed_targets(document, config) + _cycles_without_answer(document, config)
    return sorted(found, key=lambda problem: (problem.line, problem.column))


def _undescribed_targets(document: Document, config: Config) -> list[Problem]:
    """Each handoff target without a handoff_description (none of its handoffs has one)."""
    sources: dict[str, list[str]] = {}
    for agent in config.agents.values():
        for handoff in agent.handoffs:
            if handoff.description is None:
                sources.setdefault(handoff.agent, []).append(agent.name)
    return [document.problem(
        ("agents", target), f"{target!r} has no handoff_description: the model handing off to it "
        f"(from {', '.join(sources[target])}) knows it by its name only", key=True,
        severity="warning")
        for target in config.agents
        if target in sources and config.agents[target].handoff_description is None]


def _cycles_without_answer(document: Document, config: Config) -> list[Problem]:
    """A cycle of routers: agents that hand off and have no `language` to answer in.

    Only said of configs that mark answering agents with `language` at all; elsewhere every
    agent may answer.
    """
    if not any(agent.language for agent in config.agents.values()):
        return []
    problems = []
    for cycle in _cycles(config):
        if not any(config.agents[name].language for name in cycle):
            path = " -> ".join([*cycle, cycle[0]])
            problems.append(document.problem(
                ("agents", cycle[0]), f"handoff cycle {path} has no agent with a language to "
                "answer: the model may pass the conversation round it until run.max_turns",
                key=True, severity="warning"))
    return problems


def _cycles(config: Config) -> list[list[str]]:
    """Each group of agents that can hand off round to themselves, in config order.

    The strongly connected components with a cycle (Tarjan's algorithm, iterative).
    """
    graph = {name: [h.agent for h in agent.handoffs] for name, agent in config.agents.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = stack[stack.index(node):]
                    del stack[stack.index(node):]
                    if len(group) > 1 or node in graph[node]:
                        found.append(sorted(group, key=list(graph).index))
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                work.append((target, iter(graph[target])))
            elif target in stack:
                low[node] = min(low[node], index[target])
    return sorted(found, key=lambda group: list(graph).index(group[0]))
