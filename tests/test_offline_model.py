"""The embedded offline model, through the real Agents SDK runner."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner

from routing_runner.config import load_config
from routing_runner.config.model import Config
from routing_runner.runtime.graph import AgentGraph, build_graph
from routing_runner.runtime.providers import resolve_provider

from .conftest import REPO


def _config() -> Config:
    return load_config(REPO / "configs" / "languages.yaml", env={}).config


def _offline(config: Config) -> AgentGraph:
    return build_graph(config, resolve_provider(config, {}))


def _triage() -> Agent[Any]:
    return _offline(_config()).entry


def _run(agent: Agent[Any], message: str) -> Any:
    return asyncio.run(Runner.run(agent, message, run_config=RunConfig(tracing_disabled=True)))


def test_triage_hands_off_through_a_real_handoff_tool_call() -> None:
    result = _run(_triage(), "¿Dónde está la estación de tren más cercana?")
    assert result.last_agent.name == "spanish"
    calls = [item.raw_item.name for item in result.new_items if item.type == "handoff_call_item"]
    assert calls == ["transfer_to_spanish"]
    assert "te respondo en español" in result.final_output


def test_the_same_conversation_always_gives_the_same_output() -> None:
    first = _run(_triage(), "Je voudrais réserver une table pour deux personnes.")
    second = _run(_triage(), "Je voudrais réserver une table pour deux personnes.")
    assert first.final_output == second.final_output
    assert [i.raw_item for i in first.new_items] == [i.raw_item for i in second.new_items]


def test_streamed_deltas_concatenate_to_the_non_streamed_reply() -> None:
    message = "I would like to know the opening hours of the museum."

    async def stream() -> tuple[list[str], Any]:
        result = Runner.run_streamed(_triage(), message,
                                     run_config=RunConfig(tracing_disabled=True))
        deltas = [e.data.delta async for e in result.stream_events()
                  if e.type == "raw_response_event"
                  and e.data.type == "response.output_text.delta"]
        return deltas, result.final_output

    deltas, final = asyncio.run(stream())
    assert len(deltas) > 5  # small pieces, not one blob
    assert "".join(deltas) == final == _run(_triage(), message).final_output


def test_a_language_agent_answers_a_message_in_its_own_language_itself() -> None:
    french = _offline(_config()).agents["french"]
    result = _run(french, "Bonjour, pouvez-vous m'aider avec ma commande ?")
    assert result.last_agent.name == "french"
    assert not [i for i in result.new_items if i.type == "handoff_call_item"]


def test_an_unconfigured_language_goes_back_to_triage_which_lists_the_languages() -> None:
    spanish = _offline(_config()).agents["spanish"]
    result = _run(spanish, "Guten Tag, ich habe eine Frage zu meiner Rechnung.")
    assert result.last_agent.name == "triage"
    assert "English (en), español (es), français (fr)" in result.final_output


def test_max_tokens_bounds_the_reply() -> None:
    config = _config()
    text = config.source.read_text(encoding="utf-8").replace(
        "temperature: 0.3", "temperature: 0.3\n    max_tokens: 5")
    path = REPO / "configs" / ".test-max-tokens.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        graph = _offline(load_config(path, env={}).config)
    finally:
        path.unlink()
    result = _run(graph.entry, "Hola, necesito ayuda con mi pedido por favor.")
    assert len(result.final_output.split()) == 5


@pytest.mark.parametrize(("message", "agent"), [
    ("Hola", "spanish"), ("hello", "english"), ("hi", "english"), ("bonjour", "french"),
    ("salut", "french"), ("merci", "french"), ("gracias", "spanish"), ("thanks", "english")])
def test_a_greeting_goes_to_the_agent_that_speaks_it(message: str, agent: str) -> None:
    assert _run(_triage(), message).last_agent.name == agent


@pytest.mark.parametrize(("message", "reply"), [
    ("ciao", "Qui nessuno parla la tua lingua, italiano (it)."),
    ("olá", "Aqui ninguém fala a sua língua, português (pt)."),
    ("hallo", "Hier spricht niemand Ihre Sprache, Deutsch (de).")])
def test_a_greeting_nobody_speaks_stays_with_triage_which_answers_in_it(message: str,
                                                                        reply: str) -> None:
    result = _run(_triage(), message)
    assert result.last_agent.name == "triage"
    assert reply in result.final_output
    assert "English (en), español (es), français (fr)" in result.final_output


def test_portuguese_is_kept_by_triage_not_sent_to_spanish() -> None:
    result = _run(_triage(), "Mas onde será que ele se escondeu?")
    assert result.last_agent.name == "triage"
    assert "Aqui ninguém fala a sua língua, português (pt). Posso ajudar em: English (en), " \
           "español (es), français (fr)." in result.final_output


def test_portuguese_goes_to_a_portuguese_agent_when_one_exists(tmp_path: Path) -> None:
    text = _config().source.read_text(encoding="utf-8").replace(
        "handoffs: [french, spanish, english]", "handoffs: [french, spanish, english, portuguese]"
    ) + "\n  portuguese:\n    language: pt\n    instructions: Answer in Portuguese.\n"
    path = tmp_path / "with-portuguese.yaml"
    path.write_text(text, encoding="utf-8")
    triage = _offline(load_config(path, env={}).config).entry
    assert _run(triage, "Mas onde será que ele se escondeu?").last_agent.name == "portuguese"
    assert _run(triage, "Olá, tudo bem?").last_agent.name == "portuguese"


def test_triage_says_in_plain_words_when_it_cannot_tell_the_language() -> None:
    result = _run(_triage(), "12345 ???")
    assert result.last_agent.name == "triage"
    assert "I could not tell which language you wrote in. I can help you in: English (en), " \
           "español (es), français (fr)." in result.final_output


def _loaded_after_preload(provider: str) -> str:
    script = ("import os; from routing_runner.config import load_config;"
              "from routing_runner.runtime.providers import resolve_provider;"
              "from routing_runner.runtime.offline.model import preload;"
              "from routing_runner.runtime.offline.language_id import loaded;"
              "c = load_config('configs/languages.yaml', os.environ).config;"
              "preload(c, [resolve_provider(c, os.environ)]); print(sorted(loaded()['full']))")
    env = {**os.environ, "ROUTING_RUNNER_PROVIDER": provider, "OPENAI_API_KEY": "sk-test"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True, timeout=300)
    return done.stdout.strip()


def test_preloading_before_forking_workers_builds_the_configured_languages() -> None:
    assert _loaded_after_preload("offline") == "['en', 'es', 'fr']"


def test_preloading_loads_nothing_when_no_agent_runs_offline() -> None:
    assert _loaded_after_preload("openai") == "[]"
