"""Tokens and cost in a replay's reports: per conversation, for the batch, as JUnit properties.

Each turn's usage (per agent) is priced with its transcript's config, whose `config:` block may
change the models; totals add the agents' tokens across turns, and cost is null as soon as one
turn could not be priced.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from routing_runner.config.model import Config
from routing_runner.runtime.usage import Tokens, summed, turn_cost

from .results import BatchResult, ConversationResult


def _totals(turns: Iterable[tuple[Config, dict[str, Tokens]]]) -> dict[str, Any]:
    by_agent: dict[str, Tokens] = {}
    cost: float | None = 0.0
    for config, usage in turns:
        for agent, tokens in usage.items():
            by_agent[agent] = by_agent.get(agent, Tokens()) + tokens
        turn = turn_cost(config, usage)
        cost = None if cost is None or turn is None else cost + turn
    return {"agents": {agent: tokens.as_dict() for agent, tokens in by_agent.items()},
            "total": {**summed(by_agent).as_dict(),
                      "cost": None if cost is None else round(cost, 8)}}


def _turn_usages(conversation: ConversationResult) -> list[tuple[Config, dict[str, Tokens]]]:
    config = conversation.job.transcript.config
    return [(config, dict(turn.observed.usage)) for turn in conversation.turns
            if turn.observed is not None and turn.observed.usage]


def conversation_usage(conversation: ConversationResult) -> dict[str, Any]:
    """The conversation's tokens per agent, in total, and its cost (null when unpriced)."""
    return _totals(_turn_usages(conversation))


def batch_usage(result: BatchResult) -> dict[str, Any]:
    """Every finished conversation's tokens per agent, in total, and the batch's cost."""
    return _totals(usage for c in result.conversations for usage in _turn_usages(c))


def usage_properties(conversation: ConversationResult | None) -> list[tuple[str, str]]:
    """JUnit properties of a conversation: tokens in/cached/out/reasoning, calls, cost."""
    if conversation is None:
        return []
    total = _totals(_turn_usages(conversation))["total"]
    unit = "words" if total.get("words") else "tokens"
    names = ("input", "cached", "output", "reasoning")
    properties = [(f"{unit}_{name}", str(total[name])) for name in names]
    properties.append(("model_calls", str(total["calls"])))
    if total["cost"] is not None:
        properties.append(("cost", f"{total['cost']:.8f}"))
    return properties
