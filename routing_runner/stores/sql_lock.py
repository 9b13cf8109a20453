"""A conversation's turn lock in a SQL database: an advisory lock on PostgreSQL, else a lock row.

The lock belongs to the database connection that took it, so it lives exactly as long as the
holder's connection: a worker killed mid-turn closes its socket (the kernel does), the server
ends that backend and the lock is free for the next turn at once, with no expiry to wait for. A
waiter blocks in the server's lock queue (`pg_advisory_lock` under a `lock_timeout` of the wait),
so waiters are served in the order they came, not whoever polls luckiest. The connection is
taken from a pool of its own, so held locks never starve the turns' own queries of connections.

The key is 64 bits of a hash of the store's state table and the session id: stores with other
table prefixes never wait for each other (barring a hash collision, which only makes two turns
take turns).

Other dialects have no portable lock that dies with its holder, so a row in a table of locks
stands for it (`<prefix>_routing_runner_locks`: session id, token, expiry): taken by inserting
it, or by updating one whose expiry has passed; renewed every third of its expiry while held;
deleted by its token. Waiters poll. A holder killed mid-turn leaves the row to expire. Expiry
times are the workers' clocks, which must agree to well within `lock_ttl`; a holder that stalls
past its expiry is not fenced off (its late writes land), unlike on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from typing import TYPE_CHECKING

from .records import TurnHold
from .turn_lock import poll

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout that ran out


def lock_key(namespace: str, session_id: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of `session_id` in `namespace`."""
    digest = hashlib.blake2b(f"{namespace}\0{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryHold(TurnHold):
    """An advisory lock held on `conn` until released."""

    def __init__(self, conn: AsyncConnection, key: int) -> None:
        self.conn = conn
        self.key = key

    async def release(self) -> None:
        from sqlalchemy import text

        try:
            await self.conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            await self.conn.commit()
        except Exception:
            # Unsure whether it was unlocked: the connection is dropped, and the lock with it,
            # rather than pooled for someone else still holding it.
            await self.conn.invalidate()
        finally:
            await self.conn.close()


async def advisory_hold(engine: AsyncEngine, key: int, wait: float) -> AdvisoryHold | None:
    """The advisory lock `key` on a new connection of `engine`; None after `wait` seconds."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    conn = await engine.connect()
    try:
        if wait > 0:
            # Transaction-local, so the pooled connection keeps no timeout; the lock itself
            # is the session's and outlives the commit below.
            await conn.execute(text("SELECT set_config('lock_timeout', :timeout, true)"),
                               {"timeout": f"{max(1, round(wait * 1000))}ms"})
            try:
                await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                got = True
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                got = False
        else:
            got = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                           {"key": key})).scalar())
        if not got:
            await conn.rollback()
            await conn.close()
            return None
        await conn.commit()
    except BaseException:
        # Interrupted or failed while waiting: whether the lock was granted is unknown, so the
        # connection goes, and any lock with it.
        await conn.invalidate()
        await conn.close()
        raise
    return AdvisoryHold(conn, key)


class RowHold(TurnHold):
    """A held lock row, renewed in the background until released."""

    def __init__(self, engine: AsyncEngine, table: Table, session_id: str, token: str,
                 ttl: float) -> None:
        from sqlalchemy import and_

        self.engine = engine
        self.table = table
        self.mine = and_(table.c.session_id == session_id, table.c.token == token)
        self.ttl = ttl
        self._renewal = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        from sqlalchemy import update

        while True:
            await asyncio.sleep(self.ttl / 3)
            with contextlib.suppress(Exception):  # missed once: the next try may still do
                async with self.engine.begin() as conn:
                    if not (await conn.execute(update(self.table).where(self.mine).values(
                            expires_at=time.time() + self.ttl))).rowcount:
                        return  # expired and taken by another turn

    async def release(self) -> None:
        from sqlalchemy import delete

        self._renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewal
        # A release that does not reach the database leaves the row to expire.
        with contextlib.suppress(Exception):
            async with self.engine.begin() as conn:
                await conn.execute(delete(self.table).where(self.mine))


async def row_hold(engine: AsyncEngine, table: Table, session_id: str, wait: float,
                   ttl: float) -> RowHold | None:
    """The lock row of `session_id` in `table`; None after `wait` seconds."""
    from sqlalchemy import insert, update
    from sqlalchemy.exc import IntegrityError

    token = secrets.token_hex(16)

    async def attempt() -> bool | None:
        now = time.time()
        async with engine.begin() as conn:
            if (await conn.execute(update(table).where(
                    table.c.session_id == session_id, table.c.expires_at < now).values(
                    token=token, expires_at=now + ttl))).rowcount:
                return True  # its holder is gone
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(table).values(
                    session_id=session_id, token=token, expires_at=now + ttl))
        except IntegrityError:
            return None  # held
        return True

    if await poll(attempt, wait) is None:
        return None
    return RowHold(engine, table, session_id, token, ttl)
