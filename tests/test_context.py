"""Context placeholders in instructions: `{{ key }}` filled per conversation, stored with it.

Proved over the wire: the loopback server answers with the instructions it was sent, so the
tests read what the model really received.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.config import load_config
from routing_runner.config.placeholders import parse
from routing_runner.errors import ConfigError
from routing_runner.stores.sqlite import SQLiteStore
from routing_runner_testing.wire_server import Reply, Text, WireServer

from .conftest import FIXTURES, write_config
from .test_store_backends import Backend, _backend


def _echo_instructions(body: dict[str, Any]) -> Reply:
    return Text(f"told: {body['instructions']}")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[WireServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with WireServer(responder=_echo_instructions) as wire:
        yield wire


def _config(folder: Path, server: WireServer) -> Path:
    return write_config(folder, (
        f"entry: helper\nmodel: {{provider: openai, base_url: '{server.base_url}'}}\n"
        f"session: {{path: {folder / 'sessions.db'}}}\n"
        "context:\n  customer: null\n  plan: basic\n"
        "agents:\n  helper:\n"
        "    instructions: 'Help {{ customer }} on the {{plan}} plan; {{{{ stays.'\n"))


def test_replay_fills_the_transcripts_context_and_a_restart_keeps_it(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    config = _config(tmp_path, server)
    transcript = tmp_path / "t.yaml"
    transcript.write_text(
        "name: context\ncontext: {customer: Ada}\nturns:\n"
        "  - user: Hello\n"
        "    expect: {contains: 'told: Help Ada on the basic plan; {{ stays.'}\n"
        "  - restart\n"
        "  - user: Again\n"
        "    expect: {contains: 'told: Help Ada on the basic plan'}\n", encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 0, result.output
    assert [r.body["instructions"] for r in server.requests] == \
        ["Help Ada on the basic plan; {{ stays."] * 2


def test_chat_context_is_stored_so_a_resumed_chat_has_it(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    config = _config(tmp_path, server)
    first = cli.invoke(app, ["chat", str(config), "-s", "s1", "-m", "Hi",
                             "--context", "customer=Ada", "--context", "plan=gold"])
    assert first.exit_code == 0, first.output
    resumed = cli.invoke(app, ["chat", str(config), "-s", "s1", "-m", "Again"])
    assert resumed.exit_code == 0, resumed.output
    changed = cli.invoke(app, ["chat", str(config), "-s", "s1", "-m", "Third",
                               "--context", "customer=Bo"])
    assert changed.exit_code == 0, changed.output
    assert [r.body["instructions"] for r in server.requests] == [
        "Help Ada on the gold plan; {{ stays.", "Help Ada on the gold plan; {{ stays.",
        "Help Bo on the gold plan; {{ stays."]


def test_a_missing_or_unknown_context_key_is_exit_2_before_any_request(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    config = _config(tmp_path, server)
    missing = cli.invoke(app, ["chat", str(config), "-m", "Hi"])
    assert missing.exit_code == 2
    assert missing.stderr.splitlines()[-1] == (
        "error: the context key customer of this config needs a value; give it with "
        "--context customer=... (a transcript: context: {customer: ...})")
    unknown = cli.invoke(app, ["chat", str(config), "-m", "Hi", "--context", "custmer=Ada"])
    assert unknown.exit_code == 2
    assert "'custmer' is not a context key of the config (did you mean 'customer'?)" \
        in unknown.stderr
    assert server.requests == []


def test_a_transcript_context_key_the_config_lacks_is_located(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    config = _config(tmp_path, server)
    transcript = tmp_path / "t.yaml"
    transcript.write_text("name: wrong\ncontext:\n  customer: Ada\n  custmr: x\nturns:\n"
                          "  - user: Hi\n    expect: {contains: told}\n", encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{transcript}:4:3: context.custmr: 'custmr' is not a context key of {config} "
        "(did you mean 'customer'?) (its keys: customer, plan)")
    assert server.requests == []


def test_a_placeholder_in_an_instructions_file_is_located_in_that_file(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_text("You help.\nCall them {{ name }}.\n", encoding="utf-8")
    config = write_config(tmp_path, "entry: a\nagents: {a: {instructions_file: prompt.md}}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(config, env={})
    assert [str(p) for p in raised.value.problems] == [
        f"{tmp_path / 'prompt.md'}:2:11: placeholder {{{{ name }}}} has no context key; declare "
        "it under the top-level 'context:' (e.g. name: null for a value each conversation "
        "must give)"]


def test_filling_is_text_substitution_only() -> None:
    template, bad = parse("{{a}}{{{{b}} {{ a.__class__ }} {{a}}")
    assert [b.text for b in bad] == ["{{ a.__class__ }}"]
    assert template.fill({"a": "{{b}}"}) == "{{b}}{{b}} {{ a.__class__ }} {{b}}"


def test_a_recorded_chat_keeps_its_context_and_guardrail_trips_for_replay(
        cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, (
        "entry: helper\nsession: {backend: memory}\ncontext: {customer: null}\n"
        "guardrails:\n  on_topic:\n    agent: {instructions: 'Trip on \"weather\".'}\n"
        "    message: Orders only, {{ customer }} stays literal here.\n"
        "agents:\n  helper:\n    instructions: Help {{ customer }}.\n"
        "    input_guardrails: [on_topic]\n"))
    record = tmp_path / "recorded.yaml"
    chat = cli.invoke(app, ["chat", str(config), "--context", "customer=Ada", "--record",
                            str(record), "-m", "Where is my order?", "-m", "Nice weather!"])
    assert chat.exit_code == 0, chat.output
    text = record.read_text(encoding="utf-8")
    assert "context: {customer: Ada}\n" in text
    assert "expect: {agent: helper, route: [helper], guardrail: on_topic}" in text
    replayed = cli.invoke(app, ["replay", str(config), str(record)])
    assert replayed.exit_code == 0, replayed.output


@pytest.fixture(params=["sqlite", "memory", "postgres", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _backend(request.param, tmp_path)


def test_every_backend_keeps_a_conversations_context_across_stores(backend: Backend) -> None:
    async def scenario() -> tuple[dict[str, str], Any]:
        first = backend.store()
        conversation = await first.open("ctx-1")
        await conversation.set_context({"customer": "Ada", "plan": "gold"})
        await conversation.session.add_items([{"role": "user", "content": "Hi"}])
        await conversation.set_active_agent("helper")
        await first.close()
        second = backend.store()
        try:
            reopened = await second.open("ctx-1")
            kept = dict(reopened.context)
            await reopened.set_context({"customer": "Bo"})
            return kept, await second.summary("ctx-1")
        finally:
            await second.close()

    kept, summary = asyncio.run(scenario())
    assert kept == {"customer": "Ada", "plan": "gold"}
    assert (summary.context, summary.last_agent, summary.turns) == (
        {"customer": "Bo", "plan": "gold"}, "helper", 1)


def test_a_sqlite_state_table_from_before_contexts_gains_the_column(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE routing_runner_state (session_id TEXT PRIMARY KEY, "
                     "active_agent TEXT, turns INTEGER NOT NULL DEFAULT 0, created_at REAL NOT "
                     "NULL, updated_at REAL NOT NULL, owner TEXT)")
        conn.execute("INSERT INTO routing_runner_state VALUES ('old', 'a', 2, 1.0, 1.0, NULL)")
    summary = asyncio.run(SQLiteStore(db).summary("old"))
    assert summary is not None
    assert (summary.last_agent, summary.turns, summary.context) == ("a", 2, None)


def test_validate_exits_2_on_a_placeholder_without_a_context_key(cli: CliRunner) -> None:
    case = FIXTURES / "configs" / "invalid" / "placeholder_without_context_key.yaml"
    result = cli.invoke(app, ["validate", str(case)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{case}:7:49: agents.helper.instructions: placeholder "
                                    "{{ plan }} has no context key")


def test_an_exported_conversation_keeps_its_context(cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, (
        f"entry: helper\nsession: {{path: {tmp_path / 's.db'}}}\ncontext: {{customer: null}}\n"
        "agents:\n  helper: {instructions: 'Help {{ customer }}.'}\n"))
    chat = cli.invoke(app, ["chat", str(config), "-s", "e1", "--context", "customer=Ada",
                            "-m", "Hello"])
    assert chat.exit_code == 0, chat.output
    exported = cli.invoke(app, ["sessions", "export", str(config), "e1"])
    assert json.loads(exported.stdout)["context"] == {"customer": "Ada"}
    transcript = cli.invoke(app, ["sessions", "export", str(config), "e1", "-f", "transcript"])
    assert "context: {customer: Ada}\n" in transcript.stdout
    (tmp_path / "e1.yaml").write_text(transcript.stdout, encoding="utf-8")
    replayed = cli.invoke(app, ["replay", str(config), str(tmp_path / "e1.yaml")])
    assert replayed.exit_code == 0, replayed.output
