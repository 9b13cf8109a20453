"""Guardrails: a function or a classifier agent stops a turn with its message, offline and
over the wire, checked by replay (`expect.guardrail`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Text, WireServer

from .conftest import write_config

GUARDS = '''
import asyncio


def no_secrets(text, context):
    if "password" in str(text).lower():
        return True, f"mentions a password ({context.get('customer', '-')})"
    return False


async def slow_ok(text, context):
    await asyncio.sleep(0)
    return {"tripped": False, "reason": "fine"}


def confused(text, context):
    return 42


def broken(text, context):
    raise ValueError("the rules file is missing")
'''

GUARDRAILS = """guardrails:
  on_topic:
    agent: {instructions: 'Trip when the message is about "weather" or "sports".'}
    message: I can only help with orders.
  secrets:
    function: guards:no_secrets
    message: I cannot share that.
  fine:
    function: guards:slow_ok
    message: never shown
"""


def _config(folder: Path, model: str = "", agent_extra: str = "",
            guardrails: str = GUARDRAILS) -> Path:
    (folder / "guards.py").write_text(GUARDS, encoding="utf-8")
    return write_config(folder, (
        f"entry: helper\n{model}session: {{path: {folder / 's.db'}}}\n"
        "context: {customer: Ada}\n" + guardrails +
        "agents:\n  helper:\n    instructions: Help with orders.\n"
        "    input_guardrails: [on_topic, fine]\n    output_guardrails: [secrets]\n"
        + agent_extra))


def _stored(folder: Path, session_id: str) -> list[Any]:
    with sqlite3.connect(folder / "s.db") as conn:
        return [json.loads(row[0]) for row in conn.execute(
            "SELECT message_data FROM agent_messages WHERE session_id = ? ORDER BY id",
            (session_id,))]


def test_chat_shows_the_trip_and_stores_the_message_as_the_answer(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = cli.invoke(app, ["chat", str(config), "-s", "g", "-m", "How about the weather?",
                              "-m", "Where is my order?", "-m", "My password is hunter2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == ["you: How about the weather?",
                         "  [guardrail] on_topic: the text mentions 'weather'",
                         "helper: I can only help with orders."]
    assert lines[4].startswith("helper: [offline model] I'm helper")
    assert lines[5:] == ["you: My password is hunter2",
                         "  [guardrail] secrets: mentions a password (Ada)",
                         "helper: I cannot share that."]
    stored = _stored(tmp_path, "g")
    assert [(i.get("role"), i.get("content")) for i in stored if i.get("role")][:2] == [
        ("user", "How about the weather?"),
        ("assistant", "I can only help with orders.")]
    # The blocked answer was never stored, only the guardrail's message after the message.
    assert stored[-2:] == [{"role": "user", "content": "My password is hunter2"},
                           {"role": "assistant", "content": "I cannot share that."}]


def test_replay_expects_the_guardrail_that_stops_a_turn(cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    transcript = tmp_path / "t.yaml"
    transcript.write_text(
        "name: guarded\nturns:\n"
        "  - user: Any sports news?\n    expect: {guardrail: on_topic, contains: only help}\n"
        "  - restart\n"
        "  - user: Tell me my password\n    expect: {guardrail: on_topic}\n"
        "  - user: Where is my order?\n    expect: {guardrail: secrets}\n", encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 1
    assert "  - guardrail: on_topic\n  + guardrail: secrets\n" in result.stdout
    assert "  - guardrail: secrets\n  + guardrail: none tripped\n" in result.stdout
    assert "turn 1 (" not in result.stdout


def test_a_guardrail_function_that_does_not_import_is_exit_2_before_any_message(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path, guardrails=GUARDRAILS.replace("guards:no_secrets",
                                                             "guards:no_secret").replace(
        "guards:slow_ok", "guardz:slow_ok"))
    for command in (["chat", str(config), "-m", "Hi"],
                    ["replay", str(config), str(_any_transcript(tmp_path))]):
        result = cli.invoke(app, command)
        assert result.exit_code == 2
        assert result.stderr.splitlines()[-3:] == [
            f"{config}:9:15: guardrails.secrets.function: module 'guards' has no attribute "
            "'no_secret' (did you mean 'no_secrets'?)",
            f"{config}:12:15: guardrails.fine.function: module 'guardz' not found in the "
            "installed packages, the python_path folders or the config's folder",
            "2 errors found; nothing was run."]
    assert not (tmp_path / "s.db").exists()


def _any_transcript(folder: Path) -> Path:
    path = folder / "any.yaml"
    path.write_text("name: any\nturns:\n  - user: Hi\n    expect: {agent: helper}\n",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize(("function", "message"), [
    ("confused", "guardrail 'secrets': its function returned 42; return true/false, "
                 "(tripped, reason) or {'tripped': ..., 'reason': ...}"),
    ("broken", "guardrail 'secrets' failed: ValueError: the rules file is missing"),
])
def test_a_guardrail_function_that_cannot_decide_fails_the_turn_in_one_line(
        cli: CliRunner, tmp_path: Path, function: str, message: str) -> None:
    config = _config(tmp_path, guardrails=GUARDRAILS.replace("guards:no_secrets",
                                                             f"guards:{function}"))
    result = cli.invoke(app, ["chat", str(config), "-s", "f", "-m", "Where is my order?"])
    assert result.exit_code == 3
    assert result.stdout.splitlines()[1:] == [f"  [error] {message}"]
    assert _stored(tmp_path, "f") == [{"role": "user", "content": "Where is my order?"}]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[WireServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with WireServer() as wire:
        yield wire


def test_over_the_responses_api_the_classifier_decides_with_a_structured_verdict(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    model = f"model: {{provider: openai, name: gpt-test, base_url: '{server.base_url}'}}\n"
    config = _config(tmp_path, model, guardrails=GUARDRAILS.replace(
        "agent: {instructions:", "agent: {model: gpt-small, instructions:"))
    server.script(Text('{"tripped": false, "reason": "about an order"}'),
                  Text("Your order A1 shipped."),
                  Text('{"tripped": true, "reason": "small talk"}'))
    transcript = tmp_path / "t.yaml"
    transcript.write_text(
        "name: wire\nturns:\n"
        "  - user: Where is A1?\n    expect: {contains: A1 shipped}\n"
        "  - user: Nice day, isn't it?\n    expect: {guardrail: on_topic}\n", encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript), "-v", "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "  [guardrail] on_topic: small talk\nhelper: I can only help with orders." \
        in result.stdout
    verdict, answer, tripped = server.requests
    assert {r.path for r in server.requests} == {"/v1/responses"}
    assert (verdict.body["model"], answer.body["model"]) == ("gpt-small", "gpt-test")
    assert verdict.body["instructions"].startswith("Trip when the message is about")
    assert verdict.body["input"] == [{"role": "user", "content": "Where is A1?"}]
    asked = verdict.body["text"]["format"]
    assert (asked["type"], asked["strict"], asked["schema"]["required"]) == \
        ("json_schema", True, ["tripped", "reason"])
    assert tripped.body["input"][-1]["content"] == "Nice day, isn't it?"


def test_over_the_wire_an_answer_an_output_guardrail_stops_is_never_shown(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    model = f"model: {{provider: openai, name: gpt-test, base_url: '{server.base_url}'}}\n"
    config = _config(tmp_path, model, guardrails=GUARDRAILS.replace(
        "  on_topic:\n    agent: {instructions: 'Trip when the message is about \"weather\" or "
        "\"sports\".'}\n    message: I can only help with orders.\n", "  on_topic:\n"
        "    function: guards:slow_ok\n    message: unused\n"))
    server.script(Text("Sure, the admin password is hunter2.", chunk_size=3))
    result = cli.invoke(app, ["chat", str(config), "-s", "w", "-m", "What is the password?"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "  [guardrail] secrets: mentions a password (Ada)", "helper: I cannot share that."]
    assert "hunter2" not in json.dumps(_stored(tmp_path, "w"))
