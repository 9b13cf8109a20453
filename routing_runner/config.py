"""Typed, frozen config objects, built from a schema-valid document with meaning checks.

The JSON Schema has already checked the shape; `build_config` checks what a schema cannot:
handoff targets that do not exist, a missing entry agent, names that collide, instruction files
outside the config's folder, agents nobody can reach.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from .document import (
    MAX_INSTRUCTIONS_BYTES,
    Document,
    MissingFile,
    PathKey,
    UnreadableFile,
    read_text_file,
)
from .errors import Problem
from .schema import did_you_mean

Provider = Literal["auto", "openai", "openai-compatible", "litellm", "offline"]
Api = Literal["responses", "chat_completions"]
NextTurn = Literal["last_agent", "entry"]
Backend = Literal["sqlite", "memory", "sqlalchemy", "redis"]

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
class AgentConfig:
    """One agent of the graph."""

    name: str
    instructions: str
    handoffs: tuple[HandoffConfig, ...] = ()
    handoff_description: str | None = None
    language: str | None = None
    model: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    model_settings: ModelSettingsConfig = field(default_factory=ModelSettingsConfig)


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
    history_limit: int | None = None
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


def _notes_free(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if not str(k).startswith("x-")}


def _model_override(raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if raw is None:
        return {}
    return {"name": raw} if isinstance(raw, str) else _notes_free(raw)


def build_config(document: Document, path: Path) -> tuple[Config | None, list[Problem]]:
    """Typed config from a schema-valid document, plus every meaning problem and warning."""
    raw: dict[str, Any] = document.data
    base = path.resolve().parent
    problems: list[Problem] = []
    agents_raw = _notes_free(raw["agents"])

    agents: dict[str, AgentConfig] = {}
    for name, spec in agents_raw.items():
        where = ("agents", name)
        instructions = spec.get("instructions")
        if instructions is None:
            instructions = _read_instructions(document, base, spec["instructions_file"],
                                              (*where, "instructions_file"), problems)
        handoffs = []
        for i, item in enumerate(spec.get("handoffs", [])):
            item = {"agent": item} if isinstance(item, str) else item
            handoffs.append(HandoffConfig(
                agent=item["agent"],
                tool_name=item.get("tool_name") or handoff_tool_name(item["agent"]),
                description=item.get("description"),
            ))
            _check_handoff_target(document, agents_raw, name, item["agent"],
                                  (*where, "handoffs", i), problems)
        _check_handoff_list(document, name, handoffs, (*where, "handoffs"), problems)
        agents[name] = AgentConfig(
            name=name,
            instructions=instructions or "",
            handoffs=tuple(handoffs),
            handoff_description=spec.get("handoff_description"),
            language=spec.get("language"),
            model=MappingProxyType(_model_override(spec.get("model"))),
            model_settings=ModelSettingsConfig.from_dict(spec.get("model_settings")),
        )

    session = replace(_session_config(document, raw.get("session", {}), base, problems),
                      owner=raw.get("name") or path.stem)

    entry = raw["entry"]
    if entry not in agents_raw:
        problems.append(document.problem(
            ("entry",), f"{document.quote(('entry',), entry)} is not an agent"
                        f"{did_you_mean(entry, agents_raw)}"))
    _check_name_collisions(document, list(agents_raw), problems)
    _check_same_language_targets(document, agents, problems)
    if entry in agents_raw:
        _warn_unreachable(document, entry, agents, problems)

    _check_base_urls(document, raw, problems)
    if any(p.severity == "error" for p in problems):
        return None, problems

    model_raw = raw.get("model", {})
    config = Config(
        source=path,
        entry=entry,
        agents=MappingProxyType(agents),
        name=raw.get("name"),
        model=ModelConfig(
            spec=ModelSpec().overridden_by(model_raw),
            settings=ModelSettingsConfig.from_dict(model_raw.get("settings")),
            timeout=model_raw.get("timeout", 60.0),
            retry=RetryConfig(**_notes_free(model_raw.get("retry", {}))),
        ),
        session=session,
        next_turn=raw.get("routing", {}).get("next_turn", "last_agent"),
        max_turns=raw.get("run", {}).get("max_turns", DEFAULT_MAX_TURNS),
        workflow_name=raw.get("run", {}).get("workflow_name"),
        tracing=raw.get("run", {}).get("tracing", False),
    )
    return config, problems


def _check_base_urls(document: Document, raw: Mapping[str, Any],
                     problems: list[Problem]) -> None:
    default = ModelSpec().overridden_by(raw.get("model", {}))
    places: list[tuple[tuple[str, ...], ModelSpec]] = [(("model",), default)]
    for name, spec in _notes_free(raw["agents"]).items():
        override = _model_override(spec.get("model"))
        if override:
            places.append((("agents", name, "model"), default.overridden_by(override)))
    for where, model in places:
        if model.provider == "openai-compatible" and not model.base_url:
            problems.append(document.problem(
                where, "provider 'openai-compatible' needs a base_url (the server's /v1 URL, "
                       "e.g. http://127.0.0.1:11434/v1 for Ollama)"))


def _session_config(document: Document, raw: Mapping[str, Any], base: Path,
                    problems: list[Problem]) -> SessionConfig:
    """The typed `session` block; keys meant for another backend are errors."""
    backend = raw.get("backend", "sqlite")
    for key, backends in SESSION_KEYS_FOR.items():
        if key in raw and backend not in backends:
            problems.append(document.problem(
                ("session", key), f"applies only to backend {' or '.join(backends)}, "
                                  f"not {backend!r}", key=True))
    path = raw.get("path")
    if path is not None and not check_path(document, ("session", "path"), path, problems):
        path = None
    ttl = raw.get("ttl")
    encryption_raw = raw.get("encryption")
    encryption = None if encryption_raw is None else EncryptionConfig(
        ttl=duration_seconds(encryption_raw["ttl"]),
        key_env=encryption_raw.get("key_env", DEFAULT_KEY_ENV))
    return SessionConfig(
        backend=backend,
        path=(base / Path(path).expanduser()) if path else None,
        history_limit=raw.get("history_limit"),
        url_env=raw.get("url_env"),
        table_prefix=raw.get("table_prefix"),
        key_prefix=raw.get("key_prefix", DEFAULT_KEY_PREFIX),
        ttl=None if ttl is None else duration_seconds(ttl),
        encryption=encryption,
    )


def check_path(document: Document, where: PathKey, value: str,
               problems: list[Problem]) -> bool:
    """Whether `value` can name a file; a problem at `where` when it cannot.

    The one check of every path a config names (`instructions_file`, `session.path`): a NUL
    character, which YAML's "\\0" escape can write, would make every file call raise.
    """
    if "\0" in value:
        problems.append(document.problem(
            where, "a path cannot contain a NUL character (is there a stray \\0 escape?)"))
        return False
    return True


def _read_instructions(document: Document, base: Path, relative: str,
                       where: tuple[str, ...], problems: list[Problem]) -> str | None:
    if not check_path(document, where, relative, problems):
        return None
    shown = document.quote(where, relative)
    candidate = (base / relative).resolve()
    if Path(relative).is_absolute() or not candidate.is_relative_to(base):
        problems.append(document.problem(
            where, f"{shown} is outside the config's folder; instruction files must "
                   "live in the config's folder or below it"))
        return None
    try:
        text = read_text_file(candidate, MAX_INSTRUCTIONS_BYTES)
    except MissingFile:
        problems.append(document.problem(where, f"file {shown} not found next to the config"))
        return None
    except UnreadableFile as exc:
        problems.append(document.problem(where, f"file {shown} {exc}"))
        return None
    if not text.strip():
        problems.append(document.problem(where, f"{shown} is empty"))
        return None
    return text


def _check_handoff_target(document: Document, agents: Mapping[str, Any], source: str,
                          target: str, where: tuple[str | int, ...],
                          problems: list[Problem]) -> None:
    if target not in agents:
        shown = document.quote((*where, "agent") if (*where, "agent") in document.values
                               else where, target)
        problems.append(document.problem(
            where, f"{shown} is not an agent{did_you_mean(target, agents)}"))
    elif target == source:
        problems.append(document.problem(where, f"{source!r} hands off to itself",
                                         severity="warning"))


def _check_handoff_list(document: Document, source: str, handoffs: list[HandoffConfig],
                        where: tuple[str, ...], problems: list[Problem]) -> None:
    seen_agents: dict[str, int] = {}
    seen_tools: dict[str, int] = {}
    for i, handoff in enumerate(handoffs):
        if handoff.agent in seen_agents:
            problems.append(document.problem(
                (*where, i), f"{handoff.agent!r} is listed twice "
                             f"(first as handoffs[{seen_agents[handoff.agent]}])"))
            continue
        if handoff.tool_name in seen_tools:
            problems.append(document.problem(
                (*where, i), f"tool name {handoff.tool_name!r} is already used by "
                             f"handoffs[{seen_tools[handoff.tool_name]}] of {source!r}"))
        seen_agents[handoff.agent] = i
        seen_tools.setdefault(handoff.tool_name, i)


def _check_name_collisions(document: Document, names: list[str],
                           problems: list[Problem]) -> None:
    by_tool: dict[str, str] = {}
    for name in names:
        tool = handoff_tool_name(name)
        if tool in by_tool:
            problems.append(document.problem(
                ("agents", name),
                f"agent names {by_tool[tool]!r} and {name!r} differ only in case or punctuation; "
                f"both would be handed off to as {tool!r} - rename one", key=True))
        else:
            by_tool[tool] = name


def _check_same_language_targets(document: Document, agents: Mapping[str, AgentConfig],
                                 problems: list[Problem]) -> None:
    for agent in agents.values():
        by_language: dict[str, str] = {}
        for i, handoff in enumerate(agent.handoffs):
            target = agents.get(handoff.agent)
            if target is None or target.language is None:
                continue
            language = target.language.lower()
            if language in by_language:
                problems.append(document.problem(
                    ("agents", agent.name, "handoffs", i),
                    f"{by_language[language]!r} and {handoff.agent!r} both speak {language!r}; "
                    "routing by language cannot tell them apart", severity="warning"))
            else:
                by_language[language] = handoff.agent


def _warn_unreachable(document: Document, entry: str, agents: Mapping[str, AgentConfig],
                      problems: list[Problem]) -> None:
    reached = {entry}
    frontier = [entry]
    while frontier:
        for handoff in agents[frontier.pop()].handoffs:
            if handoff.agent in agents and handoff.agent not in reached:
                reached.add(handoff.agent)
                frontier.append(handoff.agent)
    for name in agents:
        if name not in reached:
            problems.append(document.problem(
                ("agents", name), f"agent {name!r} cannot be reached from entry {entry!r} "
                                  "(no handoff path leads to it)", key=True, severity="warning"))
