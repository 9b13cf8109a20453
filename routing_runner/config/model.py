"""Typed, frozen config objects: what a loaded config says (built by `config.build`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .guardrails import GuardrailConfig

from .serve import ServeConfig
from .tools import ToolConfig

Provider = Literal["auto", "openai", "openai-compatible", "litellm", "offline"]
Api = Literal["responses", "chat_completions"]
NextTurn = Literal["last_agent", "entry"]
Backend = Literal["sqlite", "memory", "sqlalchemy", "redis"]
HistoryPolicy = Literal["full", "nest", "last_n", "none"]

DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_MAX_TURNS = 10


def handoff_tool_name(agent_name: str) -> str:
    """The stable default tool name for handing off to `agent_name`: transfer_to_<snake name>."""
    return "transfer_to_" + re.sub(r"[^a-z0-9_]", "_", agent_name.lower())


@dataclass(frozen=True)
class ModelSettingsConfig:
    """Model settings a config may set; None means "provider default"."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    seed: int | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> ModelSettingsConfig:
        """Settings from a schema-valid mapping (x-* notes ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (raw or {}).items() if k in names})

    def overridden_by(self, other: ModelSettingsConfig) -> ModelSettingsConfig:
        """These settings with every value `other` sets taking precedence."""
        changes = {f.name: getattr(other, f.name) for f in fields(other)
                   if getattr(other, f.name) is not None}
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Only the settings that are set."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class HandoffConfig:
    """One handoff edge: to `agent`, through the tool `tool_name`."""

    agent: str
    tool_name: str
    description: str | None = None
    # What the receiving agent sees (runtime.handoff_history); `n` turns with last_n.
    history: HistoryPolicy = "full"
    n: int | None = None
    remove_tools: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """Where one agent's model lives: provider, model name and connection."""

    provider: Provider = "auto"
    name: str = DEFAULT_MODEL
    base_url: str | None = None
    api: Api | None = None
    api_key_env: str | None = None

    def overridden_by(self, raw: Mapping[str, Any]) -> ModelSpec:
        """This spec with the keys of an agent's `model` mapping taking precedence."""
        names = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in raw.items() if k in names})

    @property
    def resolved_api(self) -> Api:
        """The API spoken: configured, else what the provider's servers implement."""
        if self.api is not None:
            return self.api
        return "chat_completions" if self.provider == "openai-compatible" else "responses"


@dataclass(frozen=True)
class RetryConfig:
    """The one retry loop for transient model faults."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0


@dataclass(frozen=True)
class TelemetryConfig:
    """OpenTelemetry traces (`runtime.telemetry`); the endpoint comes from the environment."""

    otlp_endpoint_env: str | None = None
    service_name: str | None = None
    capture_content: bool = False


@dataclass(frozen=True)
class AgentConfig:
    """One agent of the graph."""

    name: str
    instructions: str
    handoffs: tuple[HandoffConfig, ...] = ()
    handoff_description: str | None = None
    language: str | None = None
    model: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    model_settings: ModelSettingsConfig = field(default_factory=ModelSettingsConfig)
    # The JSON Schema of the final answer (output_schema / output_schema_file); None: text.
    output_schema: Mapping[str, Any] | None = None
    # Names of the guardrails (Config.guardrails) on the message and on the final answer.
    input_guardrails: tuple[str, ...] = ()
    output_guardrails: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    """The default model (provider, name, connection), its settings, timeout and retries."""

    spec: ModelSpec = field(default_factory=ModelSpec)
    settings: ModelSettingsConfig = field(default_factory=ModelSettingsConfig)
    timeout: float = 60.0
    retry: RetryConfig = field(default_factory=RetryConfig)

    @property
    def provider(self) -> Provider:
        """The default provider."""
        return self.spec.provider

    @property
    def name(self) -> str:
        """The default model name."""
        return self.spec.name


DEFAULT_URL_ENV: Mapping[str, str] = MappingProxyType(
    {"sqlalchemy": "DATABASE_URL", "redis": "REDIS_URL"})
DEFAULT_KEY_PREFIX = "routing-runner"
# Items the model sees when the config sets no `history_limit`: every item sent costs the openai
# client about 1 ms of CPU per request, so without a window a long chat's turns grow unbounded.
DEFAULT_HISTORY_LIMIT = 200
DEFAULT_KEY_ENV = "ROUTING_RUNNER_SESSION_KEY"
# Which backends each backend-specific `session` key applies to; a key given for another
# backend is an error rather than silently ignored.
SESSION_KEYS_FOR: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "path": ("sqlite",),
    "table_prefix": ("sqlite", "sqlalchemy"),
    "url_env": ("sqlalchemy", "redis"),
    "key_prefix": ("redis",),
    "ttl": ("redis",),
})
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(value: int | str) -> int:
    """Seconds of a schema-valid duration: an integer, or a number with s, m, h, d or w."""
    if isinstance(value, int):
        return value
    return int(value[:-1]) * _DURATION_UNITS[value[-1]]


@dataclass(frozen=True)
class EncryptionConfig:
    """Session encryption: the variable holding the key, and how long items stay readable."""

    ttl: int
    key_env: str = DEFAULT_KEY_ENV


def data_folder() -> Path:
    """The per-user folder of routing-runner's files: $XDG_DATA_HOME/routing-runner."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "routing-runner"


@dataclass(frozen=True)
class SessionConfig:
    """Where conversations are kept.

    Secrets are never part of the config: `url_env` and `encryption.key_env` name environment
    variables that the store reads when it opens.
    """

    backend: Backend = "sqlite"
    path: Path | None = None
    history_limit: int | None = DEFAULT_HISTORY_LIMIT  # None: no window (`history_limit: all`)
    url_env: str | None = None
    table_prefix: str | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    ttl: int | None = None
    encryption: EncryptionConfig | None = None
    # The config whose conversations these are (its `name`, else its file name without
    # extension): a store shared by several configs shows each only its own conversations.
    owner: str | None = None

    def database_path(self) -> Path:
        """The SQLite file: the configured one, or the per-user default."""
        if self.path is not None:
            return self.path
        return data_folder() / "sessions.db"

    def url_variable(self) -> str:
        """The environment variable holding the server URL (sqlalchemy and redis)."""
        return self.url_env or DEFAULT_URL_ENV.get(self.backend, "DATABASE_URL")


@dataclass(frozen=True)
class Price:
    """What a model costs per million tokens; cached input costs `input` unless given."""

    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True)
class Config:
    """A loaded, validated routing-runner config."""

    source: Path
    entry: str
    agents: Mapping[str, AgentConfig]
    name: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    next_turn: NextTurn = "last_agent"
    max_turns: int = DEFAULT_MAX_TURNS
    workflow_name: str | None = None
    tracing: bool = False
    serve: ServeConfig = field(default_factory=ServeConfig)
    # The context keys instructions may use ({{ name }}), each with its default; None: every
    # conversation must give a value (chat --context, a transcript's `context:`).
    context: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    guardrails: Mapping[str, GuardrailConfig] = field(
        default_factory=lambda: MappingProxyType({}))
    # Per model name (runtime.usage prices each agent's tokens by its model).
    prices: Mapping[str, Price] = field(default_factory=lambda: MappingProxyType({}))
    judge: ModelSpec | None = None  # the model `expect.judge` asks
    tools: Mapping[str, ToolConfig] = field(default_factory=lambda: MappingProxyType({}))
    python_path: tuple[Path, ...] = ()
    # OpenTelemetry; None: only the standard OTEL_EXPORTER_OTLP_ENDPOINT turns it on.
    telemetry: TelemetryConfig | None = None

    @property
    def title(self) -> str:
        """The bot's name, or the config file's stem."""
        return self.name or self.source.stem

    def edges(self) -> list[tuple[str, str]]:
        """Every declared handoff edge as (from, to)."""
        return [(a.name, h.agent) for a in self.agents.values() for h in a.handoffs]

    def first_agent(self, last_agent: str | None) -> str:
        """The agent that answers the next message, given the one that spoke last."""
        if self.next_turn == "last_agent" and last_agent in self.agents:
            return str(last_agent)
        return self.entry

    def model_for(self, agent: str) -> ModelSpec:
        """The provider, model and connection `agent` runs on."""
        return self.model.spec.overridden_by(self.agents[agent].model)

    def settings_for(self, agent: str) -> ModelSettingsConfig:
        """The default settings overridden by the agent's own."""
        return self.model.settings.overridden_by(self.agents[agent].model_settings)


