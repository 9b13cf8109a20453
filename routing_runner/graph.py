"""Typed config → a graph of Agents SDK agents, with their handoffs (cycles allowed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents import Agent, ModelSettings, RunConfig, handoff
from agents.models.interface import Model
from openai.types.shared import Reasoning

from .config import Config, ModelSettingsConfig
from .offline_model import AgentProfile, OfflineModel
from .providers import ResolvedProvider
from .window import history_window


@dataclass(frozen=True)
class AgentGraph:
    """The built agents by name, the entry agent, and the run settings shared by every turn."""

    config: Config
    provider: ResolvedProvider
    agents: dict[str, Agent[Any]]

    @property
    def entry(self) -> Agent[Any]:
        """The agent that receives a new conversation."""
        return self.agents[self.config.entry]

    def run_config(self) -> RunConfig:
        """RunConfig for one turn: tracing off (it would export to OpenAI) and the window."""
        limit = self.config.session.history_limit
        return RunConfig(
            tracing_disabled=True,
            workflow_name=self.config.workflow_name or self.config.title,
            session_input_callback=history_window(limit) if limit else None,
        )


def sdk_model_settings(settings: ModelSettingsConfig) -> ModelSettings:
    """The SDK's ModelSettings for our typed settings."""
    values = settings.as_dict()
    effort = values.pop("reasoning_effort", None)
    seed = values.pop("seed", None)
    return ModelSettings(
        **values,
        reasoning=Reasoning(effort=effort) if effort else None,
        extra_args={"seed": seed} if seed is not None else None,
    )


def build_graph(config: Config, provider: ResolvedProvider) -> AgentGraph:
    """Every agent of `config`, wired with its handoffs, on the resolved provider."""
    profiles = {name: AgentProfile(name, spec.language) for name, spec in config.agents.items()}
    agents: dict[str, Agent[Any]] = {}
    for name, spec in config.agents.items():
        model: str | Model = (
            OfflineModel(profiles[name], profiles) if provider.kind == "offline"
            else config.model_name_for(name)
        )
        agents[name] = Agent(
            name=name,
            instructions=spec.instructions,
            handoff_description=spec.handoff_description,
            model=model,
            model_settings=sdk_model_settings(config.settings_for(name)),
        )
    # Handoffs are attached once every agent exists, so cycles need no special case.
    for name, spec in config.agents.items():
        agents[name].handoffs = [
            handoff(agents[h.agent], tool_name_override=h.tool_name,
                    tool_description_override=h.description)
            for h in spec.handoffs
        ]
    return AgentGraph(config=config, provider=provider, agents=agents)
