"""Conversations in any SQLAlchemy async database (the SDK's SQLAlchemySession), shared by workers.

Any number of processes can serve the same conversations: every turn reads the history and
the last agent from the database, and the SDK serializes writes to one conversation with a row
lock. Tables are created on first use; on PostgreSQL an advisory lock keeps two workers that
start together from racing to create them. The URL comes from an environment variable and is
only ever shown with its password hidden.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from routing_runner.errors import StoreError
from routing_runner.stores.base import SessionStore, SessionSummary, TableNames, require_extra
from routing_runner.stores.records import Mark, TurnHold, read_context, read_usage
from routing_runner.stores.turn_lock import in_use
from routing_runner.wording import redact_url

if TYPE_CHECKING:
    from agents.memory import SessionABC
    from sqlalchemy import Connection, TableClause
    from sqlalchemy.ext.asyncio import AsyncEngine

    from .encryption import SessionKey

# pg_advisory_lock key serializing table creation across workers ("rr-schema" in ASCII).
SCHEMA_LOCK_KEY = 0x72722D736368656D
CONNECT_TIMEOUT = 10
ROW_LOCK_TTL = 15.0  # seconds a lock row outlives its holder's last renewal (not PostgreSQL)


def _engine(url: str, **pool: Any) -> AsyncEngine:
    """An async engine for `url` (`pool`: options of its pool); postgres:// URLs use asyncpg."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchModuleError
    from sqlalchemy.ext.asyncio import create_async_engine

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError("the session database URL is not a URL SQLAlchemy understands "
                         "(expected e.g. postgresql+asyncpg://user@host/db)") from None
    if parsed.drivername in ("postgres", "postgresql"):
        # DATABASE_URL is conventionally postgres://...; the async driver is implied.
        parsed = parsed.set(drivername="postgresql+asyncpg")
    connect_args: dict[str, Any] = {}
    if parsed.drivername == "postgresql+asyncpg":
        # asyncpg waits 60 s for an unreachable host by default; fail sooner.
        connect_args["timeout"] = CONNECT_TIMEOUT
    try:
        return create_async_engine(parsed, connect_args=connect_args, pool_pre_ping=True, **pool)
    except (NoSuchModuleError, InvalidRequestError, ImportError) as exc:
        shown = redact_url(parsed.render_as_string(hide_password=False))
        raise StoreError(f"cannot use the session database {shown}: {exc}; the URL needs an "
                         "async driver, such as postgresql+asyncpg://") from None


class SQLAlchemyStore(SessionStore):
    """Conversations in a SQL database reached through SQLAlchemy's asyncio engine."""

    def __init__(self, url: str, *, table_prefix: str | None = None,
                 encryption: SessionKey | None = None) -> None:
        require_extra("sqlalchemy", "sqlalchemy", "the sqlalchemy session backend")
        from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

        super().__init__(encryption=encryption)
        self.tables = TableNames.with_prefix(table_prefix)
        self._engine = _engine(url)
        self._url = url
        self._lock_engine: AsyncEngine | None = None  # turn locks' connections (sql_lock)
        shown = redact_url(self._engine.url.render_as_string(hide_password=False))
        self.description = f"{shown} ({self.tables.describe()})"
        if encryption is not None:
            self.description += f", {encryption.describe()}"
        self._metadata = MetaData()
        self._state = Table(
            self.tables.state, self._metadata,
            Column("session_id", String(128), primary_key=True),
            Column("active_agent", String(128), nullable=True),
            Column("turns", Integer, nullable=False, default=0),
            Column("created_at", Float, nullable=False),
            Column("updated_at", Float, nullable=False),
            Column("owner", String(256), nullable=True),
            Column("context", Text, nullable=True),
            Column("pending", Integer, nullable=True),
            Column("usage", Text, nullable=True),
        )
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()
        self.lock_ttl = ROW_LOCK_TTL
        # Lock rows, for dialects without advisory locks (sql_lock); its own metadata, so the
        # table exists only where it is used.
        self._locks = Table(
            f"{self.tables.state.removesuffix('state')}locks", MetaData(),
            Column("session_id", String(128), primary_key=True),
            Column("token", String(32), nullable=False),
            Column("expires_at", Float, nullable=False))
        self._locks_ready = False

    def _sdk_tables(self) -> tuple[TableClause, TableClause]:
        """Just the columns of the SDK's tables that listing, reading rows and deleting need."""
        from sqlalchemy import column, table

        return (table(self.tables.sessions, column("session_id")),
                table(self.tables.messages, column("session_id"), column("id"),
                      column("message_data")))

    async def _ensure_schema(self) -> None:
        """Create the SDK's tables and ours once, one worker at a time."""
        if self._schema_ready:
            return
        from sqlalchemy import text
        from sqlalchemy.exc import DatabaseError

        async with self._schema_lock:
            if self._schema_ready:
                return
            async with self._engine.connect() as guard:
                postgres = guard.dialect.name == "postgresql"
                if postgres:
                    await guard.execute(text("SELECT pg_advisory_lock(:key)"),
                                        {"key": SCHEMA_LOCK_KEY})
                try:
                    try:
                        await self._create_tables()
                    except DatabaseError as exc:
                        # Without an advisory lock (not PostgreSQL) two workers starting together
                        # may both create a table: the loser finds it there on a second look.
                        if postgres or "already exists" not in str(exc):
                            raise
                        await self._create_tables()
                finally:
                    if postgres:
                        await guard.execute(text("SELECT pg_advisory_unlock(:key)"),
                                            {"key": SCHEMA_LOCK_KEY})
                        await guard.commit()
            self._schema_ready = True

    async def _create_tables(self) -> None:
        from agents.extensions.memory import SQLAlchemySession

        # The SDK creates its own tables on first use; a read is first use.
        probe = SQLAlchemySession(
            "schema-probe", engine=self._engine, create_tables=True,
            sessions_table=self.tables.sessions, messages_table=self.tables.messages)
        await probe.get_items(limit=1)
        async with self._engine.begin() as conn:
            await conn.run_sync(self._metadata.create_all)
            await conn.run_sync(self._add_new_columns)

    def _add_new_columns(self, conn: Connection) -> None:
        """Give a state table from before owners (or turn markers) were kept those columns."""
        from sqlalchemy import inspect, text

        columns = {c["name"] for c in inspect(conn).get_columns(self.tables.state)}
        for name, kind in (("owner", "VARCHAR(256)"), ("context", "TEXT"),
                           ("pending", "INTEGER"), ("usage", "TEXT")):
            if name not in columns:
                conn.execute(text(f"ALTER TABLE {self.tables.state} ADD COLUMN {name} {kind}"))

    async def _check(self) -> None:
        await self._ensure_schema()

    async def _session(self, session_id: str) -> SessionABC:
        from agents.extensions.memory import SQLAlchemySession

        await self._ensure_schema()
        return SQLAlchemySession(session_id, engine=self._engine, create_tables=False,
                                 sessions_table=self.tables.sessions,
                                 messages_table=self.tables.messages)

    async def _summary(self, session_id: str) -> SessionSummary | None:
        from sqlalchemy import select

        await self._ensure_schema()
        sessions, _ = self._sdk_tables()
        state = self._state
        async with self._engine.connect() as conn:
            row = (await conn.execute(
                select(state.c.active_agent, state.c.turns, state.c.updated_at, state.c.owner,
                       state.c.context, state.c.pending, state.c.usage)
                .where(state.c.session_id == session_id))).first()
            if row is not None:
                return SessionSummary(session_id, row[0], max(row[1], 0), row[2], row[3],
                                      read_context(row[4]), row[5], read_usage(row[6]))
            known = (await conn.execute(select(sessions.c.session_id)
                                        .where(sessions.c.session_id == session_id))).first()
        return SessionSummary(session_id) if known is not None else None

    async def _write_state(self, session_id: str, *, agent: str | None, turns: int,
                           mark: Mark | int = Mark.KEEP) -> None:
        from sqlalchemy import func, select

        await self._ensure_schema()
        state = self._state
        changes: dict[str, Any] = {"turns": state.c.turns + turns}
        pending: Any = None
        if isinstance(mark, int):  # counted in the same statement: no write comes between
            _, messages = self._sdk_tables()
            pending = select(func.count()).select_from(messages).where(
                messages.c.session_id == session_id).scalar_subquery() - mark
        if mark is not Mark.KEEP:
            changes["pending"] = pending
        if agent is not None:
            changes["active_agent"] = agent
        await self._upsert(session_id, changes,
                           {"active_agent": agent, "turns": max(turns, 0), "pending": pending})

    async def _write_context(self, session_id: str, context: str, *,
                             column: str = "context") -> None:
        await self._upsert(session_id, {column: context}, {"turns": 0, column: context})

    async def _upsert(self, session_id: str, changes: dict[str, Any],
                      inserted: dict[str, Any]) -> None:
        """Apply `changes` to the state row, or insert one with `inserted`; both touch the time."""
        from sqlalchemy import func, insert, update
        from sqlalchemy.exc import IntegrityError

        await self._ensure_schema()
        state = self._state
        now = time.time()
        changes = {**changes, "updated_at": now}
        if self.owner is not None:
            changes["owner"] = func.coalesce(state.c.owner, self.owner)
        change = update(state).where(state.c.session_id == session_id).values(changes)
        # Update, else insert: portable across dialects (no dialect-specific upsert), and a
        # worker that loses the insert race to another just updates the row that one made.
        async with self._engine.begin() as conn:
            if (await conn.execute(change)).rowcount:
                return
            try:
                async with conn.begin_nested():
                    await conn.execute(insert(state).values(
                        session_id=session_id, created_at=now, updated_at=now, owner=self.owner,
                        **inserted))
            except IntegrityError:
                await conn.execute(change)

    async def _lock_turn(self, session_id: str, wait: float) -> TurnHold:
        from .sql_lock import advisory_hold, lock_key, row_hold

        doing = f"lock conversation {session_id!r}"
        hold: TurnHold | None
        if self._engine.dialect.name != "postgresql":
            await self.guarded(self._ensure_lock_table(), doing)
            hold = await self.guarded(row_hold(self._engine, self._locks, session_id, wait,
                                               self.lock_ttl), doing)
        else:
            if self._lock_engine is None:
                # Unbounded: each held lock keeps a connection, as many as turns run at once.
                self._lock_engine = _engine(self._url, max_overflow=-1)
            hold = await self.guarded(advisory_hold(
                self._lock_engine, lock_key(self.tables.state, session_id), wait), doing)
        if hold is None:
            raise in_use(self, session_id, wait)
        return hold

    async def _ensure_lock_table(self) -> None:
        """The table of lock rows (other dialects than PostgreSQL), created on first use."""
        await self._ensure_schema()
        if not self._locks_ready:
            async with self._engine.begin() as conn:
                await conn.run_sync(self._locks.metadata.create_all)
            self._locks_ready = True

    async def _raw_rows(self, session_id: str) -> list[tuple[Any, str | bytes]]:
        from sqlalchemy import select

        await self._ensure_schema()
        _, messages = self._sdk_tables()
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(messages.c.id, messages.c.message_data)
                                      .where(messages.c.session_id == session_id)
                                      .order_by(messages.c.id))
            return [(row[0], row[1]) for row in rows]

    async def _raw_tail(self, session_id: str,
                        last: int) -> tuple[int, list[tuple[Any, str | bytes]]]:
        from sqlalchemy import func, select

        await self._ensure_schema()
        _, messages = self._sdk_tables()
        mine = messages.c.session_id == session_id
        async with self._engine.connect() as conn:
            stored = (await conn.execute(select(func.count()).where(mine))).scalar_one()
            rows = await conn.execute(select(messages.c.id, messages.c.message_data).where(mine)
                                      .order_by(messages.c.id.desc()).limit(last))
            tail = [(row[0], row[1]) for row in rows][::-1]
            return stored - len(tail), tail

    async def _drop_rows(self, session_id: str, keys: list[Any]) -> None:
        from sqlalchemy import delete

        _, messages = self._sdk_tables()
        async with self._engine.begin() as conn:
            await conn.execute(delete(messages).where(messages.c.session_id == session_id,
                                                      messages.c.id.in_(keys)))

    async def _list(self) -> list[SessionSummary]:
        from sqlalchemy import select

        await self._ensure_schema()
        sessions, _ = self._sdk_tables()
        state = self._state
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(state.c.session_id, state.c.active_agent,
                                             state.c.turns, state.c.updated_at, state.c.owner))
            found = {r[0]: SessionSummary(r[0], r[1], max(r[2], 0), r[3], r[4]) for r in rows}
            for (session_id,) in await conn.execute(select(sessions.c.session_id)):
                found.setdefault(session_id, SessionSummary(session_id))
        return list(found.values())

    async def _delete(self, session_id: str) -> bool:
        from sqlalchemy import delete

        await self._ensure_schema()
        sessions, messages = self._sdk_tables()
        deleted = 0
        async with self._engine.begin() as conn:
            for table in (messages, sessions, self._state):
                result = await conn.execute(
                    delete(table).where(table.c.session_id == session_id))
                deleted += result.rowcount
        return deleted > 0

    def _store_error(self, exc: Exception, doing: str) -> StoreError | None:
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        if isinstance(exc, OSError | TimeoutError) or (
                isinstance(exc, DBAPIError) and exc.connection_invalidated):
            return StoreError(f"cannot reach the session database {self.description}: "
                              f"{exc or type(exc).__name__}")
        if isinstance(exc, DBAPIError):
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            return StoreError(f"cannot {doing} in the session database "
                              f"{self.description}: {reason}")
        if isinstance(exc, SQLAlchemyError):
            return StoreError(f"cannot {doing} in the session database "
                              f"{self.description}: {str(exc).splitlines()[0]}")
        return None

    async def _close(self) -> None:
        await self._engine.dispose()
        if self._lock_engine is not None:
            await self._lock_engine.dispose()
