"""A conversation's turn lock on Redis: a key with expiry, renewed while held, checked by writes.

`<prefix>:<session id>:lock` holds a random token: taken with `SET NX PX` (waiters poll, with
a growing jittered pause), renewed every third of its expiry while the turn runs, and deleted
only by a script that first compares the token, so a holder whose lock expired can never delete
its successor's. A worker killed mid-turn stops renewing: the lock expires `lock_ttl` seconds
after its last renewal and the next turn takes it.

Fencing: the token is the fence. Every write the turn makes - each append and pop of the SDK's
session (a subclass of its RedisSession) and every state write - runs as one Lua script that
first checks the lock key still holds this turn's token, and refuses otherwise. A script runs
atomically on the server that holds the data, so a holder that stalled past its expiry (a long
pause, a partition) cannot write once another turn could have taken the conversation: its turn
fails with a StoreError and the new holder finds the store as the stalled one last left it.
Reads are not fenced; they change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from .records import TurnHold
from .turn_lock import in_use, poll

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory import SessionABC
    from redis.asyncio import Redis

    from .redis import RedisStore

LOCK_TTL = 15.0  # seconds a lock outlives its holder's last renewal
LOST = "the turn lock of this conversation expired (its holder stalled past it) and another " \
    "turn may hold it now, so the writes of this one are refused"
# KEYS[1] is always the lock key; ARGV[1] the token ('' when no lock is held: not fenced).
_FENCE = f"if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then " \
    f"return redis.error_reply('{LOST}') end\n"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then " \
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then " \
    "return redis.call('DEL', KEYS[1]) end return 0"
# The SDK's append: the session hash, the items, and (with a TTL) the expiry of its keys.
# KEYS: lock, session hash, messages, counter; ARGV: token, session id, now, ttl ms, items...
_APPEND = _FENCE + """
redis.call('HSET', KEYS[2], 'session_id', ARGV[2])
redis.call('HSETNX', KEYS[2], 'created_at', ARGV[3])
redis.call('RPUSH', KEYS[3], unpack(ARGV, 5))
redis.call('HSET', KEYS[2], 'updated_at', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
return 1"""
# KEYS: lock, messages; ARGV: token.
_POP = _FENCE + "return redis.call('RPOP', KEYS[2])"
# Our state record. KEYS: lock, state, messages; ARGV: token, now, owner, agent, turns,
# marker ('keep', 'clear' or 'set': the stored items minus ARGV[7]), ttl s ('0': none).
STATE = _FENCE + """
redis.call('HSETNX', KEYS[2], 'created_at', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSETNX', KEYS[2], 'owner', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'agent', ARGV[4]) end
if tonumber(ARGV[5]) ~= 0 then redis.call('HINCRBY', KEYS[2], 'turns', ARGV[5]) end
if ARGV[6] == 'clear' then redis.call('HDEL', KEYS[2], 'pending')
elseif ARGV[6] == 'set' then
  redis.call('HSET', KEYS[2], 'pending', redis.call('LLEN', KEYS[3]) - tonumber(ARGV[7]))
end
redis.call('HSET', KEYS[2], 'updated_at', ARGV[2])
if tonumber(ARGV[8]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[8]) end
return 1"""


class RedisHold(TurnHold):
    """A held lock key, renewed in the background until released."""

    def __init__(self, store: RedisStore, session_id: str, token: str) -> None:
        self.store = store
        self.session_id = session_id
        self.key = store.lock_key(session_id)
        self.token = token
        self._renewal = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        ttl_ms = str(round(self.store.lock_ttl * 1000))
        while True:
            await asyncio.sleep(self.store.lock_ttl / 3)
            with contextlib.suppress(Exception):  # missed once: the next try may still do
                if not await self.store._client.eval(_RENEW, 1, self.key, self.token, ttl_ms):
                    return  # expired and maybe taken: the fence refuses our writes now

    async def release(self) -> None:
        self._renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewal
        if self.store.tokens.get(self.session_id) == self.token:
            del self.store.tokens[self.session_id]
        # A release that does not reach the server leaves the lock to expire: the next turn
        # waits at most lock_ttl, so this turn's outcome is not turned into a failure.
        with contextlib.suppress(Exception):
            await self.store._client.eval(_RELEASE, 1, self.key, self.token)


async def redis_hold(store: RedisStore, session_id: str, wait: float) -> RedisHold:
    """The lock of `session_id` in `store`; SessionInUseError after `wait` seconds."""
    token = secrets.token_hex(16)
    key, ttl_ms = store.lock_key(session_id), round(store.lock_ttl * 1000)

    async def attempt() -> bool | None:
        taken = await store.guarded(store._client.set(key, token, nx=True, px=ttl_ms),
                                    f"lock conversation {session_id!r}")
        return True if taken else None

    if await poll(attempt, wait) is None:
        raise in_use(store, session_id, wait)
    store.tokens[session_id] = token
    return RedisHold(store, session_id, token)


@cache
def fenced_session_class() -> Callable[..., SessionABC]:
    """The SDK's RedisSession whose appends and pops check the turn's token (built on use)."""
    from agents.extensions.memory import RedisSession

    class FencedRedisSession(RedisSession):
        """Writes as the SDK's do, in one script that first checks the lock's token."""

        def __init__(self, session_id: str, *, store: RedisStore, client: Redis,
                     key_prefix: str, ttl: int | None) -> None:
            super().__init__(session_id, redis_client=client, key_prefix=key_prefix, ttl=ttl)
            self.store = store
            self.lock_key = store.lock_key(session_id)

        def _token(self) -> str:
            return self.store.tokens.get(self.session_id, "")

        async def add_items(self, items: list[TResponseInputItem]) -> None:
            if not items:
                return
            async with self._lock:
                self._check_not_closed()
                serialized = [await self._serialize_item(item) for item in items]
                ttl_ms = self._ttl * 1000 if self._ttl else 0
                await self._redis.eval(
                    _APPEND, 4, self.lock_key, self._session_key, self._messages_key,
                    self._counter_key, self._token(), self.session_id, str(int(time.time())),
                    str(ttl_ms), *serialized)

        async def pop_item(self) -> TResponseInputItem | None:
            async with self._lock:
                self._check_not_closed()
                while True:
                    raw = await self._redis.eval(
                        _POP, 2, self.lock_key, self._messages_key, self._token())
                    if raw is None:
                        return None
                    try:  # a damaged item is dropped and the one before it popped, as the SDK
                        return await self._deserialize_item(
                            raw.decode() if isinstance(raw, bytes) else raw)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        continue

    return FencedRedisSession


def state_arguments(token: str, owner: str | None, agent: str | None, turns: int,
                    mark: str, after: int, ttl: int | None) -> list[Any]:
    """The ARGV of the STATE script."""
    return [token, repr(time.time()), owner or "", agent or "", turns, mark, after, ttl or 0]
