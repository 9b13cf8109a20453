"""Which model provider each agent runs on, decided before the SDK is imported.

`auto` picks OpenAI when the agent's key variable (OPENAI_API_KEY unless `api_key_env` names
another) is set, and the embedded offline model otherwise; the choice and its reason are shown
at start-up. A provider that cannot work (a missing key) is reported here, before the first
prompt. Keys are read from the environment only and never shown, and so are credentials in an
endpoint's URL (`wording.redact_url`). Whether LiteLLM is installed is config.extras' question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from routing_runner.config.extras import LITELLM_EXTRA, litellm_installed
from routing_runner.config.model import Config, ModelSpec
from routing_runner.errors import ProviderError
from routing_runner.wording import redact_url

OPENAI_KEY_VARIABLE = "OPENAI_API_KEY"
# The openai client's endpoint when the config names none.
OPENAI_URL_VARIABLE = "OPENAI_BASE_URL"
# Servers such as Ollama or vLLM ignore the key, but the openai client refuses to start without.
NO_KEY = "not-needed"

ProviderKind = Literal["openai", "openai-compatible", "litellm", "offline"]
# The API routes the openai client appends to a base URL.
_API_ROUTES = ("/chat/completions", "/responses")


def endpoint_hint(url: str) -> str:
    """What to check when a request to `url` reached something that is not the API.

    The base URL is the request's minus the API route; most servers serve the API under /v1,
    so a base without it is the likely mistake.
    """
    base = redact_url(url)
    route = next((r for r in _API_ROUTES if base.endswith(r)), "")
    base = base[: len(base) - len(route)]
    if not urlsplit(base).path.rstrip("/").endswith("/v1"):
        return (f"check model.base_url ({base}): OpenAI and most compatible servers serve the "
                f"API under /v1, so try {base.rstrip('/')}/v1")
    if route == "/responses":
        return (f"check model.base_url ({base}); a server without the Responses API needs "
                "model.api: chat_completions")
    return f"check model.base_url ({base}): it should be the address of the API"


def not_the_api(url: str, content_type: str) -> ProviderError:
    """The error for a successful answer that is not the API's (a web page, say)."""
    what = "an HTML page" if "html" in content_type else content_type
    return ProviderError(f"{redact_url(url)} answered with {what}, not the OpenAI API; "
                         f"{endpoint_hint(url)}")


def not_streamed(url: str) -> ProviderError:
    """The error for plain JSON answering a request for a stream (which reads as no events)."""
    return ProviderError(f"{redact_url(url)} answered a streamed request with plain JSON: the "
                         "server does not stream as the OpenAI API does, and chat and replay "
                         "stream every reply; use a server (or a version) that supports "
                         "\"stream\": true")


@dataclass(frozen=True)
class ResolvedModel:
    """One agent's model: the concrete provider, the spec and the key to use."""

    provider: ProviderKind
    spec: ModelSpec
    api_key: str | None
    reason: str
    # The openai client's endpoint from OPENAI_BASE_URL, when the config names none.
    env_base_url: str | None = None

    def describe(self) -> str:
        """Provider, API, model and endpoint, without the key or credentials in the URL."""
        if self.provider == "offline":
            return "OFFLINE model (embedded, routes by language; not a real LLM)"
        where = f" at {redact_url(self.spec.base_url)}" if self.spec.base_url else ""
        if self.env_base_url and not self.spec.base_url:
            where = f" at {redact_url(self.env_base_url)} (from {OPENAI_URL_VARIABLE})"
        if self.provider == "litellm":
            return f"LiteLLM {self.spec.name}{where}"
        api = "Responses API" if self.spec.resolved_api == "responses" else "Chat Completions"
        label = "OpenAI" if self.provider == "openai" else "OpenAI-compatible"
        return f"{label} {api}, {self.spec.name}{where}"


@dataclass(frozen=True)
class ResolvedProvider:
    """The resolved model of every agent."""

    models: Mapping[str, ResolvedModel]
    # The config's judge model, or why there is none to use (None: the config declares none).
    judge: ResolvedModel | str | None = None

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


def key_variable(spec: ModelSpec) -> str | None:
    """The environment variable holding the key of `spec`'s provider (None: it needs none)."""
    return spec.api_key_env or (
        OPENAI_KEY_VARIABLE if spec.provider in ("auto", "openai") else None)


def _resolve(agent: str, spec: ModelSpec, env: Mapping[str, str], source: str) -> ResolvedModel:
    variable = key_variable(spec)
    key = env.get(variable) if variable else None
    if spec.provider == "offline":
        return ResolvedModel("offline", spec, None, "selected by the config")
    # The openai client falls back on OPENAI_BASE_URL; LiteLLM has variables of its own.
    env_url = None if spec.provider == "litellm" else env.get(OPENAI_URL_VARIABLE) or None
    if spec.provider == "auto":
        if key:
            return ResolvedModel("openai", spec, key, f"auto: {variable} is set", env_url)
        return ResolvedModel("offline", spec, None, f"auto: {variable} is not set")
    if spec.provider == "litellm" and not litellm_installed():
        raise ProviderError(f"{source}: agent {agent!r} uses provider 'litellm', which needs "
                            f"the LiteLLM extra, not installed: {LITELLM_EXTRA}")
    if variable and not key:
        raise ProviderError(
            f"{source}: agent {agent!r} uses provider {spec.provider!r}, which needs the API key "
            f"in {variable}, but it is not set; export it, or use provider: offline to try "
            "the config without a model")
    reason = f"key from {variable}" if variable else "no key"
    return ResolvedModel(spec.provider, spec, key or NO_KEY, reason, env_url)


def resolve_provider(config: Config, env: Mapping[str, str]) -> ResolvedProvider:
    """The model of every agent of `config` in environment `env`; ProviderError if unusable."""
    return ResolvedProvider(MappingProxyType({
        name: _resolve(name, config.model_for(name), env, str(config.source))
        for name in config.agents
    }), _resolve_judge(config, env))


def _resolve_judge(config: Config, env: Mapping[str, str]) -> ResolvedModel | str | None:
    """The judge's model; why it cannot judge (no key, the offline model) as text."""
    if config.judge is None:
        return None
    try:
        judge = _resolve("judge", config.judge, env, str(config.source))
    except ProviderError as error:
        return str(error)
    if judge.provider == "offline":
        return f"the judge is the offline model ({judge.reason}), which cannot judge"
    return judge
