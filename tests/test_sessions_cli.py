"""`routing-runner sessions ...` and the chat's session handling, through the real entry point."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from routing_runner.cli import app

from . import session_services as services
from .conftest import REPO, write_config

LANGUAGES = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
SPANISH_THEN_FRENCH = ["Hola, ¿cómo estás?", "Je veux apprendre le français."]


def _config(tmp_path: Path, session_block: str) -> Path:
    return write_config(tmp_path, LANGUAGES.replace(
        "  backend: sqlite          # the file defaults to ~/.local/share/routing-runner/"
        "sessions.db\n", session_block))


@pytest.fixture(params=["sqlite", "postgres", "redis", "encrypted"])
def config(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A languages config on each persistent backend (the environment set up for it)."""
    monkeypatch.setenv("ROUTING_RUNNER_SESSION_KEY", base64.urlsafe_b64encode(
        b"k" * 32).decode())
    if request.param == "sqlite":
        yield _config(tmp_path, "  backend: sqlite\n")
    elif request.param == "encrypted":
        yield _config(tmp_path, "  backend: sqlite\n  encryption: {ttl: 30d}\n")
    elif request.param == "postgres":
        monkeypatch.setenv("DATABASE_URL", services.POSTGRES_URL)
        with services.postgres_prefix() as prefix:
            yield _config(tmp_path, f"  backend: sqlalchemy\n  table_prefix: {prefix}\n")
    else:
        monkeypatch.setenv("REDIS_URL", services.REDIS_URL)
        with services.redis_prefix() as prefix:
            yield _config(tmp_path, f"  backend: redis\n  key_prefix: {prefix}\n  ttl: 1h\n")


def _chat(cli: CliRunner, config: Path, session_id: str, *messages: str) -> str:
    arguments = ["chat", str(config), "--session-id", session_id]
    for message in messages:
        arguments += ["-m", message]
    result = cli.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_show_export_delete_on_every_backend(cli: CliRunner, config: Path) -> None:
    chatted = _chat(cli, config, "first", *SPANISH_THEN_FRENCH)
    _chat(cli, config, "second", "Hello, I need help with my order.")

    listed = cli.invoke(app, ["sessions", "list", str(config)])
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["ID", "LAST", "AGENT", "TURNS", "LAST", "ACTIVITY"]
    assert [row[:3] for row in rows[1:]] == [["second", "english", "1"],
                                             ["first", "french", "2"]]  # newest first
    assert "2 conversations in " in listed.stderr

    shown = cli.invoke(app, ["sessions", "show", str(config), "first"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == chatted  # exactly what the chat printed
    assert "first in " in shown.stderr and "2 turns, last agent french" in shown.stderr

    exported = cli.invoke(app, ["sessions", "export", str(config), "first"])
    document = json.loads(exported.stdout)
    assert (document["session_id"], document["last_agent"], document["turns"]) == \
        ("first", "french", 2)
    assert [i.get("content") for i in document["items"] if i.get("role") == "user"] == \
        SPANISH_THEN_FRENCH

    deleted = cli.invoke(app, ["sessions", "delete", str(config), "first", "--yes"])
    assert deleted.exit_code == 0 and "deleted conversation first" in deleted.stderr
    after = cli.invoke(app, ["sessions", "list", str(config), "--json"])
    assert [s["session_id"] for s in json.loads(after.stdout)] == ["second"]

    cleared = cli.invoke(app, ["sessions", "clear", str(config)], input="y\n")
    assert cleared.exit_code == 0 and "deleted 1 conversation" in cleared.stderr
    assert json.loads(cli.invoke(app, ["sessions", "list", str(config), "--json"]).stdout) == []


def test_delete_and_clear_ask_first(cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path, "  backend: sqlite\n")
    _chat(cli, config, "keep", "Hola, ¿cómo estás?")
    for answer in ("n\n", "", "\n"):  # no, end of input, the default
        result = cli.invoke(app, ["sessions", "delete", str(config), "keep"], input=answer)
        assert result.exit_code == 0
        assert "Delete conversation keep (1 turn, last activity " in result.stderr
        assert "nothing deleted" in result.stderr
        cleared = cli.invoke(app, ["sessions", "clear", str(config)], input=answer)
        assert "Delete the conversation of Multilingual support in sqlite " in cleared.stderr
        assert "nothing deleted" in cleared.stderr
    assert "keep" in cli.invoke(app, ["sessions", "list", str(config)]).stdout
    deleted = cli.invoke(app, ["sessions", "delete", str(config), "keep"], input="y\n")
    assert deleted.exit_code == 0 and "deleted conversation keep" in deleted.stderr


def test_unknown_and_bad_ids_are_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path, "  backend: sqlite\n")
    for command in ("show", "export", "delete"):
        unknown = cli.invoke(app, ["sessions", command, str(config), "nope"])
        assert unknown.exit_code == 2, command
        assert unknown.stderr.startswith("error: no conversation 'nope' in sqlite ")
        bad = cli.invoke(app, ["sessions", command, str(config), "../etc/passwd"])
        assert bad.exit_code == 2, command
        assert bad.stderr.startswith("error: invalid session id '../etc/passwd'")


def test_a_chat_on_a_conversation_open_elsewhere_is_refused(cli: CliRunner,
                                                            tmp_path: Path) -> None:
    import asyncio

    from routing_runner.stores.base import SQLiteStore

    config = _config(tmp_path, "  backend: sqlite\n  path: s.db\n")
    store = SQLiteStore(tmp_path / "s.db")
    asyncio.run(store.open("busy"))  # held, as by another chat
    result = cli.invoke(app, ["chat", str(config), "-s", "busy", "-m", "Hola"])
    assert result.exit_code == 3
    assert "error: conversation 'busy' is in use by another process" in result.stderr
    assert result.stdout == ""
    cleared = cli.invoke(app, ["sessions", "clear", str(config), "--yes"])
    asyncio.run(store.close())
    assert _chat(cli, config, "busy", "Hola, ¿cómo estás?")  # free once released
    assert cleared.exit_code == 0  # nothing stored yet under "busy": nothing to keep


def test_clear_keeps_conversations_in_use_and_says_so(cli: CliRunner, tmp_path: Path) -> None:
    import asyncio

    from routing_runner.stores.base import SQLiteStore

    config = _config(tmp_path, "  backend: sqlite\n  path: s.db\n")
    _chat(cli, config, "free", "Hola, ¿cómo estás?")
    _chat(cli, config, "held", "Hola, ¿cómo estás?")
    store = SQLiteStore(tmp_path / "s.db")
    asyncio.run(store.open("held"))
    result = cli.invoke(app, ["sessions", "clear", str(config), "--yes"])
    asyncio.run(store.close())
    assert result.exit_code == 3
    assert "deleted 1 conversation\n" in result.stderr
    assert "error: kept 1 in use by another process: held" in result.stderr


def test_the_memory_backend_lists_nothing_after_exit(cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path, "  backend: memory\n")
    _chat(cli, config, "gone", "Hola, ¿cómo estás?")
    result = cli.invoke(app, ["sessions", "list", str(config)])
    assert result.exit_code == 0
    assert result.stderr == "0 conversations in memory (nothing is kept after exit)\n"


def test_export_as_a_transcript_replays(cli: CliRunner, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, "  backend: sqlite\n")
    _chat(cli, config, "t1", *SPANISH_THEN_FRENCH)
    monkeypatch.chdir(tmp_path)
    exported = cli.invoke(app, ["sessions", "export", str(config), "t1", "-f", "transcript"])
    assert exported.exit_code == 0, exported.output
    transcript = yaml.safe_load(exported.stdout)
    assert transcript["turns"] == [
        {"user": SPANISH_THEN_FRENCH[0], "expect": {"agent": "spanish",
                                                    "route": ["triage", "spanish"]}},
        {"user": SPANISH_THEN_FRENCH[1], "expect": {"agent": "french",
                                                    "route": ["spanish", "french"]}}]
    (tmp_path / "t1.yaml").write_text(exported.stdout, encoding="utf-8")
    replayed = cli.invoke(app, ["replay", str(config), str(tmp_path / "t1.yaml")])
    assert replayed.exit_code == 0, replayed.output


def test_new_key_prints_a_usable_key(cli: CliRunner, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli.invoke(app, ["sessions", "new-key"])
    key = result.stdout.strip()
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert key != cli.invoke(app, ["sessions", "new-key"]).stdout.strip()
    monkeypatch.setenv("ROUTING_RUNNER_SESSION_KEY", key)
    config = _config(tmp_path, "  backend: sqlite\n  encryption: {ttl: 7d}\n")
    assert "Soy spanish" in _chat(cli, config, "k", "Hola, ¿cómo estás?")
