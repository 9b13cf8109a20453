"""Conversations in one SQLite file on one machine (the SDK's SQLiteSession).

The file, its folder and SQLite's side files (-wal, -shm) are owner-only: conversations are
private. None of them may be a symlink or another user's file (private_files). WAL lets
`sessions show` read while a chat writes. A conversation is open in one process at a time
(stores.locks): two chats interleaving turns of one conversation would each answer from a
history missing the other's messages. Write transactions, the SDK's and ours, queue for the
database (stores.locks.queued_writes) instead of racing for SQLite's lock.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from routing_runner.errors import SessionInUseError, StoreError
from routing_runner.private_files import check_existing, create_private, private_folder
from routing_runner.stores.base import Lease, SessionStore, SessionSummary, TableNames
from routing_runner.stores.locks import queued_writes, try_lock
from routing_runner.stores.records import Mark, TurnHold, read_context, read_usage
from routing_runner.stores.sqlite_connection import StateConnection
from routing_runner.stores.turn_lock import holds, in_use, poll

if TYPE_CHECKING:
    from agents.memory import SessionABC, SQLiteSession

    from .encryption import SessionKey

T = TypeVar("T")
# SQLite's own wait for a lock another connection holds; the SDK's connections use the same
# (sqlite3.connect's default), so "busy" means another process held the file this long.
BUSY_TIMEOUT = 5.0
# A version-0 state row's CURRENT_TIMESTAMP text as seconds since the epoch.
_EPOCH = "CAST(coalesce(strftime('%s', updated_at), strftime('%s', 'now')) AS REAL)"


def _owner_only(path: Path) -> None:
    """Create `path` owner-only if missing; take group and other access away if present.

    SQLite creates the -wal and -shm files with the database file's permissions, so getting
    the database right covers them; existing side files are checked and fixed here too. SQLite
    follows symlinks, so each is checked (not a symlink, the user's own) before it opens them.

    An existing database is never opened here: closing any descriptor of the file drops every
    POSIX lock this process holds on it, including the locks of SQLite connections in use by
    other conversations, and unlocked writers corrupt the database.
    """
    create_private(path)
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if not check_existing(candidate):
                continue
            mode = stat.S_IMODE(os.lstat(candidate).st_mode)
            if mode & 0o077:
                os.chmod(candidate, mode & 0o700)
        except FileNotFoundError:
            # SQLite deletes the side files when another process's last connection closes,
            # which can happen between the check and the chmod: nothing is left to fix.
            continue


@cache
def _queued_session_class() -> type[SQLiteSession]:
    """The SDK's SQLiteSession with every write transaction queued (built on first use)."""
    from agents.memory import SQLiteSession

    class QueuedSQLiteSession(SQLiteSession):
        """An SDK session whose writes wait their turn in `queue` (stores.locks)."""

        def __init__(self, *args: Any, queue: Path, **kwargs: Any) -> None:
            self.queue = queue
            super().__init__(*args, **kwargs)

        @contextmanager
        def _write_connection(self) -> Iterator[sqlite3.Connection]:
            with queued_writes(self.queue), super()._write_connection() as conn:
                yield conn

    return QueuedSQLiteSession


def _give_back(attempt: asyncio.Future[Lease | None]) -> None:
    """Release the lease an abandoned lock attempt took, if it took one."""
    if not attempt.cancelled() and attempt.exception() is None and \
            (lease := attempt.result()) is not None:
        lease.release()


class _FileHold(TurnHold):
    """A turn's hold: the conversation's lock file, a chat's lease while the turn lasts."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease

    async def release(self) -> None:
        self.lease.release()


class SQLiteStore(SessionStore):
    """Conversations in one SQLite file, created owner-only, one process per conversation."""

    def __init__(self, path: Path, *, table_prefix: str | None = None,
                 encryption: SessionKey | None = None,
                 busy_timeout: float = BUSY_TIMEOUT, own_folder: bool = False) -> None:
        """A store in the file `path`.

        With `own_folder` the file's folder holds only routing-runner's files (the default data
        folder), so it is kept owner-only; another folder is created owner-only if missing.
        """
        super().__init__(encryption=encryption)
        self.path = path
        self.tables = TableNames.with_prefix(table_prefix)
        self.busy_timeout = busy_timeout
        self.description = f"sqlite {path}"
        if table_prefix:
            self.description += f" ({self.tables.describe()})"
        if encryption is not None:
            self.description += f", {encryption.describe()}"
        self._locks = Path(f"{path}-locks")
        self._sessions: list[SQLiteSession] = []
        try:
            private_folder(path.parent, ours=own_folder)
            private_folder(self._locks, ours=True)
            _owner_only(path)
            with queued_writes(self._locks), closing(self._connect()) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                self._create_state_table(conn)
        except (OSError, sqlite3.Error) as exc:
            if self._is_busy(exc):
                raise self._busy("open it") from exc
            raise StoreError(f"cannot open the session database {path}: {exc}") from exc
        self._state = StateConnection.share(path, busy_timeout)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) where they matter.
        return sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)

    def _create_state_table(self, conn: sqlite3.Connection) -> None:
        """Our state table; older ones are migrated in place.

        Version 0 kept the agent only (turns are counted from the items); version 1 had no
        owner column (its conversations stay unclaimed until a config writes to them), version
        2 no turn marker.
        """
        state = self.tables.state
        conn.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({state})")}
            if columns and "turns" not in columns:
                conn.execute(f"ALTER TABLE {state} RENAME TO {state}_v0")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {state} ("
                         "session_id TEXT PRIMARY KEY, active_agent TEXT, "
                         "turns INTEGER NOT NULL DEFAULT 0, "
                         "created_at REAL NOT NULL, updated_at REAL NOT NULL, owner TEXT, "
                         "context TEXT, pending INTEGER, usage TEXT)")
            if columns and "turns" not in columns:
                self._migrate_v0(conn)
            else:
                for name, kind in (("owner", "TEXT"), ("context", "TEXT"), ("pending", "INTEGER"),
                                   ("usage", "TEXT")):
                    if columns and name not in columns:
                        conn.execute(f"ALTER TABLE {state} ADD COLUMN {name} {kind}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _migrate_v0(self, conn: sqlite3.Connection) -> None:
        # Turns were not kept before: count the stored user messages instead.
        state, messages = self.tables.state, self.tables.messages
        has_messages = self._has_table(conn, messages)
        turns = (f"(SELECT COUNT(*) FROM {messages} m WHERE m.session_id = o.session_id "
                 "AND json_extract(m.message_data, '$.role') = 'user' "
                 "AND coalesce(json_extract(m.message_data, '$.type'), 'message') = 'message')"
                 if has_messages else "0")
        conn.execute(f"INSERT INTO {state} (session_id, active_agent, turns, created_at, "
                     f"updated_at) SELECT session_id, active_agent, {turns}, "
                     f"{_EPOCH}, {_EPOCH} FROM {state}_v0 o")
        conn.execute(f"DROP TABLE {state}_v0")

    @staticmethod
    def _has_table(conn: sqlite3.Connection, name: str) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (name,)).fetchone() is not None

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, writes: bool = False) -> T:
        """`work` on the state connection in a worker thread: a wait never blocks the loop."""
        return await asyncio.to_thread(self._state.run, work, self._locks if writes else None)

    async def _try_lock(self, session_id: str) -> Lease | None:
        attempt = asyncio.ensure_future(asyncio.to_thread(try_lock, self._locks, session_id))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # The thread may take the lock yet (the waiting client left): given back, not leaked.
            attempt.add_done_callback(_give_back)
            raise
        except OSError as exc:
            raise StoreError(f"cannot lock conversation {session_id!r} in {self._locks}: "
                             f"{exc}") from exc

    async def _acquire(self, session_id: str) -> Lease:
        if holds(self, session_id):  # a turn of ours has it (serve deleting it, say)
            return Lease()
        lease = await self._try_lock(session_id)
        if lease is None:
            raise SessionInUseError(
                f"conversation {session_id!r} is in use by another process ({self.description});"
                " end that chat first, or continue with another session id")
        return lease

    async def _lock_turn(self, session_id: str, wait: float) -> TurnHold:
        lease = await poll(functools.partial(self._try_lock, session_id), wait)
        if lease is None:
            raise in_use(self, session_id, wait)
        return _FileHold(lease)

    async def _session(self, session_id: str) -> SessionABC:
        session = await asyncio.to_thread(
            _queued_session_class(), session_id, self.path, sessions_table=self.tables.sessions,
            messages_table=self.tables.messages, queue=self._locks)
        self._sessions.append(session)
        return session

    async def _summary(self, session_id: str) -> SessionSummary | None:
        def read(conn: sqlite3.Connection) -> SessionSummary | None:
            row = conn.execute(f"SELECT active_agent, turns, updated_at, owner, context, pending, "
                               f"usage FROM "
                               f"{self.tables.state} WHERE session_id = ?",
                               (session_id,)).fetchone()
            if row is not None:
                return SessionSummary(session_id, row[0], max(row[1], 0), row[2], row[3],
                                      read_context(row[4]), row[5], read_usage(row[6]))
            if self._has_table(conn, self.tables.sessions) and conn.execute(
                    f"SELECT 1 FROM {self.tables.sessions} WHERE session_id = ?",
                    (session_id,)).fetchone():
                return SessionSummary(session_id)
            return None

        return await self._run(read)

    async def _write_state(self, session_id: str, *, agent: str | None, turns: int,
                           mark: Mark | int = Mark.KEEP) -> None:
        now = time.time()
        # The marker counts the items in the same statement, so no other write comes between.
        pending, args = ("NULL", ()) if isinstance(mark, Mark) else (
            f"(SELECT COUNT(*) FROM {self.tables.messages} WHERE session_id = ?) - ?",
            (session_id, mark))
        kept = "pending" if mark is Mark.KEEP else "excluded.pending"

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO {self.tables.state} (session_id, active_agent, turns, created_at, "
                f"updated_at, owner, pending) VALUES (?, ?, max(?, 0), ?, ?, ?, {pending}) "
                "ON CONFLICT(session_id) DO UPDATE SET "
                "active_agent = coalesce(excluded.active_agent, active_agent), "
                "turns = max(turns + ?, 0), updated_at = excluded.updated_at, "
                f"owner = coalesce(owner, excluded.owner), pending = {kept}",
                (session_id, agent, turns, now, now, self.owner, *args, turns))

        await self._run(write, writes=True)

    async def _write_context(self, session_id: str, context: str, *,
                             column: str = "context") -> None:
        now = time.time()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO {self.tables.state} (session_id, turns, created_at, updated_at, "
                f"owner, {column}) VALUES (?, 0, ?, ?, ?, ?) ON CONFLICT(session_id) DO UPDATE "
                f"SET {column} = excluded.{column}, updated_at = excluded.updated_at, "
                "owner = coalesce(owner, excluded.owner)",
                (session_id, now, now, self.owner, context))

        await self._run(write, writes=True)

    async def _raw_rows(self, session_id: str) -> list[tuple[Any, str | bytes]]:
        def read(conn: sqlite3.Connection) -> list[tuple[Any, str | bytes]]:
            if not self._has_table(conn, self.tables.messages):
                return []
            return list(conn.execute(f"SELECT id, message_data FROM {self.tables.messages} "
                                     "WHERE session_id = ? ORDER BY id", (session_id,)))

        return await self._run(read)

    async def _raw_tail(self, session_id: str,
                        last: int) -> tuple[int, list[tuple[Any, str | bytes]]]:
        def read(conn: sqlite3.Connection) -> tuple[int, list[tuple[Any, str | bytes]]]:
            if not self._has_table(conn, self.tables.messages):
                return 0, []
            table = self.tables.messages
            (stored,) = conn.execute(f"SELECT count(*) FROM {table} WHERE session_id = ?",
                                     (session_id,)).fetchone()
            rows = list(conn.execute(f"SELECT id, message_data FROM {table} WHERE session_id "
                                     "= ? ORDER BY id DESC LIMIT ?", (session_id, last)))
            return stored - len(rows), rows[::-1]

        return await self._run(read)

    async def _drop_rows(self, session_id: str, keys: list[Any]) -> None:
        def drop(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"DELETE FROM {self.tables.messages} WHERE session_id = ? AND id = ?",
                             [(session_id, key) for key in keys])
            conn.execute("COMMIT")  # a failure is rolled back by the state connection's run

        await self._run(drop)

    async def _list(self) -> list[SessionSummary]:
        def read(conn: sqlite3.Connection) -> list[SessionSummary]:
            found = {row[0]: SessionSummary(row[0], row[1], max(row[2], 0), row[3], row[4])
                     for row in conn.execute("SELECT session_id, active_agent, turns, "
                                             f"updated_at, owner FROM {self.tables.state}")}
            if self._has_table(conn, self.tables.sessions):
                for (session_id,) in conn.execute(
                        f"SELECT session_id FROM {self.tables.sessions}"):
                    found.setdefault(session_id, SessionSummary(session_id))
            return list(found.values())

        return await self._run(read)

    async def _delete(self, session_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = 0
                for table in (self.tables.messages, self.tables.sessions, self.tables.state):
                    if self._has_table(conn, table):
                        deleted += conn.execute(f"DELETE FROM {table} WHERE session_id = ?",
                                                (session_id,)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return deleted > 0

        return await self._run(delete, writes=True)

    @staticmethod
    def _is_busy(exc: Exception) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc))

    def _busy(self, doing: str) -> StoreError:
        return StoreError(
            f"the session database {self.path} is busy: another process kept it locked for "
            f"more than {self.busy_timeout:g} s, so this process could not {doing}; try again")

    def _store_error(self, exc: Exception, doing: str) -> StoreError | None:
        if self._is_busy(exc):
            return self._busy(doing)
        if isinstance(exc, sqlite3.Error | OSError):
            return StoreError(f"cannot {doing} in the session database {self.path}: {exc}")
        return None

    async def _close(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._state.release()
