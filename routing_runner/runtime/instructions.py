"""An agent's instructions for the SDK: plain text, or filled from the conversation's context.

Instructions with `{{ name }}` placeholders become the SDK's dynamic instructions, a function
of the run context; the run context of every turn is the conversation's context values (see
`TurnRunner.run`). Filling joins strings (config.placeholders): no code runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agents import Agent, RunContextWrapper

from routing_runner.config.placeholders import parse

Instructions = str | Callable[[RunContextWrapper[Any], Agent[Any]], str]


def sdk_instructions(text: str) -> Instructions:
    """`text` itself when it has no placeholder, else a function filling it per turn."""
    template, _ = parse(text)
    if len(template.parts) == 1:
        return template.parts[0]

    def fill(run: RunContextWrapper[Any], agent: Agent[Any]) -> str:
        context: Mapping[str, str] = run.context if isinstance(run.context, Mapping) else {}
        return template.fill(context)

    return fill
