"""One turn at a time per conversation, across processes and machines: `SessionStore.turn_lock`.

How each backend holds a conversation for one turn (its `_lock_turn`):

    memory       an asyncio lock: one process is all there is
    sqlite       the conversation's lock file (stores.locks), the one a chat's lease takes, so a
                 chat and a turn exclude each other; the kernel drops it when a process dies
    sqlalchemy   PostgreSQL: an advisory lock on a connection of its own (stores.sql_lock); the
                 server drops it when that connection dies. Other dialects: a lock row with
                 expiry, renewed while held
    redis        a key with expiry, renewed while held, deleted only by its holder, and checked
                 by every write the turn makes (stores.redis_lock)

A holder that dies mid-turn must not leave half a reply behind. The state write that already
counts a turn's user's message also stores a marker, `pending`: how many stored items are the
history and that message. The turn's last write (its agent) clears it. Whoever takes the
conversation next holds it alone, so a marker it finds belongs to a holder that is gone: the
items beyond `pending` are removed and the marker cleared. No write is added to a turn that
completes; taking the lock reads the state record once, and a repair costs a pop per item cut
and one state write. Markers are written only under an exclusive hold
(a turn lock, or a chat's lease on SQLite): a writer without one could mark a turn another
worker would then cut short.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from routing_runner.errors import SessionInUseError

from .items import is_user_message
from .records import Mark, SessionSummary, TurnHold, check_session_id, settle

if TYPE_CHECKING:
    from .base import SessionStore

T = TypeVar("T")
# Polling backends (a lock file, a Redis key) try again after a pause that doubles from
# POLL_FIRST to POLL_CAP, jittered so waiters started together do not try in step.
POLL_FIRST = 0.02
POLL_CAP = 0.25

# Turn holds taken through each store, by session id: what `holds` answers from.
_turns: weakref.WeakKeyDictionary[SessionStore, dict[str, int]] = weakref.WeakKeyDictionary()
_local: weakref.WeakKeyDictionary[SessionStore, dict[str, _Local]] = \
    weakref.WeakKeyDictionary()


@asynccontextmanager
async def hold_turn(store: SessionStore, session_id: str, wait: float) -> AsyncIterator[None]:
    """`SessionStore.turn_lock`: hold `session_id`, repair a dead holder's turn, yield."""
    check_session_id(session_id)
    # A conversation this store holds for a whole chat (a lease, repaired when it was
    # attached) keeps other processes out already: its turns take turns in this one.
    leased = session_id in store.leased
    hold = await (local_hold(store, session_id, wait) if leased
                  else store._lock_turn(session_id, wait))
    held = _turns.setdefault(store, {})
    held[session_id] = held.get(session_id, 0) + 1
    try:
        if not leased:
            await recover(store, await store.summary(session_id))
        yield
    finally:
        held[session_id] -= 1
        if not held[session_id]:
            del held[session_id]
        await settle(hold.release())


def holds(store: SessionStore, session_id: str) -> bool:
    """Whether `store` holds `session_id` alone (a turn lock or an exclusive lease)."""
    return session_id in store.leased or session_id in _turns.get(store, {})


async def recover(store: SessionStore, summary: SessionSummary | None) -> None:
    """Remove the items a dead holder's turn stored after its user's message, if any."""
    if summary is None or summary.pending is None:
        return
    session_id = summary.session_id
    rows = await store.guarded(store._raw_rows(session_id), f"read conversation {session_id!r}")
    extra = len(rows) - summary.pending
    if extra <= 0:
        return  # the marker of a turn that was rolled back already: nothing after the message
    doing = f"roll back the unfinished turn of conversation {session_id!r}"
    session = await store.guarded(store._session(session_id), doing)
    users = 0
    for _ in range(extra):
        users += is_user_message(await store.guarded(session.pop_item(), doing))
    await store.guarded(
        store._write_state(session_id, agent=None, turns=-users, mark=Mark.CLEAR), doing)


def in_use(store: SessionStore, session_id: str, wait: float) -> SessionInUseError:
    """The error for a conversation another turn held longer than `wait` seconds."""
    return SessionInUseError(
        f"conversation {session_id!r} is in use by another turn or chat, still after "
        f"{wait:g} s ({store.description}); try again when it ends")


async def poll(attempt: Callable[[], Awaitable[T | None]], wait: float) -> T | None:
    """`attempt()` until it gives a value or `wait` seconds have passed (then None)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    pause = POLL_FIRST
    while True:
        got = await attempt()
        if got is not None:
            return got
        left = deadline - loop.time()
        if left <= 0:
            return None
        await asyncio.sleep(min(pause * random.uniform(0.5, 1.0), left))
        pause = min(pause * 2, POLL_CAP)


@dataclass
class _Local(TurnHold):
    """An asyncio lock and how many turns hold or wait for it (dropped when none do)."""

    store: SessionStore
    session_id: str
    lock: asyncio.Lock
    users: int = 0

    async def release(self) -> None:
        self.lock.release()
        self._leave()

    def _leave(self) -> None:
        self.users -= 1
        if not self.users:
            _local.get(self.store, {}).pop(self.session_id, None)


async def local_hold(store: SessionStore, session_id: str, wait: float) -> TurnHold:
    """Hold `session_id` against the other turns of this process; SessionInUseError after
    `wait` seconds. asyncio's lock wakes its waiters in the order they came."""
    locks = _local.setdefault(store, {})
    entry = locks.get(session_id)
    if entry is None:
        entry = locks[session_id] = _Local(store, session_id, asyncio.Lock())
    entry.users += 1
    try:
        if entry.lock.locked():
            await asyncio.wait_for(entry.lock.acquire(), wait)
        else:  # at once, even when `wait` is 0
            await entry.lock.acquire()
    except TimeoutError:
        entry._leave()
        raise in_use(store, session_id, wait) from None
    except BaseException:
        entry._leave()
        raise
    return entry
