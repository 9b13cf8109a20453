"""Which model provider each agent runs on, decided before the SDK is imported.

`auto` picks OpenAI when the agent's key variable (OPENAI_API_KEY unless `api_key_env` names
another) is set, and the embedded offline model otherwise; the choice and its reason are shown
at start-up. A provider that cannot work (a missing key) is reported here, before the first
prompt. Keys are read from the environment only and never shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from .config import Config, ModelSpec
from .errors import ProviderError
from .render import redact_url

OPENAI_KEY_VARIABLE = "OPENAI_API_KEY"
# Servers such as Ollama or vLLM ignore the key, but the openai client refuses to start without.
NO_KEY = "not-needed"

ProviderKind = Literal["openai", "openai-compatible", "litellm", "offline"]


@dataclass(frozen=True)
class ResolvedModel:
    """One agent's model: the concrete provider, the spec and the key to use."""

    provider: ProviderKind
    spec: ModelSpec
    api_key: str | None
    reason: str

    def describe(self) -> str:
        """Provider, API, model and endpoint, without the key."""
        if self.provider == "offline":
            return "OFFLINE model (embedded, routes by language; not a real LLM)"
        where = f" at {redact_url(self.spec.base_url)}" if self.spec.base_url else ""
        if self.provider == "litellm":
            return f"LiteLLM {self.spec.name}{where}"
        api = "Responses API" if self.spec.resolved_api == "responses" else "Chat Completions"
        label = "OpenAI" if self.provider == "openai" else "OpenAI-compatible"
        return f"{label} {api}, {self.spec.name}{where}"


@dataclass(frozen=True)
class ResolvedProvider:
    """The resolved model of every agent."""

    models: Mapping[str, ResolvedModel]

    @property
    def all_offline(self) -> bool:
        """True when no agent needs a network."""
        return all(m.provider == "offline" for m in self.models.values())

    @property
    def label(self) -> str:
        """The banner text: each distinct model, which agents use it, and why."""
        groups: dict[tuple[str, str], list[str]] = {}
        for agent, model in self.models.items():
            groups.setdefault((model.describe(), model.reason), []).append(agent)
        if len(groups) == 1:
            ((description, reason),) = groups
            return f"{description} - {reason}"
        return "; ".join(f"{d} for {', '.join(a)} - {r}" for (d, r), a in groups.items())


def _resolve(agent: str, spec: ModelSpec, env: Mapping[str, str], source: str) -> ResolvedModel:
    key_variable = spec.api_key_env or (
        OPENAI_KEY_VARIABLE if spec.provider in ("auto", "openai") else None)
    key = env.get(key_variable) if key_variable else None
    if spec.provider == "offline":
        return ResolvedModel("offline", spec, None, "selected by the config")
    if spec.provider == "auto":
        if key:
            return ResolvedModel("openai", spec, key, f"auto: {key_variable} is set")
        return ResolvedModel("offline", spec, None, f"auto: {key_variable} is not set")
    if key_variable and not key:
        raise ProviderError(
            f"{source}: agent {agent!r} uses provider {spec.provider!r}, which needs the API key "
            f"in {key_variable}, but it is not set; export it, or use provider: offline to try "
            "the config without a model")
    reason = f"key from {key_variable}" if key_variable else "no key"
    return ResolvedModel(spec.provider, spec, key or NO_KEY, reason)


def resolve_provider(config: Config, env: Mapping[str, str]) -> ResolvedProvider:
    """The model of every agent of `config` in environment `env`; ProviderError if unusable."""
    return ResolvedProvider(MappingProxyType({
        name: _resolve(name, config.model_for(name), env, str(config.source))
        for name in config.agents
    }))
