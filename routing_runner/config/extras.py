"""What a config needs that this machine may lack: optional packages, checked without imports.

`load_config` reports them apart from the config's own problems (`sessions` commands work
without them); `runtime.providers` refuses to run a provider whose package is missing.
"""

from __future__ import annotations

import importlib.util

from routing_runner.errors import Problem

from .document import Document
from .model import Config

LITELLM_EXTRA = "pip install 'routing-runner[litellm]'"
OTEL_EXTRA = "pip install 'routing-runner[otel]'"


def litellm_installed() -> bool:
    """Whether LiteLLM (an optional extra) is installed; checked without importing it."""
    return importlib.util.find_spec("litellm") is not None


def otel_installed() -> bool:
    """Whether the OpenTelemetry SDK and its OTLP/HTTP exporter are installed (not imported)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in (
            "opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"))
    except ModuleNotFoundError:  # the namespace package itself is missing
        return False


def missing_extras(document: Document, config: Config) -> tuple[Problem, ...]:
    """Each `provider: litellm` of `config` when LiteLLM is not installed, at its key, and
    `run.telemetry` when OpenTelemetry is not.

    Kept apart from the config's own problems: `sessions` commands work without the extra.
    """
    telemetry = () if config.telemetry is None or otel_installed() else (document.problem(
        ("run", "telemetry"), "telemetry needs the OpenTelemetry extra, which is not "
                              f"installed: {OTEL_EXTRA}", key=True),)
    if litellm_installed():
        return telemetry
    places: list[tuple[str, ...]] = []
    if config.model.spec.provider == "litellm":
        places.append(("model", "provider"))
    places += [("agents", name, "model", "provider") for name, agent in config.agents.items()
               if agent.model.get("provider") == "litellm"]
    return tuple(document.problem(place, "provider 'litellm' needs the LiteLLM extra, which is "
                                         f"not installed: {LITELLM_EXTRA}", key=True)
                 for place in places) + telemetry
