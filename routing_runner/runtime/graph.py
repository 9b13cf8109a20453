"""Typed config → a graph of Agents SDK agents, with their handoffs (cycles allowed)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx2
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

from routing_runner.config.extras import LITELLM_EXTRA
from routing_runner.config.model import Config, ModelSettingsConfig
from routing_runner.errors import ProviderError

from .guardrails import ClassifierModel, sdk_guardrails
from .handoff_history import history_filter
from .history import history_window
from .instructions import sdk_instructions
from .mcp import McpPool
from .offline.model import AgentProfile, OfflineModel
from .providers import ResolvedModel, ResolvedProvider, not_streamed, not_the_api
from .retries import retry_settings
from .structured import sdk_output_type
from .telemetry import install_telemetry
from .tools import build_tools

# Called with each agent's name and the model built for it; returns the model the agent runs
# on. The batch's rate-limit gate wraps models this way (`RateLimitGate.wrap`), so nothing
# rewrites `agent.model` on a built graph.
ModelHook = Callable[[str, Model], Model]
# The HTTP client a batch shares between its graphs (higher layers name it without the SDK).
HttpClient = DefaultAsyncHttpxClient


@dataclass(frozen=True)
class AgentGraph:
    """The built agents by name, the entry agent, and the run settings shared by every turn."""

    config: Config
    provider: ResolvedProvider
    agents: dict[str, Agent[Any]]
    clients: tuple[AsyncOpenAI, ...] = ()
    mcp: McpPool | None = None
    owns_mcp: bool = True
    # OpenTelemetry is on (runtime.telemetry): the SDK traces turns for it.
    telemetry: bool = False

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

    async def start(self) -> None:
        """Start the MCP servers the agents use, before the first turn (McpStartError)."""
        if self.mcp:
            await self.mcp.start()

    def tool_failure(self, error: BaseException) -> str | None:
        """What a turn's failure says when an MCP server of the graph caused it, else None."""
        return self.mcp.explain(error) if self.mcp else None

    async def aclose(self) -> None:
        """Stop its own MCP servers and close the HTTP clients, on the event loop that used
        them (a shared pool's owner stops that pool)."""
        if self.mcp is not None and self.owns_mcp:
            await self.mcp.stop()
        for client in self.clients:
            await client.close()

    def run_config(self, session_id: str | None = None) -> RunConfig:
        """RunConfig for one turn: tracing off (it would export to OpenAI) unless `run.tracing`
        or telemetry is on, the conversation's id as the trace's group, and the window.

        With a history limit the session is asked for one item more than the limit only, so a
        long conversation costs no more per turn than a short one; the extra item tells the
        window that the history was cut, and the window cuts it again at a turn boundary.
        """
        limit = self.config.session.history_limit
        return RunConfig(
            tracing_disabled=not (self.config.tracing or self.telemetry),
            group_id=session_id,
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


# What the API answers with: JSON, or a stream of server-sent events. An answer without a
# content type is given the benefit of the doubt.
_API_CONTENT_TYPES = ("application/json", "text/event-stream", "")
_STREAM_ASKED = b'"stream":true'


async def _refuse_non_api_answers(response: httpx2.Response) -> None:
    """Fail a successful answer that is not the API's, such as a web page at a wrong base_url.

    The openai client would parse an HTML page as an empty event stream: a silent empty reply.
    """
    if not response.is_success:
        return
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _API_CONTENT_TYPES and not content_type.endswith("+json"):
        raise not_the_api(str(response.request.url), content_type)
    # The body is compact JSON, and a quote inside a string is escaped (\"), so this is the
    # request's own field; plain JSON would read as a stream of no events.
    if content_type != "text/event-stream" and _STREAM_ASKED in _request_body(response):
        raise not_streamed(str(response.request.url))


def _request_body(response: httpx2.Response) -> bytes:
    try:
        return response.request.content
    except httpx2.RequestNotRead:  # a streamed upload: not one of the API's JSON requests
        return b""


def new_http_client() -> HttpClient:
    """An HTTP client for model requests that refuses answers which are not the API's.

    Also the one for `build_graph(http_client=...)`; its owner closes it (`aclose`).
    """
    return DefaultAsyncHttpxClient(event_hooks={"response": [_refuse_non_api_answers]})


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
                                            http_client=self.http_client or new_http_client())
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
    # LiteLLM fetches its model cost map from GitHub on import (warnings into the chat when
    # offline, seconds of retries); the copy it ships with serves as well.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
        from agents.extensions.models.litellm_model import LitellmModel
    except ImportError:
        raise ProviderError(f"provider 'litellm' needs the LiteLLM extra: {LITELLM_EXTRA}") \
            from None
    # Its "Give Feedback / Get Help" banner would follow every failed attempt; the turn's
    # one [error] line says what failed.
    litellm.suppress_debug_info = True
    return LitellmModel(model=resolved.spec.name, base_url=resolved.spec.base_url,
                        api_key=resolved.api_key)


# LiteLLM retries inside a run's first attempt unless told not to; the runner's retry policy
# must stay the only loop, as the openai clients' max_retries=0 makes it for the others.
_LITELLM_NO_RETRIES = ModelSettings(extra_args={"num_retries": 0, "max_retries": 0})


_STREAM_USAGE = ModelSettings(include_usage=True)


def _model_settings(config: Config, agent: str, resolved: ResolvedModel,
                    retry: ModelRetrySettings) -> ModelSettings:
    settings = sdk_model_settings(config.settings_for(agent),
                                  None if resolved.provider == "offline" else retry)
    if resolved.provider == "litellm":
        return settings.resolve(_LITELLM_NO_RETRIES)
    if resolved.provider != "offline" and resolved.spec.resolved_api == "chat_completions":
        # The SDK asks only api.openai.com for a stream's usage; other servers would leave
        # every turn's tokens (runtime.usage) at zero.
        return settings.resolve(_STREAM_USAGE)
    return settings


def _classifier_models(factory: _ModelFactory, provider: ResolvedProvider,
                       wrap_model: ModelHook | None) -> ClassifierModel:
    """A guardrail classifier's model: the guarded agent's, with the model name it gives."""
    def model(agent: str, name: str | None) -> Model:
        resolved = provider.models[agent]
        if name is not None:
            resolved = replace(resolved, spec=replace(resolved.spec, name=name))
        built = factory.model(agent, resolved)
        return wrap_model(agent, built) if wrap_model is not None else built

    return model


def build_graph(config: Config, provider: ResolvedProvider, *,
                http_client: DefaultAsyncHttpxClient | None = None,
                wrap_model: ModelHook | None = None,
                mcp_pool: McpPool | None = None) -> AgentGraph:
    """Every agent of `config`, wired with its handoffs, on the resolved provider.

    `http_client`, when given, carries every model request (its owner closes it; build it
    with `new_http_client`, which refuses answers that are not the API's): a batch
    that builds a graph per conversation then pays once for the TLS setup and connections,
    which cost about 16 ms of CPU per client. `wrap_model` wraps each agent's model.
    `mcp_pool`, when given, holds the MCP servers (shared with other graphs; its owner stops
    it); else the graph starts and stops its own (`start`, `aclose`).
    """
    factory = _ModelFactory(config, http_client)
    retry = retry_settings(config.model.retry)
    agents: dict[str, Agent[Any]] = {}
    tools = build_tools(config)
    pool = mcp_pool if mcp_pool is not None else McpPool()
    servers = pool.add(config)
    for name, spec in config.agents.items():
        resolved = provider.models[name]
        model = factory.model(name, resolved)
        agents[name] = Agent(
            name=name,
            instructions=sdk_instructions(spec.instructions),
            handoff_description=spec.handoff_description,
            model=wrap_model(name, model) if wrap_model is not None else model,
            model_settings=_model_settings(config, name, resolved, retry),
            output_type=sdk_output_type(spec.output_schema),
            tools=[tools[t] for t in spec.tools if t in tools],
            mcp_servers=[servers[t] for t in spec.tools if t in servers],
        )
    # Handoffs are attached once every agent exists, so cycles need no special case.
    for name, spec in config.agents.items():
        agents[name].handoffs = [
            handoff(agents[h.agent], tool_name_override=h.tool_name,
                    tool_description_override=h.description, input_filter=history_filter(h))
            for h in spec.handoffs
        ]
        agents[name].input_guardrails, agents[name].output_guardrails = sdk_guardrails(
            config, name, _classifier_models(factory, provider, wrap_model))
    return AgentGraph(config=config, provider=provider, agents=agents,
                      clients=factory.owned_clients(), mcp=pool, owns_mcp=mcp_pool is None,
                      telemetry=install_telemetry(config))


def standalone_model(config: Config, resolved: ResolvedModel, *,
                     http_client: DefaultAsyncHttpxClient | None = None,
                     ) -> tuple[Model, tuple[AsyncOpenAI, ...]]:
    """One model outside the graph (the judge), built as an agent's is; and the API clients
    its owner closes (none on a caller's HTTP client)."""
    factory = _ModelFactory(config, http_client)
    return factory.model("", resolved), factory.owned_clients()
