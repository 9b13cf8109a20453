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

from .document import Document
from .errors import Problem
from .schema import did_you_mean

Provider = Literal["auto", "openai", "offline"]
NextTurn = Literal["last_agent", "entry"]
Backend = Literal["sqlite", "memory"]

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
class AgentConfig:
    """One agent of the graph."""

    name: str
    instructions: str
    handoffs: tuple[HandoffConfig, ...] = ()
    handoff_description: str | None = None
    language: str | None = None
    model: str | None = None
    model_settings: ModelSettingsConfig = field(default_factory=ModelSettingsConfig)


@dataclass(frozen=True)
class ModelConfig:
    """The default model provider, model name and settings."""

    provider: Provider = "auto"
    name: str = DEFAULT_MODEL
    settings: ModelSettingsConfig = field(default_factory=ModelSettingsConfig)


@dataclass(frozen=True)
class SessionConfig:
    """Where conversations are kept."""

    backend: Backend = "sqlite"
    path: Path | None = None
    history_limit: int | None = None

    def database_path(self) -> Path:
        """The SQLite file: the configured one, or the per-user default."""
        if self.path is not None:
            return self.path
        data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(data_home) / "routing-runner" / "sessions.db"


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

    @property
    def title(self) -> str:
        """The bot's name, or the config file's stem."""
        return self.name or self.source.stem

    def edges(self) -> list[tuple[str, str]]:
        """Every declared handoff edge as (from, to)."""
        return [(a.name, h.agent) for a in self.agents.values() for h in a.handoffs]

    def model_name_for(self, agent: str) -> str:
        """The model name `agent` runs on."""
        return self.agents[agent].model or self.model.name

    def settings_for(self, agent: str) -> ModelSettingsConfig:
        """The default settings overridden by the agent's own."""
        return self.model.settings.overridden_by(self.agents[agent].model_settings)


def _notes_free(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if not str(k).startswith("x-")}


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
            model=spec.get("model"),
            model_settings=ModelSettingsConfig.from_dict(spec.get("model_settings")),
        )

    entry = raw["entry"]
    if entry not in agents_raw:
        problems.append(document.problem(
            ("entry",), f"{entry!r} is not an agent{did_you_mean(entry, agents_raw)}"))
    _check_name_collisions(document, list(agents_raw), problems)
    _check_same_language_targets(document, agents, problems)
    if entry in agents_raw:
        _warn_unreachable(document, entry, agents, problems)

    if any(p.severity == "error" for p in problems):
        return None, problems

    model_raw = raw.get("model", {})
    session_raw = raw.get("session", {})
    session_path = session_raw.get("path")
    config = Config(
        source=path,
        entry=entry,
        agents=MappingProxyType(agents),
        name=raw.get("name"),
        model=ModelConfig(
            provider=model_raw.get("provider", "auto"),
            name=model_raw.get("name", DEFAULT_MODEL),
            settings=ModelSettingsConfig.from_dict(model_raw.get("settings")),
        ),
        session=SessionConfig(
            backend=session_raw.get("backend", "sqlite"),
            path=(base / Path(session_path).expanduser()) if session_path else None,
            history_limit=session_raw.get("history_limit"),
        ),
        next_turn=raw.get("routing", {}).get("next_turn", "last_agent"),
        max_turns=raw.get("run", {}).get("max_turns", DEFAULT_MAX_TURNS),
        workflow_name=raw.get("run", {}).get("workflow_name"),
    )
    return config, problems


def _read_instructions(document: Document, base: Path, relative: str,
                       where: tuple[str, ...], problems: list[Problem]) -> str | None:
    candidate = (base / relative).resolve()
    if Path(relative).is_absolute() or not candidate.is_relative_to(base):
        problems.append(document.problem(
            where, f"{relative!r} is outside the config's folder; instruction files must "
                   "live in the config's folder or below it"))
        return None
    try:
        text = candidate.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(document.problem(where, f"file {relative!r} not found next to the config"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(document.problem(where, f"cannot read {relative!r}: {exc}"))
        return None
    if not text.strip():
        problems.append(document.problem(where, f"{relative!r} is empty"))
        return None
    return text


def _check_handoff_target(document: Document, agents: Mapping[str, Any], source: str,
                          target: str, where: tuple[str | int, ...],
                          problems: list[Problem]) -> None:
    if target not in agents:
        problems.append(document.problem(
            where, f"{target!r} is not an agent{did_you_mean(target, agents)}"))
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
