"""A stored conversation is read whole or not at all: no config reads another encryption
setting's conversation, and no unreadable row is dropped without a word."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.stores.encryption import new_key

from . import session_services as services
from .conftest import write_config


@dataclass
class Storage:
    """One place conversations are stored, and a plain and an encrypted config on it."""

    plain: Path
    encrypted: Path
    rows: Callable[[], list[bytes]]  # the raw rows of conversation c1, oldest first
    damage: Callable[[int, bytes], None]  # overwrite row N (1 = oldest) with these bytes


def _configs(tmp_path: Path, session: str) -> tuple[Path, Path]:
    # One bot (one name, so the conversations are its own) with and without encryption.
    bot = ("name: bot\nentry: bot\nmodel: {provider: offline}\n"
           "agents: {bot: {instructions: Answer.}}\n")
    plain = write_config(tmp_path, f"session:\n{session}{bot}", "plain.yaml")
    encrypted = write_config(tmp_path, f"session:\n{session}  encryption: {{ttl: 30d}}\n{bot}",
                             "encrypted.yaml")
    return plain, encrypted


def _sql_storage(tmp_path: Path) -> Storage:
    path = tmp_path / "s.db"

    def rows() -> list[bytes]:
        with sqlite3.connect(path) as conn:
            return [bytes(r[0], "utf-8", "surrogateescape") if isinstance(r[0], str) else r[0]
                    for r in conn.execute("SELECT message_data FROM agent_messages "
                                          "WHERE session_id = 'c1' ORDER BY id")]

    def damage(number: int, data: bytes) -> None:
        with sqlite3.connect(path) as conn:
            row_id = conn.execute("SELECT id FROM agent_messages WHERE session_id = 'c1' "
                                  "ORDER BY id LIMIT 1 OFFSET ?", (number - 1,)).fetchone()[0]
            conn.execute("UPDATE agent_messages SET message_data = ? WHERE id = ?",
                         (data.decode("utf-8", "replace"), row_id))

    return Storage(*_configs(tmp_path, f"  path: {path}\n"), rows, damage)


def _postgres_storage(tmp_path: Path, prefix: str) -> Storage:
    import asyncpg

    url = services.POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    table = f'"{prefix}_agent_messages"'

    async def on_db(work: Callable[[Any], Any]) -> Any:
        conn = await asyncpg.connect(url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    def rows() -> list[bytes]:
        found = asyncio.run(on_db(lambda c: c.fetch(
            f"SELECT message_data FROM {table} WHERE session_id = 'c1' ORDER BY id")))
        return [r[0].encode() for r in found]

    def damage(number: int, data: bytes) -> None:
        asyncio.run(on_db(lambda c: c.execute(
            f"UPDATE {table} SET message_data = $1 WHERE id = (SELECT id FROM {table} "
            "WHERE session_id = 'c1' ORDER BY id LIMIT 1 OFFSET $2)",
            data.decode("utf-8", "replace"), number - 1)))

    return Storage(*_configs(tmp_path, f"  backend: sqlalchemy\n  table_prefix: {prefix}\n"),
                   rows, damage)


def _redis_storage(tmp_path: Path, prefix: str) -> Storage:
    import redis

    client = redis.Redis.from_url(services.REDIS_URL)
    key = f"{prefix}:c1:messages"

    def rows() -> list[bytes]:
        return list(client.lrange(key, 0, -1))

    def damage(number: int, data: bytes) -> None:
        client.lset(key, number - 1, data)

    return Storage(*_configs(tmp_path, f"  backend: redis\n  key_prefix: {prefix}\n"),
                   rows, damage)


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def storage(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Storage]:
    monkeypatch.setenv("ROUTING_RUNNER_SESSION_KEY", new_key())
    if request.param == "sqlite":
        yield _sql_storage(tmp_path)
    elif request.param == "postgres":
        monkeypatch.setenv("DATABASE_URL", services.POSTGRES_URL)
        with services.postgres_prefix() as prefix:
            yield _postgres_storage(tmp_path, prefix)
    else:
        monkeypatch.setenv("REDIS_URL", services.REDIS_URL)
        with services.redis_prefix() as prefix:
            yield _redis_storage(tmp_path, prefix)


def _chat(cli: CliRunner, config: Path, *messages: str) -> Any:
    arguments = ["chat", str(config), "--session-id", "c1"]
    for message in messages:
        arguments += ["-m", message]
    return cli.invoke(app, arguments)


def _error_line(result: Any) -> str:
    """The one `error:` line a refused command printed (and no traceback)."""
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# -- item 4: a conversation is read with the encryption setting it was written with ---------

def test_a_config_without_encryption_refuses_an_encrypted_conversation(
        cli: CliRunner, storage: Storage) -> None:
    assert _chat(cli, storage.encrypted, "my secret").exit_code == 0
    before = storage.rows()

    for arguments in (["chat", str(storage.plain), "-s", "c1", "-m", "hello"],
                      ["sessions", "show", str(storage.plain), "c1"],
                      ["sessions", "export", str(storage.plain), "c1"]):
        result = cli.invoke(app, arguments)
        assert result.exit_code == 3, result.output
        assert _error_line(result).startswith("error: conversation 'c1' in ")
        assert "is encrypted (it was written with session.encryption) and this config has no " \
               "session.encryption: add the encryption block" in result.stderr
        assert "my secret" not in result.output and "__enc__" not in result.output

    assert storage.rows() == before  # nothing appended
    # The owner's key still reads the whole conversation.
    shown = cli.invoke(app, ["sessions", "show", str(storage.encrypted), "c1"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("you: my secret\nbot: ")
    assert _chat(cli, storage.encrypted, "still mine").exit_code == 0


def test_an_encrypted_config_refuses_a_plaintext_conversation(
        cli: CliRunner, storage: Storage) -> None:
    assert _chat(cli, storage.plain, "in the clear").exit_code == 0
    before = storage.rows()

    for arguments in (["chat", str(storage.encrypted), "-s", "c1", "-m", "hello"],
                      ["sessions", "show", str(storage.encrypted), "c1"],
                      ["sessions", "export", str(storage.encrypted), "c1"]):
        result = cli.invoke(app, arguments)
        assert result.exit_code == 3, result.output
        assert "holds unencrypted items (it was written without session.encryption); " \
               "nothing was read or changed" in _error_line(result)

    assert storage.rows() == before
    assert _chat(cli, storage.plain, "still plain").exit_code == 0


# -- item 5: an unreadable row is named, never skipped ---------------------------------------

def _two_turns(cli: CliRunner, config: Path) -> None:
    result = _chat(cli, config, "first message", "second message")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("damage", [b"{broken", b"\xff\xfe not text", b"[1, 2]"])
def test_an_unreadable_row_fails_the_turn_before_the_model_is_called(
        cli: CliRunner, storage: Storage, damage: bytes) -> None:
    _two_turns(cli, storage.plain)
    storage.damage(1, damage)
    before = storage.rows()

    result = _chat(cli, storage.plain, "third message")

    assert result.exit_code == 3, result.output
    failed = [line for line in result.stdout.splitlines() if "[error]" in line]
    assert len(failed) == 1
    assert failed[0].startswith("  [error] conversation 'c1' in ")
    assert "has 1 unreadable row (row 1: not " in failed[0]
    assert "of 4; the model would not see them, so nothing was sent" in failed[0]
    assert failed[0].endswith("your message was not stored")
    assert "bot:" not in result.stdout  # no reply: the model was not asked
    assert storage.rows() == before  # nothing appended, nothing dropped


def test_with_a_history_window_a_turn_checks_the_rows_it_sends_and_no_others(
        cli: CliRunner, storage: Storage) -> None:
    windowed = storage.plain.with_name("windowed.yaml")
    windowed.write_text(storage.plain.read_text(encoding="utf-8").replace(
        "session:\n", "session:\n  history_limit: 2\n"), encoding="utf-8")
    _two_turns(cli, windowed)
    storage.damage(1, b"{broken")  # older than the window: the turn never reads it

    passed = _chat(cli, windowed, "third message")

    assert passed.exit_code == 0, passed.output
    assert len(storage.rows()) == 6
    storage.damage(5, b"{broken")  # inside the window (the last 2 items, and one more)
    before = storage.rows()

    failed = _chat(cli, windowed, "fourth message")

    assert failed.exit_code == 3, failed.output
    assert "has 1 unreadable row (row 5: not JSON) of 6; the model would not see them, so " \
        "nothing was sent" in failed.stdout
    assert storage.rows() == before


def test_a_damaged_encrypted_row_is_named_not_taken_for_a_wrong_key(
        cli: CliRunner, storage: Storage) -> None:
    _two_turns(cli, storage.encrypted)
    envelope = json.loads(storage.rows()[2])
    envelope["payload"] = envelope["payload"][:-8] + "AAAAAAAA"
    storage.damage(3, json.dumps(envelope).encode())

    result = _chat(cli, storage.encrypted, "third message")

    assert result.exit_code == 3, result.output
    assert "has 1 unreadable row (row 3: does not decrypt with the key) of 4" in result.stdout


def test_show_marks_unreadable_rows_and_repair_drops_them_when_asked(
        cli: CliRunner, storage: Storage) -> None:
    config = str(storage.plain)
    _two_turns(cli, storage.plain)
    storage.damage(1, b"{broken")

    shown = cli.invoke(app, ["sessions", "show", config, "c1"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "  [unreadable] row 1: not JSON"
    assert lines[1].startswith("bot: ") and lines[2] == "you: second message"
    assert "warning: 1 unreadable row (row 1: not JSON): the model does not see them" \
        in shown.stderr

    exported = cli.invoke(app, ["sessions", "export", config, "c1"])
    assert exported.exit_code == 3 and "1 unreadable row (row 1: not JSON)" in exported.stderr
    assert exported.stdout == ""

    unsaid = cli.invoke(app, ["sessions", "repair", config, "c1"])
    assert unsaid.exit_code == 2 and "--drop-unreadable" in unsaid.stderr
    declined = cli.invoke(app, ["sessions", "repair", config, "c1", "--drop-unreadable"],
                          input="n\n")
    assert declined.exit_code == 0 and "nothing dropped" in declined.stderr
    assert "Drop 1 unreadable row (row 1: not JSON) from conversation c1" in declined.stderr
    assert len(storage.rows()) == 4

    repaired = cli.invoke(app, ["sessions", "repair", config, "c1", "--drop-unreadable",
                                "--yes"])
    assert repaired.exit_code == 0, repaired.output
    assert "dropped 1 unreadable row from conversation c1" in repaired.stderr
    assert len(storage.rows()) == 3
    listed = json.loads(cli.invoke(app, ["sessions", "list", config, "--json"]).stdout)
    assert listed[0]["turns"] == 1  # the dropped row was a user message

    again = cli.invoke(app, ["sessions", "repair", config, "c1", "--drop-unreadable", "--yes"])
    assert again.exit_code == 0 and "no unreadable rows; nothing to repair" in again.stderr
    assert _chat(cli, storage.plain, "third message").exit_code == 0
    assert len(storage.rows()) == 5


def test_repair_never_drops_rows_of_another_key(cli: CliRunner, storage: Storage,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _two_turns(cli, storage.encrypted)
    monkeypatch.setenv("ROUTING_RUNNER_SESSION_KEY", new_key())

    result = cli.invoke(app, ["sessions", "repair", str(storage.encrypted), "c1",
                              "--drop-unreadable", "--yes"])

    assert result.exit_code == 3
    assert "cannot decrypt conversation 'c1' with the key in ROUTING_RUNNER_SESSION_KEY" \
        in _error_line(result)
    assert len(storage.rows()) == 4


def test_a_damaged_redis_state_record_is_shown_as_unknown_not_a_traceback(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    services.require("Redis")
    prefix = services.unique_prefix()
    monkeypatch.setenv("REDIS_URL", services.REDIS_URL)
    storage = _redis_storage(tmp_path, prefix)
    try:
        _two_turns(cli, storage.plain)
        redis.Redis.from_url(services.REDIS_URL).hset(f"{prefix}:c1:state", "turns", "abc")

        listed = cli.invoke(app, ["sessions", "list", str(storage.plain), "--json"])
        assert listed.exit_code == 0, listed.output
        assert [(s["session_id"], s["turns"]) for s in json.loads(listed.stdout)] == [
            ("c1", None)]
        deleted = cli.invoke(app, ["sessions", "delete", str(storage.plain), "c1", "--yes"])
        assert deleted.exit_code == 0, deleted.output
        assert storage.rows() == []
    finally:
        services.drop_redis_keys(prefix)
