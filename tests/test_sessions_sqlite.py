"""The default SQLite store: owner-only files, safe ids, the last agent kept."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from routing_runner.errors import SessionIdError
from routing_runner.sessions import SQLiteStore, check_session_id, new_session_id


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
