"""`expect.no_announced_handoff` and `expect.history_seen` against the loopback server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Reply, Text, ToolCall, Turn, WireServer

from .conftest import write_config


def _answer(body: dict[str, Any]) -> Reply:
    """Triage hands French to french; french promises a transfer to Spanish and does not make
    it, unless the user asks in English, where it announces and hands off in one response."""
    instructions = body["instructions"]
    last = body["input"][-1]
    said = str(last.get("content", "")) if last.get("role") == "user" else ""
    if instructions.startswith("Route"):
        return ToolCall("transfer_to_french")
    if instructions.startswith("Réponds"):
        if "English" in said:
            return Turn(Text("I'll transfer you to our Spanish colleague."),
                        ToolCall("transfer_to_spanish"))
        if last.get("type") == "function_call_output":
            return Text("Je vous transfère à mon collègue espagnol.")
        return Text("Bien sûr, je peux vous aider.")
    return Text("Hola, ¿en qué puedo ayudarte?")


def _run(cli: CliRunner, tmp_path: Path, turns: str) -> Any:
    transcripts = tmp_path / "t.yaml"
    transcripts.write_text(f"name: checks\nturns:\n{turns}", encoding="utf-8")
    with WireServer(responder=_answer) as server:
        config = write_config(tmp_path, (
            f"entry: triage\nmodel: {{provider: openai, base_url: '{server.base_url}'}}\n"
            "session: {backend: memory}\nrouting: {next_turn: last_agent}\n"
            "agents:\n"
            "  triage: {instructions: Route., handoffs: [french, spanish]}\n"
            "  french: {language: fr, instructions: Réponds., handoffs: [spanish]}\n"
            "  spanish: {language: es, instructions: Responde., handoffs: [french]}\n"))
        return cli.invoke(app, ["replay", str(config), str(transcripts)],
                          env={"OPENAI_API_KEY": "sk-test"})


def test_a_transfer_announced_in_french_without_a_handoff_fails(
        cli: CliRunner, tmp_path: Path) -> None:
    done = _run(cli, tmp_path, (
        "  - user: Bonjour, j'ai besoin d'aide.\n"
        "    expect: {route: [triage, french], no_announced_handoff: true}\n"
        "  - user: Merci.\n"
        "    expect: {agent: french, no_announced_handoff: true}\n"))
    assert done.exit_code == 1, done.output
    assert "- no announced handoff: no transfer announced without a handoff" in done.stdout
    assert '+ no_announced_handoff: french said "Je vous transfère" and answered without a ' \
           "handoff" in done.stdout
    assert "turn 2" not in done.stdout  # "Bien sûr" announces nothing


def test_an_announcement_followed_by_the_handoff_passes(cli: CliRunner, tmp_path: Path) -> None:
    done = _run(cli, tmp_path, (
        "  - user: Bonjour.\n"
        "    expect: {agent: french}\n"
        "  - user: Could we speak English?\n"
        "    expect: {route: [french, spanish], no_announced_handoff: true}\n"))
    assert done.exit_code == 0, done.output


def test_history_seen_checks_what_the_handoff_target_received(
        cli: CliRunner, tmp_path: Path) -> None:
    done = _run(cli, tmp_path, (
        "  - user: Bonjour.\n"
        "    expect: {agent: french, history_seen: {items: 3, tool_calls: true}}\n"
        "  - user: Merci.\n"
        "    expect: {agent: french, history_seen: {items: {min: 6}, tool_calls: false}}\n"))
    assert done.exit_code == 1, done.output
    lines = done.stdout.splitlines()
    failing = [i for i, line in enumerate(lines) if line.startswith("  turn ")]
    assert [lines[i].split(" (")[0] for i in failing] == ["  turn 2"]
    assert "- history seen: items: at least 6" in done.stdout
    assert "- history seen: without tool calls" in done.stdout
    assert "+ history_seen: 5 items, 2 of them tool calls or outputs (french)" in done.stdout


@pytest.mark.parametrize(("expect", "message"), [
    ("{no_announced_handoff: false}", "turns[0].expect.no_announced_handoff"),
    ("{history_seen: {}}", "turns[0].expect.history_seen"),
    ("{history_seen: {items: -1}}", "turns[0].expect.history_seen.items"),
])
def test_wrong_handoff_checks_are_reported_at_their_line(
        cli: CliRunner, tmp_path: Path, expect: str, message: str) -> None:
    done = _run(cli, tmp_path, f"  - user: Bonjour.\n    expect: {expect}\n")
    assert done.exit_code == 2
    assert "t.yaml:4:" in done.stderr and message in done.stderr
