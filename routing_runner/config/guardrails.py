"""Guardrails in a config: a top-level `guardrails:` map, listed by agents as input or output ones.

    guardrails:
      no_refunds:
        function: guards.refunds:check        # a Python function (see runtime.guardrails)
        message: Refunds are handled by phone.
      on_topic:
        agent: {instructions: 'Trip when the message is about "weather".', model: gpt-4.1-mini}
        message: I can only help with orders.
    agents:
      orders: {instructions: ..., input_guardrails: [on_topic], output_guardrails: [no_refunds]}

The schema checks the shape; this checks the names agents list, and keeps where each function
is written so that a function that does not import is reported there (config.imports).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from routing_runner.errors import Problem
from routing_runner.wording import did_you_mean

from .document import Document
from .imports import ImportTarget, check_imports, search_path
from .model import Config

GUARDRAIL_LISTS = ("input_guardrails", "output_guardrails")


@dataclass(frozen=True)
class ClassifierConfig:
    """An agent that decides whether a guardrail trips: its instructions and model name."""

    instructions: str
    model: str | None = None


@dataclass(frozen=True)
class GuardrailConfig:
    """One guardrail: what decides (a function or a classifier agent) and what the user is told."""

    name: str
    message: str
    function: ImportTarget | None = None
    classifier: ClassifierConfig | None = None


def guardrails_config(document: Document, raw: Mapping[str, Any]
                      ) -> dict[str, GuardrailConfig]:
    """The typed `guardrails` map of a schema-valid config."""
    guardrails = {}
    for name, spec in raw.get("guardrails", {}).items():
        if name.startswith("x-"):
            continue
        function = spec.get("function")
        classifier = spec.get("agent")
        guardrails[name] = GuardrailConfig(
            name=name, message=spec["message"],
            function=None if function is None else ImportTarget.at(
                document, ("guardrails", name, "function"), function),
            classifier=None if classifier is None else ClassifierConfig(
                classifier["instructions"], classifier.get("model")))
    return guardrails


def check_guardrail_lists(document: Document, raw: Mapping[str, Any],
                          known: Mapping[str, GuardrailConfig]) -> list[Problem]:
    """A problem for each name an agent lists that `guardrails:` does not declare."""
    problems = []
    for agent, spec in raw["agents"].items():
        if agent.startswith("x-"):
            continue
        for key in GUARDRAIL_LISTS:
            for index, name in enumerate(spec.get(key, [])):
                if name not in known:
                    declared = ", ".join(known) or "none"
                    problems.append(document.problem(
                        ("agents", agent, key, index),
                        f"{name!r} is not a guardrail{did_you_mean(name, known)} "
                        f"(declared under 'guardrails:': {declared})"))
    return problems


def check_guardrail_imports(configs: Iterable[Config]) -> None:
    """ConfigError for each guardrail function that does not import, checked before a first
    message (a transcript's overrides may name others: each config is given).
    """
    for config in {id(c): c for c in configs}.values():
        check_imports(dict.fromkeys(g.function for g in config.guardrails.values()
                                    if g.function is not None), search_path(config))
