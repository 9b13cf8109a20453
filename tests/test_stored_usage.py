"""A conversation's usage kept with it: `sessions show --usage` and a resumed chat's `/usage`
count every completed turn, on SQLite, PostgreSQL and Redis; failed turns add nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Fault, Text, WireServer

from . import session_services as services
from .conftest import write_config


def _chat(cli: CliRunner, config: Path, *messages: str, exit_code: int = 0) -> list[str]:
    arguments = ["chat", str(config), "--session-id", "c1", "--usage"]
    for message in messages:
        arguments += ["-m", message]
    result = cli.invoke(app, arguments)
    assert result.exit_code == exit_code, result.output
    return result.stdout.splitlines()


def _shown_usage(cli: CliRunner, config: Path) -> list[str]:
    result = cli.invoke(app, ["sessions", "show", str(config), "c1", "--usage"])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def _wire_config(folder: Path, server: WireServer, session: str) -> Path:
    return write_config(folder, f"""\
version: 1
entry: helper
model: {{provider: openai, name: gpt-test, base_url: "{server.base_url}"}}
session:
{session}agents:
  helper: {{instructions: Help.}}
""")


def _line(*usages: dict[str, int]) -> str:
    summed = {key: sum(u[key] for u in usages) for key in usages[0]}
    return (f"{summed['input_tokens'] + summed['output_tokens']} tokens: "
            f"{summed['input_tokens']} in ({summed['cached_tokens']} cached), "
            f"{summed['output_tokens']} out (0 reasoning)")


def test_sessions_show_usage_after_a_two_turn_offline_chat(cli: CliRunner,
                                                           tmp_path: Path) -> None:
    config = write_config(tmp_path, (
        f"version: 1\nentry: helper\nmodel: {{provider: offline}}\nsession: {{path: "
        f"{tmp_path / 's.db'}}}\nagents:\n  helper: {{instructions: Help.}}\n"))
    chat = _chat(cli, config, "Hello there", "Where is my order?", "/usage")
    per_turn = [line for line in chat if "words (offline model)" in line][:2]
    words = sum(int(line.split()[0]) for line in per_turn)
    assert chat[-2].startswith(f"2 turns in this chat: {words} words (offline model): ")
    shown = _shown_usage(cli, config)
    assert shown[-2:] == ["this conversation: " + chat[-2].split(": ", 1)[1], chat[-1]]
    assert shown[-1].startswith(f"  helper: {words} words (offline model)")


def test_a_resumed_chat_counts_from_the_start_and_failed_turns_add_nothing(
        cli: CliRunner, tmp_path: Path, server: WireServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = _wire_config(tmp_path, server, f"  path: {tmp_path / 's.db'}\n")
    server.script(Text("Hi."))
    _chat(cli, config, "Hello")
    server.script(Fault.reset_mid_stream(), Text("Tomorrow."))
    resumed = _chat(cli, config, "Broken?", "When?", "/usage", exit_code=3)
    assert any("[error]" in line for line in resumed)
    first, second = server.reported_usage
    assert resumed[-2:] == [
        f"this conversation (1 turn in this chat): {_line(first, second)}",
        f"  helper: {_line(first, second)}"]
    assert _shown_usage(cli, config)[-2:] == [f"this conversation: {_line(first, second)}",
                                              f"  helper: {_line(first, second)}"]


def test_a_conversation_stored_before_usage_was_kept_says_so(cli: CliRunner,
                                                              tmp_path: Path) -> None:
    config = write_config(tmp_path, (
        f"version: 1\nentry: helper\nmodel: {{provider: offline}}\nsession: {{path: "
        f"{tmp_path / 's.db'}}}\nagents:\n  helper: {{instructions: Help.}}\n"))
    _chat(cli, config, "Hello")
    with closing(sqlite3.connect(tmp_path / "s.db")) as conn, conn:
        conn.execute("UPDATE routing_runner_state SET usage = NULL")
    assert _shown_usage(cli, config)[-1] == (
        "no usage is stored: no turn of this conversation completed since usage was kept")


@pytest.fixture(params=["postgres", "redis"])
def shared_session(request: pytest.FixtureRequest,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "postgres":
        monkeypatch.setenv("DATABASE_URL", services.POSTGRES_URL)
        with services.postgres_prefix() as prefix:
            yield f"  backend: sqlalchemy\n  table_prefix: {prefix}\n"
    else:
        monkeypatch.setenv("REDIS_URL", services.REDIS_URL)
        with services.redis_prefix() as prefix:
            yield f"  backend: redis\n  key_prefix: {prefix}\n"


def test_shared_stores_keep_the_usage_totals(cli: CliRunner, tmp_path: Path,
                                             server: WireServer, shared_session: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = _wire_config(tmp_path, server, shared_session)
    server.script(Text("Hi."), Text("Tomorrow."))
    _chat(cli, config, "Hello")
    _chat(cli, config, "When?")
    assert _shown_usage(cli, config)[-2:] == [
        f"this conversation: {_line(*server.reported_usage)}",
        f"  helper: {_line(*server.reported_usage)}"]
