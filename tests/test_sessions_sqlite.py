"""The default SQLite store: owner-only files, one process per conversation, clear errors."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from routing_runner.errors import SessionIdError, SessionInUseError, StoreError
from routing_runner.stores.base import SQLiteStore, check_session_id, new_session_id


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_side_files_and_folder_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "new-folder" / "sessions.db"

    async def write() -> None:
        store = SQLiteStore(db)
        conversation = await store.open("abc")
        await conversation.session.add_items([{"role": "user", "content": "hi"}])
        # Side files exist while the connection is open.
        assert _mode(Path(f"{db}-wal")) == 0o600
        assert _mode(Path(f"{db}-shm")) == 0o600
        await store.close()

    asyncio.run(write())
    assert _mode(db) == 0o600
    assert _mode(db.parent) == 0o700


def test_the_last_agent_survives_reopening_the_store(tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, str | None, bool]:
        store = SQLiteStore(tmp_path / "s.db")
        conversation = await store.open("abc")
        await conversation.session.add_items([{"role": "user", "content": "hi"}])
        await conversation.set_active_agent("french")
        await store.close()
        reopened = SQLiteStore(tmp_path / "s.db")
        again = await reopened.open("abc")
        result = (conversation.is_new, await again.get_active_agent(), again.is_new)
        await reopened.close()
        return result

    assert asyncio.run(scenario()) == (True, "french", False)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "x;DROP TABLE", "-flag", "a" * 129, "é"])
def test_unsafe_session_ids_are_refused(bad: str) -> None:
    with pytest.raises(SessionIdError):
        check_session_id(bad)


def test_new_session_ids_are_random_and_valid() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(check_session_id(i) == i for i in ids)


def test_an_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    from routing_runner.errors import StoreError

    with pytest.raises(StoreError, match="cannot open the session database"):
        SQLiteStore(blocker / "sessions.db")


def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "s.db")
    with closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_existing_database_readable_by_others_is_made_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    db.touch()
    db.chmod(0o644)  # as an older version or another tool may have left it
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        # Another connection in WAL mode: its side files exist, 0644 like the database.
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE t (x)")
        side_files = [Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert [_mode(p) for p in side_files] == [0o644] * 2
        SQLiteStore(db)
        assert [_mode(p) for p in (db, *side_files)] == [0o600] * 3


def test_a_conversation_is_open_in_one_place_at_a_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        first, second = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
        await first.open("abc")
        with pytest.raises(SessionInUseError, match="conversation 'abc' is in use by another "
                                                    "process") as raised:
            await second.open("abc")
        assert raised.value.exit_code == 3
        with pytest.raises(SessionInUseError):
            await second.delete("abc")
        await second.open("other")  # other conversations are free
        await first.close()
        await second.open("abc")  # free again once the first chat ended
        await second.close()

    asyncio.run(scenario())


def test_the_lock_file_is_owner_only_and_goes_with_the_conversation(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "s.db")
        conversation = await store.open("abc")
        await conversation.session.add_items([{"role": "user", "content": "hi"}])
        lock = tmp_path / "s.db-locks" / "abc.lock"
        assert (_mode(lock), _mode(lock.parent)) == (0o600, 0o700)
        await store.close()
        assert await store.delete("abc")
        assert not lock.exists()

    asyncio.run(scenario())


def test_a_busy_database_is_a_clear_store_error(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SQLiteStore(db, busy_timeout=0.2)
    with closing(sqlite3.connect(db, isolation_level=None)) as blocker:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match=r"the session database .* is busy: another "
                                             r"process kept it locked for more than 0.2 s, so "
                                             r"this process could not save the last agent"):
            asyncio.run(store.set_active_agent("abc", "french"))
        with pytest.raises(StoreError, match="is busy"):
            SQLiteStore(db, busy_timeout=0.2)


def test_an_sdk_error_during_a_turn_becomes_a_store_error(tmp_path: Path) -> None:
    from agents.memory import SessionABC

    class Locked(SessionABC):
        session_id = "abc"

        async def get_items(self, limit: int | None = None) -> list[Any]:
            raise sqlite3.OperationalError("database is locked")

        async def add_items(self, items: list[Any]) -> None:
            raise sqlite3.OperationalError("database is locked")

        async def pop_item(self) -> Any:
            raise sqlite3.OperationalError("disk I/O error")

        async def clear_session(self) -> None:
            pass

    from routing_runner.stores.journal import JournaledSession

    store = SQLiteStore(tmp_path / "s.db")
    session = JournaledSession(Locked(), store, "abc")
    with pytest.raises(StoreError, match=r"is busy: .* could not read conversation 'abc'"):
        asyncio.run(session.get_items())
    with pytest.raises(StoreError, match=r"is busy: .* could not save conversation 'abc'"):
        asyncio.run(session.add_items([{"role": "user", "content": "hi"}]))
    with pytest.raises(StoreError, match=r"cannot roll back conversation 'abc' in the session "
                                         r"database .*: disk I/O error"):
        asyncio.run(session.pop_item())


def test_a_version_0_state_table_is_migrated_with_its_turns(tmp_path: Path) -> None:
    db = tmp_path / "s.db"

    async def old_conversation() -> None:
        store = SQLiteStore(db)
        conversation = await store.open("old")
        await conversation.session.add_items([
            {"role": "user", "content": "one"}, {"role": "assistant", "content": "1"},
            {"role": "user", "content": "two"}])
        await store.close()

    asyncio.run(old_conversation())
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DROP TABLE routing_runner_state")
        conn.execute("CREATE TABLE routing_runner_state (session_id TEXT PRIMARY KEY, "
                     "active_agent TEXT NOT NULL, updated_at TIMESTAMP DEFAULT "
                     "CURRENT_TIMESTAMP)")
        conn.execute("INSERT INTO routing_runner_state (session_id, active_agent) "
                     "VALUES ('old', 'french')")

    summary = asyncio.run(SQLiteStore(db).summary("old"))
    assert summary is not None
    assert (summary.last_agent, summary.turns) == ("french", 2)
    assert summary.last_activity is not None and summary.last_activity > 1e9


def test_table_prefixes_keep_two_bots_apart_in_one_file(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        one = SQLiteStore(tmp_path / "s.db", table_prefix="one")
        two = SQLiteStore(tmp_path / "s.db", table_prefix="two")
        conversation = await one.open("abc")
        await conversation.session.add_items([{"role": "user", "content": "hi"}])
        await one.close()
        return ([s.session_id for s in await one.list_sessions()],
                [s.session_id for s in await two.list_sessions()])

    assert asyncio.run(scenario()) == (["abc"], [])
    with closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"one_agent_sessions", "one_agent_messages", "one_routing_runner_state"} <= tables


def test_opening_a_store_keeps_the_locks_other_connections_of_the_process_hold(
        tmp_path: Path) -> None:
    # Closing any descriptor of a SQLite file drops all of the process's POSIX locks on it.
    # A store that opened the file to set its permissions dropped the shared lock of every
    # connection in use, so another process could checkpoint and reset the WAL under them:
    # batches over several workers corrupted the database.
    import subprocess
    import sys

    db = tmp_path / "s.db"
    asyncio.run(SQLiteStore(db).close())
    probe = ("import fcntl, os, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n"
             "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002)\n"
             "    print('free')\n"
             "except OSError:\n"
             "    print('held')\n")
    with closing(sqlite3.connect(db)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM sqlite_master").fetchall()  # holds SQLite's shared lock
        asyncio.run(SQLiteStore(db).close())  # another conversation's store, same process
        seen = subprocess.run([sys.executable, "-c", probe, str(db)], capture_output=True,
                              text=True, timeout=60).stdout.strip()
    assert seen == "held"
