"""Building the typed config from a schema-valid document, with the meaning checks.

The JSON Schema has already checked the shape; `build_config` checks what a schema cannot:
handoff targets that do not exist, a missing entry agent, names that collide, instruction files
outside the config's folder, agents nobody can reach.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from routing_runner.errors import Problem
from routing_runner.wording import did_you_mean

from .document import Document, PathKey
from .files import read_beside
from .guardrails import check_guardrail_lists, guardrails_config
from .handoff_checks import check_history_policy
from .model import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_KEY_ENV,
    DEFAULT_KEY_PREFIX,
    DEFAULT_MAX_TURNS,
    SESSION_KEYS_FOR,
    AgentConfig,
    Config,
    EncryptionConfig,
    HandoffConfig,
    ModelConfig,
    ModelSettingsConfig,
    ModelSpec,
    Price,
    RetryConfig,
    SessionConfig,
    TelemetryConfig,
    duration_seconds,
    handoff_tool_name,
)
from .output_schema import output_schema
from .placeholders import check_agents
from .serve import ServeConfig
from .tools import ToolConfig, build_tools, check_agent_tools, python_path


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
    tools = build_tools(document, base, problems)
    folders = python_path(document, base, problems)

    agents = {name: _agent_config(document, base, agents_raw, name, spec, problems)
              for name, spec in agents_raw.items()}
    _check_tool_lists(document, raw, agents, tools, problems)

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
    context = _notes_free(raw.get("context", {}))
    problems += check_agents(document, agents_raw,
                             {n: a.instructions for n, a in agents.items()}, context)
    guardrails = guardrails_config(document, raw)
    problems += check_guardrail_lists(document, raw, guardrails)
    if any(p.severity == "error" for p in problems):
        return None, problems

    config = Config(
        source=path,
        entry=entry,
        agents=MappingProxyType(agents),
        name=raw.get("name"),
        model=_model_config(raw.get("model", {})),
        session=session,
        next_turn=raw.get("routing", {}).get("next_turn", "last_agent"),
        max_turns=raw.get("run", {}).get("max_turns", DEFAULT_MAX_TURNS),
        workflow_name=raw.get("run", {}).get("workflow_name"),
        tracing=raw.get("run", {}).get("tracing", False),
        serve=ServeConfig.from_dict(raw.get("serve", {})),
        context=MappingProxyType(context),
        guardrails=MappingProxyType(guardrails),
        prices=MappingProxyType({name: Price(**_notes_free(price)) for name, price
                                 in _notes_free(raw.get("prices", {})).items()}),
        judge=ModelSpec().overridden_by(raw["judge"]) if "judge" in raw else None,
        tools=MappingProxyType(tools),
        python_path=folders,
        telemetry=_telemetry(raw.get("run", {}).get("telemetry")),
    )
    return config, problems


def _model_config(model_raw: Mapping[str, Any]) -> ModelConfig:
    return ModelConfig(
        spec=ModelSpec().overridden_by(model_raw),
        settings=ModelSettingsConfig.from_dict(model_raw.get("settings")),
        timeout=model_raw.get("timeout", 60.0),
        retry=RetryConfig(**_notes_free(model_raw.get("retry", {}))),
    )


def _telemetry(raw: Mapping[str, Any] | None) -> TelemetryConfig | None:
    return None if raw is None else TelemetryConfig(**_notes_free(raw))


def _agent_config(document: Document, base: Path, agents_raw: Mapping[str, Any], name: str,
                  spec: Mapping[str, Any], problems: list[Problem]) -> AgentConfig:
    """One agent's typed config; its problems are added to `problems`."""
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
            history=item.get("history", "full"),
            n=item.get("n"),
            remove_tools=item.get("remove_tools", False),
        ))
        problems += check_history_policy(document, item, (*where, "handoffs", i))
        _check_handoff_target(document, agents_raw, name, item["agent"],
                              (*where, "handoffs", i), problems)
    _check_handoff_list(document, name, handoffs, (*where, "handoffs"), problems)
    return AgentConfig(
        name=name,
        instructions=instructions or "",
        handoffs=tuple(handoffs),
        handoff_description=spec.get("handoff_description"),
        language=spec.get("language"),
        model=MappingProxyType(_model_override(spec.get("model"))),
        model_settings=ModelSettingsConfig.from_dict(spec.get("model_settings")),
        output_schema=output_schema(document, base, spec, where, problems),
        input_guardrails=tuple(spec.get("input_guardrails", ())),
        output_guardrails=tuple(spec.get("output_guardrails", ())),
        tools=tuple(spec.get("tools", ())),
    )


def _check_tool_lists(document: Document, raw: Mapping[str, Any],
                      agents: Mapping[str, AgentConfig], tools: Mapping[str, ToolConfig],
                      problems: list[Problem]) -> None:
    default = ModelSpec().overridden_by(raw.get("model", {}))
    for agent in agents.values():
        spec = default.overridden_by(agent.model)
        off_responses = None
        if spec.provider not in ("auto", "openai"):
            off_responses = f"provider {spec.provider!r}"
        elif spec.resolved_api != "responses":
            off_responses = f"the {spec.resolved_api!r} API"
        check_agent_tools(document, agent.name, list(agent.tools), tools, off_responses,
                          problems)


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
    limit = raw.get("history_limit", DEFAULT_HISTORY_LIMIT)  # "all": no window
    encryption_raw = raw.get("encryption")
    encryption = None if encryption_raw is None else EncryptionConfig(
        ttl=duration_seconds(encryption_raw["ttl"]),
        key_env=encryption_raw.get("key_env", DEFAULT_KEY_ENV))
    return SessionConfig(
        backend=backend,
        path=(base / Path(path).expanduser()) if path else None,
        history_limit=None if limit == "all" else limit,
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
    read = read_beside(document, base, relative, where, problems,
                       "is outside the config's folder; instruction files must live in the "
                       "config's folder or below it")
    if read is None:
        return None
    if not read[0].strip():
        problems.append(document.problem(where, f"{document.quote(where, relative)} is empty"))
        return None
    return read[0]


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
