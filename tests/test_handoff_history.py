"""Handoff history policies (`history`, `n`, `remove_tools`): what the receiving agent sees,
through transcripts on the offline model and over the wire; the stored conversation stays
whole; `validate`'s handoff lints."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Text, ToolCall, WireServer

from .conftest import write_config

pytestmark = pytest.mark.usefixtures("api_key")

AGENTS = """\
agents:
  triage:
    instructions: Route by language.
    handoff_description: Routes by language.
    handoffs: [french, spanish]
  french:
    language: fr
    instructions: Réponds en français.
    handoff_description: Speaks French.
    handoffs: [spanish, triage]
  spanish:
    language: es
    instructions: Responde en español.
    handoff_description: Speaks Spanish.
    handoffs: [french, triage]
"""


def _transcript(name: str, policy: str, *turns: tuple[str, str]) -> str:
    handoffs = f"[{{agent: french, {policy}}}, triage]"
    lines = [f"name: {name}", f"config: {{agents: {{spanish: {{handoffs: {handoffs}}}}}}}",
             "turns:"]
    for user, expect in turns:
        lines += [f"  - user: {user}", f"    expect: {expect}"]
    return "\n".join(lines) + "\n"


HOLA = ("Hola, ¿cómo estás?", "{route: [triage, spanish]}")
GRACIAS = ("Gracias, estoy muy bien hoy", "{route: [spanish]}")
BONJOUR = "Bonjour, comment allez-vous ?"
MERCI = ("Merci beaucoup pour votre aide", "{route: [french], contains: message n° 4}")
TRANSCRIPTS = "---\n".join([
    _transcript("full shows the count", "history: full", HOLA, GRACIAS,
                (BONJOUR, "{route: [spanish, french], contains: message n° 3}")),
    # The next turn starts at french with the whole stored conversation: nothing was lost.
    _transcript("none is the first message", "history: none", HOLA, GRACIAS,
                (BONJOUR, "{route: [spanish, french], contains: C'est le premier message}"),
                MERCI),
    _transcript("last_n keeps the last turns", "history: last_n, n: 2", HOLA, GRACIAS,
                (BONJOUR, "{route: [spanish, french], contains: 'message n° 2 de notre "
                          "conversation ; le premier était : « Gracias'}"), MERCI),
    _transcript("nest summarises", "history: nest", HOLA, GRACIAS,
                (BONJOUR, "{route: [spanish, french], contains: 'message n° 3 de notre "
                          "conversation ; le premier était : « Hola'}"), MERCI),
    _transcript("none without tools", "history: none, remove_tools: true", HOLA, GRACIAS,
                (BONJOUR, "{route: [spanish, french], contains: C'est le premier message}"),
                MERCI),
])


def test_history_policies_through_transcripts(cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, "version: 1\nentry: triage\nmodel: {provider: offline}\n"
                                    + AGENTS)
    (tmp_path / "policies.yaml").write_text(TRANSCRIPTS, encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(tmp_path / "policies.yaml"),
                              "--json", str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    failures = [(c["name"], t["failures"], t["observed"]["text"])
                for c in report["conversations"] for t in c["turns"] if t["failures"]]
    assert failures == []
    assert result.exit_code == 0, result.output
    totals = {key: report["totals"][key] for key in ("conversations", "passed", "turns")}
    assert totals == {"conversations": 5, "passed": 5, "turns": 19}


# --- over the wire: exactly what the receiving agent's model was sent ---------------------------

def _wire_config(folder: Path, server: WireServer, policy: str) -> Path:
    agents = AGENTS.replace("handoffs: [french, triage]",
                            f"handoffs: [{{agent: french, {policy}}}, triage]")
    return write_config(folder, (
        f"version: 1\nentry: triage\nmodel:\n  provider: openai\n  name: gpt-test\n"
        f"  base_url: {server.base_url}\nsession:\n  path: {folder / 'sessions.db'}\n{agents}"))


def _kinds(request_input: list[dict[str, Any]]) -> list[str]:
    return [f"{i.get('type', 'message')}:{i.get('role') or i.get('name', '')}"
            for i in request_input]


def _stored_kinds(folder: Path) -> list[str]:
    with sqlite3.connect(folder / "sessions.db") as conn:
        items = [json.loads(row[0]) for row in conn.execute(
            "SELECT message_data FROM agent_messages ORDER BY id")]
    return _kinds(items)


def _three_turns(cli: CliRunner, folder: Path, server: WireServer, policy: str) -> None:
    server.script(ToolCall("transfer_to_spanish"), Text("¡Hola!"),
                  ToolCall("transfer_to_french"), Text("Bonjour !"), Text("De rien."))
    result = cli.invoke(app, ["chat", str(_wire_config(folder, server, policy)),
                              "--session-id", "wire", "-m", "Hola", "-m", "Bonjour", "-m",
                              "Merci"])
    assert result.exit_code == 0, result.output


WHOLE = ["message:user", "function_call:transfer_to_spanish", "function_call_output:",
         "message:assistant", "message:user", "function_call:transfer_to_french",
         "function_call_output:", "message:assistant", "message:user", "message:assistant"]


@pytest.mark.parametrize(("policy", "french_sees", "first"), [
    ("history: full", WHOLE[:7], "Hola"),
    ("history: none", ["message:user", "function_call:transfer_to_french",
                       "function_call_output:"], "Bonjour"),
    ("remove_tools: true", ["message:user", "message:assistant", "message:user"], "Hola"),
    ("history: last_n, n: 1, remove_tools: true", ["message:user"], "Bonjour"),
])
def test_the_receiving_agent_sees_what_its_policy_says_and_the_store_keeps_all(
        cli: CliRunner, tmp_path: Path, server: WireServer, policy: str,
        french_sees: list[str], first: str) -> None:
    _three_turns(cli, tmp_path, server, policy)
    requests = [r.body["input"] for r in server.requests]
    assert len(requests) == 5
    assert _kinds(requests[3]) == french_sees
    assert requests[3][0]["content"] == first
    # The turn after the handoff, and the store, have the whole conversation.
    assert _kinds(requests[4]) == WHOLE[:9]
    assert _stored_kinds(tmp_path) == WHOLE


def test_nested_history_is_one_summary_message(cli: CliRunner, tmp_path: Path,
                                               server: WireServer) -> None:
    _three_turns(cli, tmp_path, server, "history: nest, remove_tools: true")
    french = server.requests[3].body["input"]
    assert _kinds(french) == ["message:assistant"]
    summary = french[0]["content"]
    assert "<CONVERSATION HISTORY>" in summary and "user: Bonjour" in summary
    assert "transfer_to" not in summary
    assert _stored_kinds(tmp_path) == WHOLE


# --- validate's lints -----------------------------------------------------------------------------

def test_validate_warns_of_undescribed_targets_and_cycles_nobody_answers(
        cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
version: 1
entry: front
agents:
  front:
    instructions: Route.
    handoffs: [desk, french]
  desk:
    instructions: Route again.
    handoff_description: Another router.
    handoffs: [front]
  french:
    language: fr
    instructions: Réponds.
""")
    result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"{config}:4:3: agents.front: warning: 'front' has no handoff_description: the model "
        "handing off to it (from desk) knows it by its name only",
        f"{config}:4:3: agents.front: warning: handoff cycle front -> desk -> front has no agent "
        "with a language to answer: the model may pass the conversation round it until "
        "run.max_turns",
        f"{config}:11:3: agents.french: warning: 'french' has no handoff_description: the model "
        "handing off to it (from front) knows it by its name only",
    ]
    assert result.stdout.startswith(f"{config}: valid - 3 agents, 3 handoffs")
