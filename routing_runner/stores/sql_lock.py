"""A conversation's turn lock on PostgreSQL: a session-level advisory lock on its own connection.

The lock belongs to the database connection that took it, so it lives exactly as long as the
holder's connection: a worker killed mid-turn closes its socket (the kernel does), the server
ends that backend and the lock is free for the next turn at once, with no expiry to wait for. A
waiter blocks in the server's lock queue (`pg_advisory_lock` under a `lock_timeout` of the wait),
so waiters are served in the order they came, not whoever polls luckiest. The connection is
taken from a pool of its own, so held locks never starve the turns' own queries of connections.

The key is 64 bits of a hash of the store's state table and the session id: stores with other
table prefixes never wait for each other (barring a hash collision, which only makes two turns
take turns). Other SQLAlchemy dialects have no such lock: their turns are serialised within one
process only (stores.turn_lock says so for each backend).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from .records import TurnHold

if TYPE_CHECKING:
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
