"""Stores at the edges: conversations scoped to their config, unsafe paths refused."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app

from . import session_services as services
from .conftest import REPO, write_config

LANGUAGES = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
DEFAULT_SESSION = ("  backend: sqlite          # the file defaults to "
                   "~/.local/share/routing-runner/sessions.db\n")


def _bot(folder: Path, name: str, session_block: str = DEFAULT_SESSION) -> Path:
    """The languages config named `name` in `folder`, with `session_block` as its store."""
    text = LANGUAGES.replace("name: Multilingual support", f"name: {name}").replace(
        DEFAULT_SESSION, session_block)
    return write_config(folder, text, f"{name.lower().replace(' ', '-')}.yaml")


def _chat(cli: CliRunner, config: Path, session_id: str, message: str) -> None:
    result = cli.invoke(app, ["chat", str(config), "-s", session_id, "-m", message])
    assert result.exit_code == 0, result.output


def _listed(cli: CliRunner, config: Path) -> list[str]:
    result = cli.invoke(app, ["sessions", "list", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return sorted(record["session_id"] for record in json.loads(result.stdout))


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def shared_store(request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A `session` block two configs share: the default file, or one PostgreSQL / Redis."""
    if request.param == "sqlite":
        yield DEFAULT_SESSION
    elif request.param == "postgres":
        services.require("PostgreSQL")
        prefix = services.unique_prefix()
        monkeypatch.setenv("DATABASE_URL", services.POSTGRES_URL)
        try:
            yield f"  backend: sqlalchemy\n  table_prefix: {prefix}\n"
        finally:
            services.drop_postgres_tables(prefix)
    else:
        services.require("Redis")
        prefix = services.unique_prefix()
        monkeypatch.setenv("REDIS_URL", services.REDIS_URL)
        try:
            yield f"  backend: redis\n  key_prefix: {prefix}\n"
        finally:
            services.drop_redis_keys(prefix)


# -- conversations belong to their config ----------------------------------------------------

def test_sessions_commands_on_one_config_never_see_another_configs_conversations(
        cli: CliRunner, tmp_path: Path, shared_store: str) -> None:
    bot_a, bot_b = _bot(tmp_path, "Bot A", shared_store), _bot(tmp_path, "Bot B", shared_store)
    _chat(cli, bot_a, "a-talk", "Hola, ¿cómo estás?")
    _chat(cli, bot_b, "b-talk", "Bonjour, comment ça va ?")

    assert _listed(cli, bot_a) == ["a-talk"]
    assert _listed(cli, bot_b) == ["b-talk"]
    for command in (["show"], ["export"], ["delete", "--yes"]):
        result = cli.invoke(app, ["sessions", command[0], str(bot_b), "a-talk", *command[1:]])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: conversation 'a-talk' belongs to the config "
                                        "'Bot A', not 'Bot B'")
        assert "Hola" not in result.stdout
    cleared = cli.invoke(app, ["sessions", "clear", str(bot_b), "--yes"])
    assert cleared.exit_code == 0, cleared.output
    assert "deleted 1 conversation" in cleared.stderr
    assert _listed(cli, bot_a) == ["a-talk"]
    assert _listed(cli, bot_b) == []


def test_chat_refuses_to_resume_another_configs_conversation(
        cli: CliRunner, tmp_path: Path, shared_store: str) -> None:
    bot_a, bot_b = _bot(tmp_path, "Bot A", shared_store), _bot(tmp_path, "Bot B", shared_store)
    _chat(cli, bot_a, "a-talk", "Hola, ¿cómo estás?")
    before = cli.invoke(app, ["sessions", "export", str(bot_a), "a-talk"]).stdout

    result = cli.invoke(app, ["chat", str(bot_b), "-s", "a-talk", "-m", "Hello there"])

    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1].startswith(
        "error: conversation 'a-talk' belongs to the config 'Bot A', not 'Bot B'")
    assert "Traceback" not in result.output
    after = cli.invoke(app, ["sessions", "export", str(bot_a), "a-talk"]).stdout
    assert json.loads(after)["items"] == json.loads(before)["items"]


def test_a_config_without_a_name_owns_its_conversations_by_file_name(
        cli: CliRunner, tmp_path: Path) -> None:
    text = LANGUAGES.replace("name: Multilingual support\n", "")
    first = write_config(tmp_path, text, "first.yaml")
    second = write_config(tmp_path, text, "second.yaml")
    _chat(cli, first, "talk", "Hola, ¿cómo estás?")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    first_moved = write_config(moved, text, "first.yaml")  # the same bot in another folder

    assert _listed(cli, second) == []
    assert _listed(cli, first_moved) == ["talk"]


def test_conversations_stored_before_owners_stay_usable_and_are_claimed_on_resume(
        cli: CliRunner, tmp_path: Path, isolated_environment: Path) -> None:
    bot_a, bot_b = _bot(tmp_path, "Bot A"), _bot(tmp_path, "Bot B")
    _chat(cli, bot_a, "old", "Hola, ¿cómo estás?")
    database = isolated_environment / "routing-runner" / "sessions.db"
    with sqlite3.connect(database) as conn:  # the table as an older version left it
        conn.execute("ALTER TABLE routing_runner_state DROP COLUMN owner")

    listed = cli.invoke(app, ["sessions", "list", str(bot_b)])
    assert "old" in listed.stdout
    assert "1 stored before conversations belonged to a config" in listed.stderr
    cleared = cli.invoke(app, ["sessions", "clear", str(bot_b), "--yes"])
    assert cleared.exit_code == 0, cleared.output
    assert "keeping 1 conversation stored before conversations belonged to a config" \
        in cleared.stderr
    assert _listed(cli, bot_a) == ["old"]

    _chat(cli, bot_a, "old", "¿Y mañana?")  # resuming claims it for Bot A
    assert _listed(cli, bot_b) == []
    refused = cli.invoke(app, ["chat", str(bot_b), "-s", "old", "-m", "Hello"])
    assert refused.exit_code == 2
    shown = cli.invoke(app, ["sessions", "show", str(bot_a), "old"])
    assert shown.stdout.count("you: ") == 2


# -- paths ----------------------------------------------------------------------------------

def test_a_nul_byte_in_session_path_is_a_config_error(cli: CliRunner, tmp_path: Path) -> None:
    config = _bot(tmp_path, "Bot", '  backend: sqlite\n  path: "sessions\\0.db"\n')
    for command in (["validate", str(config)], ["chat", str(config), "-m", "Hola"],
                    ["sessions", "list", str(config)]):
        result = cli.invoke(app, command)
        assert result.exit_code == 2, result.output
        line = next(n for n, text in enumerate(config.read_text().splitlines(), 1)
                    if "sessions\\0.db" in text)
        assert result.stderr.splitlines()[0] == (
            f"{config}:{line}:9: session.path: 'sessions\\x00.db' contains a NUL byte (\\0), "
            "which no file name can hold; remove it")
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_nul_byte_from_the_environment_in_session_path_is_a_config_error(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _bot(tmp_path, "Bot", '  backend: sqlite\n  path: "${DB:-a\\0b.db}"\n')
    result = cli.invoke(app, ["chat", str(config), "-m", "Hola"])
    assert result.exit_code == 2, result.output
    assert "session.path: 'a\\x00b.db' contains a NUL byte" in result.stderr
    assert "Traceback" not in result.output
