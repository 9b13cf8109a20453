"""Tokens and cost per agent per turn: over the loopback server (which reports usage), in the
replay's JSON and JUnit reports, priced by the config's `prices`, and as `expect` budgets."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Text, ToolCall, WireServer

from .conftest import write_config

pytestmark = pytest.mark.usefixtures("api_key")

PRICES = {"input": 2.0, "cached_input": 0.5, "output": 8.0}


def _config(folder: Path, server: WireServer, provider: str = "openai") -> Path:
    api = ", api: chat_completions" if provider == "openai-compatible" else ""
    return write_config(folder, f"""\
version: 1
entry: triage
model: {{provider: {provider}, name: gpt-test, base_url: "{server.base_url}"{api}}}
prices:
  gpt-test: {json.dumps(PRICES)}
session: {{path: {folder / 'sessions.db'}}}
agents:
  triage:
    instructions: Route.
    handoffs: [spanish]
  spanish:
    instructions: Responde en español.
    handoff_description: Speaks Spanish.
""")


TRANSCRIPT = """\
name: Priced
turns:
  - user: Hola
    expect: {route: [triage, spanish], max_tokens: 100000, max_cost: 1.0}
  - user: ¿Y el pedido?
    expect: {agent: spanish, max_tokens: 10}
"""


def _cost(usage: dict[str, int]) -> float:
    fresh = usage["input_tokens"] - usage["cached_tokens"]
    return (fresh * PRICES["input"] + usage["cached_tokens"] * PRICES["cached_input"]
            + usage["output_tokens"] * PRICES["output"]) / 1_000_000


def _tokens(usage: dict[str, int], calls: int = 1) -> dict[str, int]:
    return {"input": usage["input_tokens"], "cached": usage["cached_tokens"],
            "output": usage["output_tokens"], "reasoning": usage["reasoning_tokens"],
            "calls": calls}


@pytest.mark.parametrize("provider", ["openai", "openai-compatible"])
def test_per_agent_tokens_and_cost_are_what_the_server_reported(
        cli: CliRunner, tmp_path: Path, server: WireServer, provider: str) -> None:
    server.script(ToolCall("transfer_to_spanish"), Text("¡Hola! ¿En qué puedo ayudarte?"),
                  Text("Tu pedido llega mañana por la tarde."))
    (tmp_path / "t.yaml").write_text(TRANSCRIPT, encoding="utf-8")
    config = _config(tmp_path, server, provider)
    result = cli.invoke(app, ["replay", str(config), str(tmp_path / "t.yaml"),
                              "--json", str(tmp_path / "r.json"),
                              "--junit", str(tmp_path / "r.xml")])
    assert result.exit_code == 1, result.output  # the second turn's budget
    routing, hello, order = server.reported_usage
    assert routing["cached_tokens"] > 0 and order["input_tokens"] > hello["input_tokens"]
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    first, second = report["conversations"][0]["turns"]

    assert first["observed"]["usage"] == {
        "agents": {"triage": {**_tokens(routing), "cost": round(_cost(routing), 8)},
                   "spanish": {**_tokens(hello), "cost": round(_cost(hello), 8)}},
        "total": {"input": routing["input_tokens"] + hello["input_tokens"],
                  "cached": routing["cached_tokens"] + hello["cached_tokens"],
                  "output": routing["output_tokens"] + hello["output_tokens"],
                  "reasoning": 0, "calls": 2,
                  "cost": round(_cost(routing) + _cost(hello), 8)}}
    assert first["failures"] == []
    total = order["input_tokens"] + order["output_tokens"]
    assert second["failures"] == [{"check": "max_tokens", "expected": "at most 10",
                                   "got": str(total)}]

    spanish = {k: hello[k] + order[k] for k in hello}
    conversation = report["conversations"][0]["usage"]
    assert conversation["agents"] == {"triage": _tokens(routing), "spanish": _tokens(spanish, 2)}
    assert conversation["total"]["cost"] == round(_cost(routing) + _cost(hello) + _cost(order), 8)
    assert report["totals"]["usage"] == conversation

    properties = {p.get("name"): p.get("value")
                  for p in ET.parse(tmp_path / "r.xml").getroot().iter("property")}
    assert properties["tokens_input"] == str(sum(u["input_tokens"]
                                                 for u in server.reported_usage))
    assert properties["tokens_output"] == str(sum(u["output_tokens"]
                                                  for u in server.reported_usage))
    assert properties["model_calls"] == "3"
    assert float(properties["cost"]) == pytest.approx(
        _cost(routing) + _cost(hello) + _cost(order))


def test_the_offline_model_counts_words_and_a_cost_budget_needs_prices(
        cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
version: 1
entry: spanish
model: {provider: offline}
agents:
  spanish: {language: es, instructions: Responde.}
""")
    (tmp_path / "t.yaml").write_text(
        "name: Words\nturns:\n  - user: Hola, ¿cómo estás?\n"
        "    expect: {max_tokens: 5, max_cost: 0.01}\n", encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(tmp_path / "t.yaml"), "--json", "-"])
    assert result.exit_code == 1
    turn = json.loads(result.stdout)["conversations"][0]["turns"][0]
    usage = turn["observed"]["usage"]["total"]
    assert usage["words"] is True and usage["cost"] is None
    assert [f["check"] for f in turn["failures"]] == ["max_tokens", "max_cost"]
    assert turn["failures"][0]["got"] == f"{usage['input'] + usage['output']} words (offline model)"
    assert turn["failures"][1]["got"] == "no cost: the offline model counts words, not tokens"


def test_chat_usage_lines_and_the_usage_command(cli: CliRunner, tmp_path: Path,
                                                server: WireServer) -> None:
    server.script(ToolCall("transfer_to_spanish"), Text("¡Hola!"), Text("Mañana."))
    result = cli.invoke(app, ["chat", str(_config(tmp_path, server)), "--usage",
                              "-m", "Hola", "-m", "¿Y el pedido?", "-m", "/usage"])
    assert result.exit_code == 0, result.output
    routing, hello, order = server.reported_usage

    def line(*calls: dict[str, int]) -> str:
        fresh = {k: sum(c[k] for c in calls) for k in calls[0]}
        return (f"{fresh['input_tokens'] + fresh['output_tokens']} tokens: "
                f"{fresh['input_tokens']} in ({fresh['cached_tokens']} cached), "
                f"{fresh['output_tokens']} out (0 reasoning)")

    lines = result.stdout.splitlines()
    first_cost = _cost(routing) + _cost(hello)
    assert lines[3] == (f"{line(routing, hello)} - triage {routing['input_tokens'] + 1}, "
                        f"spanish {hello['input_tokens'] + hello['output_tokens']} - "
                        f"${first_cost:.6f}")
    assert lines[6] == f"{line(order)} - ${_cost(order):.6f}"
    total = first_cost + _cost(order)
    assert lines[7:] == [
        f"2 turns in this chat: {line(routing, hello, order)} - triage "
        f"{routing['input_tokens'] + 1}, spanish "
        f"{sum(u['input_tokens'] + u['output_tokens'] for u in (hello, order))} - ${total:.6f}",
        f"  triage: {line(routing)} - ${_cost(routing):.6f}",
        f"  spanish: {line(hello, order)} - ${_cost(hello) + _cost(order):.6f}",
    ]
