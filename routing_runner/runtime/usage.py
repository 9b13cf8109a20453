"""Tokens per model call, summed per agent per turn, and their cost from the config's prices.

Read from the usage each model response reports (the SDK's, as the provider sent it): input
tokens (of which `cached` came from the provider's prompt cache) and output tokens (of which
`reasoning` were spent thinking). The offline model counts words, not tokens, and says so:
its agents' totals are marked `words`.

Plain data, no SDK import: the chat, `sessions` and the replay reports read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from routing_runner.config.model import Config
from routing_runner.wording import count

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class Tokens:
    """Token counts of one or more model calls (`calls`); `words` when the offline model's."""

    input: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0
    calls: int = 0
    words: bool = False

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.input + other.input, self.cached + other.cached,
                      self.output + other.output, self.reasoning + other.reasoning,
                      self.calls + other.calls, self.words or other.words)

    @property
    def total(self) -> int:
        """Input plus output (cached and reasoning tokens are part of those)."""
        return self.input + self.output

    def as_dict(self) -> dict[str, int | bool]:
        """The counts as JSON-ready data (`words` only when true)."""
        data: dict[str, int | bool] = {f.name: getattr(self, f.name) for f in fields(self)
                                       if f.name != "words"}
        if self.words:
            data["words"] = True
        return data


def response_tokens(usage: Any, *, words: bool = False) -> Tokens:
    """One call's Tokens from a response's usage object (missing details count as 0)."""
    if usage is None:
        return Tokens(calls=1, words=words)

    def detail(name: str, field_name: str) -> int:
        return int(getattr(getattr(usage, name, None), field_name, 0) or 0)

    return Tokens(int(getattr(usage, "input_tokens", 0) or 0),
                  detail("input_tokens_details", "cached_tokens"),
                  int(getattr(usage, "output_tokens", 0) or 0),
                  detail("output_tokens_details", "reasoning_tokens"), 1, words)


def stored_usage(stored: Mapping[str, Any] | None) -> dict[str, Tokens]:
    """Tokens per agent from a conversation's stored totals (`Tokens.as_dict` data); what
    is not such data (written by something else) is left out."""
    names = {f.name for f in fields(Tokens)}
    by_agent: dict[str, Tokens] = {}
    for agent, data in (stored or {}).items():
        if isinstance(data, dict) and set(data) <= names and all(
                isinstance(value, int) for value in data.values()):
            by_agent[str(agent)] = Tokens(**{k: bool(v) if k == "words" else v
                                             for k, v in data.items()})
    return by_agent


def with_turn(stored: Mapping[str, Any] | None,
              turn: Mapping[str, Tokens]) -> dict[str, dict[str, int | bool]]:
    """A conversation's stored totals with one more completed turn's tokens added."""
    totals = stored_usage(stored)
    for agent, tokens in turn.items():
        totals[agent] = totals.get(agent, Tokens()) + tokens
    return {agent: tokens.as_dict() for agent, tokens in totals.items()}


def summed(by_agent: Mapping[str, Tokens]) -> Tokens:
    """All agents' tokens together."""
    total = Tokens()
    for tokens in by_agent.values():
        total += tokens
    return total


def agent_cost(config: Config, agent: str, tokens: Tokens) -> float | None:
    """What `tokens` cost on `agent`'s model by the config's `prices`; None without a price."""
    if tokens.words or agent not in config.agents:
        return None
    price = config.prices.get(config.model_for(agent).name)
    if price is None:
        return None
    cached_price = price.input if price.cached_input is None else price.cached_input
    return ((tokens.input - tokens.cached) * price.input + tokens.cached * cached_price
            + tokens.output * price.output) / PER_MILLION


def turn_cost(config: Config, by_agent: Mapping[str, Tokens]) -> float | None:
    """The cost of every agent's tokens; None when an agent that was called has no price."""
    costs = [agent_cost(config, agent, tokens) for agent, tokens in by_agent.items()]
    if not costs or any(cost is None for cost in costs):
        return None
    return sum(cost for cost in costs if cost is not None)


def usage_record(config: Config, by_agent: Mapping[str, Tokens]) -> dict[str, Any]:
    """Per-agent and total tokens with their cost (null without prices), for JSON reports."""
    return {
        "agents": {agent: {**tokens.as_dict(), "cost": _rounded(agent_cost(config, agent, tokens))}
                   for agent, tokens in by_agent.items()},
        "total": {**summed(by_agent).as_dict(), "cost": _rounded(turn_cost(config, by_agent))},
    }


def _rounded(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 8)


def usage_line(config: Config, by_agent: Mapping[str, Tokens]) -> str:
    """One line: total tokens (in, cached, out, reasoning), per agent, and the cost if priced."""
    total = summed(by_agent)
    unit = "words (offline model)" if total.words else "tokens"
    parts = [f"{total.total} {unit}: {total.input} in ({total.cached} cached), {total.output} "
             f"out ({total.reasoning} reasoning)"]
    if len(by_agent) > 1:
        parts.append(", ".join(f"{agent} {tokens.total}" for agent, tokens in by_agent.items()))
    cost = turn_cost(config, by_agent)
    if cost is not None:
        parts.append(f"${cost:.6f}")
    return " - ".join(parts)


@dataclass
class UsageTally:
    """Tokens per agent over the turns of one chat, or of a whole conversation (`earlier`:
    `by_agent` began with its stored totals)."""

    config: Config
    by_agent: dict[str, Tokens] = field(default_factory=dict)
    turns: int = 0
    earlier: bool = False

    def add(self, turn: Mapping[str, Tokens]) -> None:
        """Count one completed turn's tokens."""
        self.turns += 1
        for agent, tokens in turn.items():
            self.by_agent[agent] = self.by_agent.get(agent, Tokens()) + tokens

    def lines(self) -> list[str]:
        """The chat's usage so far: the total line, then one line per agent."""
        if not self.by_agent:
            return ["no turn has completed in this chat yet"]
        head = f"{count(self.turns, 'turn')} in this chat"
        if self.earlier:
            head = f"this conversation ({head})" if self.turns else "this conversation"
        lines = [f"{head}: " + usage_line(self.config, self.by_agent)]
        lines += [f"  {agent}: " + usage_line(self.config, {agent: tokens})
                  for agent, tokens in self.by_agent.items()]
        return lines
