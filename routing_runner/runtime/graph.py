"""Typed config → a graph of Agents SDK agents, with their handoffs (cycles allowed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    SessionSettings,
    handoff,
)
from agents.models.interface import Model
from agents.retry import ModelRetrySettings
from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from openai.types.shared import Reasoning

from routing_runner.config.model import Config, ModelSettingsConfig
from routing_runner.errors import ProviderError

from .history import history_window
from .offline.model import AgentProfile, OfflineModel
from .providers import ResolvedModel, ResolvedProvider
from .retries import retry_settings

# Called with each agent's name and the model built for it; returns the model the agent runs
# on. The batch's rate-limit gate wraps models this way (`RateLimitGate.wrap`), so nothing
# rewrites `agent.model` on a built graph.
ModelHook = Callable[[str, Model], Model]
# The HTTP client a batch shares between its graphs (higher layers name it without the SDK).
HttpClient = DefaultAsyncHttpxClient


def new_http_client() -> HttpClient:
    """An HTTP client for `build_graph(http_client=...)`; its owner closes it (`aclose`)."""
    return DefaultAsyncHttpxClient()


@dataclass(frozen=True)
class AgentGraph:
    """The built agents by name, the entry agent, and the run settings shared by every turn."""

    config: Config
    provider: ResolvedProvider
    agents: dict[str, Agent[Any]]
    clients: tuple[AsyncOpenAI, ...] = ()

    @property
    def entry(self) -> Agent[Any]:
        """The agent that receives a new conversation."""
        return self.agents[self.config.entry]

    def warm_up(self) -> None:
        """Do now the slow first-use work of the models (the offline model's language data)."""
        for agent in self.agents.values():
            if isinstance(agent.model, OfflineModel):
                agent.model.warm_up()  # the detectors are shared: one agent is enough
                return

    async def aclose(self) -> None:
        """Close the HTTP clients, on the event loop that used them."""
        for client in self.clients:
            await client.close()

    def run_config(self) -> RunConfig:
        """RunConfig for one turn: tracing off (it would export to OpenAI) and the window.

        With a history limit the session is asked for one item more than the limit only, so a
        long conversation costs no more per turn than a short one; the extra item tells the
        window that the history was cut, and the window cuts it again at a turn boundary.
        """
        limit = self.config.session.history_limit
        return RunConfig(
            tracing_disabled=not self.config.tracing,
            workflow_name=self.config.workflow_name or self.config.title,
            session_input_callback=history_window(limit) if limit else None,
            session_settings=SessionSettings(limit=limit + 1) if limit else None,
        )


def sdk_model_settings(settings: ModelSettingsConfig,
                       retry: ModelRetrySettings | None = None) -> ModelSettings:
    """The SDK's ModelSettings for our typed settings."""
    values = settings.as_dict()
    effort = values.pop("reasoning_effort", None)
    seed = values.pop("seed", None)
    return ModelSettings(
        **values,
        reasoning=Reasoning(effort=effort) if effort else None,
        extra_args={"seed": seed} if seed is not None else None,
        retry=retry,
    )


class _ModelFactory:
    """Builds each agent's model, sharing one API client per endpoint and key."""

    def __init__(self, config: Config, http_client: DefaultAsyncHttpxClient | None) -> None:
        self.config = config
        self.http_client = http_client
        self.profiles = {name: AgentProfile(name, spec.language)
                         for name, spec in config.agents.items()}
        self.clients: dict[tuple[str | None, str | None], AsyncOpenAI] = {}

    def client(self, resolved: ResolvedModel) -> AsyncOpenAI:
        key = (resolved.spec.base_url, resolved.api_key)
        if key not in self.clients:
            # max_retries=0: the runner's retry policy is the only retry loop.
            self.clients[key] = AsyncOpenAI(api_key=resolved.api_key,
                                            base_url=resolved.spec.base_url,
                                            timeout=self.config.model.timeout, max_retries=0,
                                            http_client=self.http_client)
        return self.clients[key]

    def owned_clients(self) -> tuple[AsyncOpenAI, ...]:
        """The API clients the graph must close: not those on a caller's HTTP client."""
        return () if self.http_client is not None else tuple(self.clients.values())

    def model(self, agent: str, resolved: ResolvedModel) -> Model:
        spec = resolved.spec
        if resolved.provider == "offline":
            return OfflineModel(self.profiles[agent], self.profiles)
        if resolved.provider == "litellm":
            return _litellm_model(resolved)
        if spec.resolved_api == "chat_completions":
            return OpenAIChatCompletionsModel(model=spec.name, openai_client=self.client(resolved))
        return OpenAIResponsesModel(model=spec.name, openai_client=self.client(resolved))


def _litellm_model(resolved: ResolvedModel) -> Model:
    try:
        from agents.extensions.models.litellm_model import LitellmModel
    except ImportError:
        raise ProviderError("provider 'litellm' needs the LiteLLM extra: "
                            "pip install 'routing-runner[litellm]'") from None
    return LitellmModel(model=resolved.spec.name, base_url=resolved.spec.base_url,
                        api_key=resolved.api_key)


def build_graph(config: Config, provider: ResolvedProvider, *,
                http_client: DefaultAsyncHttpxClient | None = None,
                wrap_model: ModelHook | None = None) -> AgentGraph:
    """Every agent of `config`, wired with its handoffs, on the resolved provider.

    `http_client`, when given, carries every model request (its owner closes it): a batch
    that builds a graph per conversation then pays once for the TLS setup and connections,
    which cost about 16 ms of CPU per client. `wrap_model` wraps each agent's model.
    """
    factory = _ModelFactory(config, http_client)
    retry = retry_settings(config.model.retry)
    agents: dict[str, Agent[Any]] = {}
    for name, spec in config.agents.items():
        resolved = provider.models[name]
        model = factory.model(name, resolved)
        agents[name] = Agent(
            name=name,
            instructions=spec.instructions,
            handoff_description=spec.handoff_description,
            model=wrap_model(name, model) if wrap_model is not None else model,
            model_settings=sdk_model_settings(
                config.settings_for(name), None if resolved.provider == "offline" else retry),
        )
    # Handoffs are attached once every agent exists, so cycles need no special case.
    for name, spec in config.agents.items():
        agents[name].handoffs = [
            handoff(agents[h.agent], tool_name_override=h.tool_name,
                    tool_description_override=h.description)
            for h in spec.handoffs
        ]
    return AgentGraph(config=config, provider=provider, agents=agents,
                      clients=factory.owned_clients())
