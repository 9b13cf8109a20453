"""Stores at the edges: conversations scoped to their config, unsafe paths refused."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
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
        monkeypatch.setenv("DATABASE_URL", services.POSTGRES_URL)
        with services.postgres_prefix() as prefix:
            yield f"  backend: sqlalchemy\n  table_prefix: {prefix}\n"
    else:
        monkeypatch.setenv("REDIS_URL", services.REDIS_URL)
        with services.redis_prefix() as prefix:
            yield f"  backend: redis\n  key_prefix: {prefix}\n"


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


async def _forget_owners(session_block: str, database: Path) -> None:
    """Make the store look as an earlier version left it: no owner anywhere."""
    prefix = session_block.rsplit(": ", 1)[-1].strip()
    if "sqlalchemy" in session_block:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(services.POSTGRES_URL)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(
                    f"ALTER TABLE {prefix}_routing_runner_state DROP COLUMN owner"))
        finally:
            await engine.dispose()
    elif "redis" in session_block:
        import redis.asyncio

        client = redis.asyncio.from_url(services.REDIS_URL)
        try:
            async for key in client.scan_iter(match=f"{prefix}:*:state"):
                await client.hdel(key, "owner")
        finally:
            await client.aclose()
    else:
        with closing(sqlite3.connect(database)) as conn:
            conn.execute("ALTER TABLE routing_runner_state DROP COLUMN owner")


def test_conversations_stored_before_owners_stay_usable_and_are_claimed_on_resume(
        cli: CliRunner, tmp_path: Path, isolated_environment: Path, shared_store: str) -> None:
    bot_a, bot_b = _bot(tmp_path, "Bot A", shared_store), _bot(tmp_path, "Bot B", shared_store)
    _chat(cli, bot_a, "old", "Hola, ¿cómo estás?")
    asyncio.run(_forget_owners(shared_store,
                               isolated_environment / "routing-runner" / "sessions.db"))

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
            f"{config}:{line}:9: session.path: a path cannot contain a NUL character "
            "(is there a stray \\0 escape?)")
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_nul_byte_from_the_environment_in_session_path_is_a_config_error(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _bot(tmp_path, "Bot", '  backend: sqlite\n  path: "${DB:-a\\0b.db}"\n')
    result = cli.invoke(app, ["chat", str(config), "-m", "Hola"])
    assert result.exit_code == 2, result.output
    assert "session.path: a path cannot contain a NUL character" in result.stderr
    assert "Traceback" not in result.output


# -- store paths: no symlinks, no other user's files, owner-only ---------------------------

def _store_bot(folder: Path) -> Path:
    return _bot(folder, "Bot", "  backend: sqlite\n  path: store/sessions.db\n")


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    victim.chmod(0o644)
    return victim


def _assert_untouched(victim: Path) -> None:
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert victim.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("name", ["sessions.db", "sessions.db-wal", "sessions.db-shm",
                                  "sessions.db-locks/talk.lock",
                                  "sessions.db-locks/.writes.lock"])
def test_a_symlink_at_a_store_path_is_refused_and_its_target_untouched(
        cli: CliRunner, tmp_path: Path, name: str) -> None:
    config = _store_bot(tmp_path)
    link = tmp_path / "store" / name
    link.parent.mkdir(parents=True, exist_ok=True)
    victim = _victim(tmp_path)
    link.symlink_to(victim)

    result = cli.invoke(app, ["chat", str(config), "-s", "talk", "-m", "Hola"])

    assert result.exit_code == 3, result.output
    [message] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"refusing to use {link}: it is a symbolic link" in message
    assert "Traceback" not in result.output
    _assert_untouched(victim)


def test_a_symlinked_data_folder_is_refused(
        cli: CliRunner, tmp_path: Path, isolated_environment: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    isolated_environment.mkdir()
    (isolated_environment / "routing-runner").symlink_to(elsewhere)

    result = cli.invoke(app, ["chat", str(_bot(tmp_path, "Bot")), "-m", "Hola"])

    assert result.exit_code == 3, result.output
    assert (f"refusing to use {isolated_environment / 'routing-runner'}: it is a symbolic link"
            in result.stderr)
    assert list(elsewhere.iterdir()) == []


def test_a_configured_folder_may_be_reached_through_a_symlink(
        cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "disk")
    config = _bot(tmp_path, "Bot", "  backend: sqlite\n  path: linked/sessions.db\n")
    _chat(cli, config, "talk", "Hola")
    assert (tmp_path / "disk" / "sessions.db").stat().st_mode & 0o777 == 0o600


def test_the_data_folder_and_the_parents_it_needs_are_created_owner_only(
        cli: CliRunner, tmp_path: Path, isolated_environment: Path) -> None:
    _chat(cli, _bot(tmp_path, "Bot"), "talk", "Hola")
    data = isolated_environment / "routing-runner"
    for folder in (isolated_environment, data, data / "sessions.db-locks"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    for file in data.glob("sessions.db*"):
        if file.is_file():
            assert file.stat().st_mode & 0o777 == 0o600, file


def test_a_loose_data_folder_is_tightened(
        cli: CliRunner, tmp_path: Path, isolated_environment: Path) -> None:
    data = isolated_environment / "routing-runner"
    data.mkdir(parents=True)
    data.chmod(0o755)
    _chat(cli, _bot(tmp_path, "Bot"), "talk", "Hola")
    assert data.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_database_of_another_user_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    config = _store_bot(tmp_path)
    database = tmp_path / "store" / "sessions.db"
    database.parent.mkdir()
    sqlite3.connect(database).close()
    os.chown(database, 65534, 65534)

    result = cli.invoke(app, ["chat", str(config), "-m", "Hola"])

    assert result.exit_code == 3, result.output
    assert f"refusing to use {database}: it belongs to another user (uid 65534)" \
        in result.stderr


@pytest.mark.parametrize("option", ["--json", "--junit"])
def test_a_replay_report_is_owner_only_and_never_written_through_a_symlink(
        cli: CliRunner, tmp_path: Path, option: str) -> None:
    config = _bot(tmp_path, "Bot")
    transcript = REPO / "configs" / "transcripts"
    report = tmp_path / "report.out"
    written = cli.invoke(app, ["replay", str(config), str(transcript), option, str(report)])
    assert written.exit_code == 0, written.output
    assert report.stat().st_mode & 0o777 == 0o600

    link = tmp_path / "link.out"
    victim = _victim(tmp_path)
    link.symlink_to(victim)
    refused = cli.invoke(app, ["replay", str(config), str(transcript), option, str(link)])
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.splitlines() == [
        f"error: {option} refusing to use {link}: it is a symbolic link, and routing-runner "
        "never writes through one; remove it, or choose another path"]
    _assert_untouched(victim)


def test_a_chat_record_is_owner_only_and_a_symlink_there_is_refused(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _bot(tmp_path, "Bot")
    record = tmp_path / "recorded.yaml"
    result = cli.invoke(app, ["chat", str(config), "--record", str(record), "-m", "Hola"])
    assert result.exit_code == 0, result.output
    assert record.stat().st_mode & 0o777 == 0o600

    link = tmp_path / "dangling.yaml"
    link.symlink_to(tmp_path / "nowhere.yaml")
    refused = cli.invoke(app, ["chat", str(config), "--record", str(link), "-m", "Hola"])
    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[-1] == \
        f"error: --record {link}: the file exists; choose a new name"
    assert not (tmp_path / "nowhere.yaml").exists()


# -- concurrent writers ---------------------------------------------------------------------

WRITER = """
import asyncio, sys
from pathlib import Path
from routing_runner.errors import StoreError
from routing_runner.stores.sqlite import SQLiteStore

async def conversation(db, timeout, session_id, turns, errors):
    for turn in range(turns):
        try:
            store = SQLiteStore(db, busy_timeout=timeout)
        except StoreError as error:
            errors.append(str(error))
            continue
        try:
            conversation = await store.open(session_id)
            conversation.begin_turn()
            await conversation.session.add_items([{"role": "user", "content": f"turn {turn}"}])
            await conversation.session.add_items(
                [{"role": "assistant", "type": "message", "content": "ok"}])
            await conversation.set_active_agent("agent")
        except StoreError as error:
            errors.append(str(error))
        finally:
            await store.close()

async def main(db, timeout, worker, count, turns):
    errors = []
    await asyncio.gather(*(conversation(db, timeout, f"{worker}-{n}", turns, errors)
                           for n in range(count)))
    print("\\n".join(errors))

asyncio.run(main(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                 int(sys.argv[5])))
"""


def test_concurrent_writer_processes_wait_for_each_other_and_never_see_a_busy_store(
        tmp_path: Path) -> None:
    # SQLite's busy handler alone lets writers starve: with a 0.02 s timeout it gave up
    # about ten times in a run like this one. Queued writers never give up, however short.
    database = tmp_path / "sessions.db"
    workers = [subprocess.Popen([sys.executable, "-c", WRITER, str(database), "0.02", f"w{n}",
                                 "6", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for n in range(4)]
    outputs = [worker.communicate(timeout=600) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0, 0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["", "", "", ""]
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM agent_messages").fetchone() == (4 * 6 * 5 * 2,)
        assert conn.execute("SELECT SUM(turns) FROM routing_runner_state").fetchone() == (
            4 * 6 * 5,)
