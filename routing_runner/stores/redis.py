"""Conversations on a Redis server (the SDK's RedisSession), shared by workers, optional expiry.

Keys are `<prefix>:<session id>` (the SDK's hash), `...:messages` and `...:counter` (the SDK's),
and `...:state` (ours: last agent, turns, times). Session ids contain no ':' and prefixes no
':' or glob characters, so one conversation's keys can never be read as another's and a SCAN
pattern matches exactly one store. With a TTL every key of a conversation expires that long
after its last change, ours included.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TypeVar

from routing_runner.errors import StoreError
from routing_runner.stores.base import (
    KEY_PREFIX_PATTERN,
    SESSION_ID_PATTERN,
    SessionStore,
    SessionSummary,
    require_extra,
)
from routing_runner.stores.records import Mark, TurnHold, read_context, read_usage
from routing_runner.stores.redis_lock import LOCK_TTL
from routing_runner.wording import format_duration, redact_url

if TYPE_CHECKING:
    from agents.memory import SessionABC
    from redis.asyncio.retry import Retry

    from .encryption import SessionKey

T = TypeVar("T", int, float)
CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 30.0
# A dropped connection (server restart, CLIENT KILL, the server's idle `timeout`) is reconnected
# and the command sent again, up to RECONNECT_ATTEMPTS times with a growing pause (at most
# RECONNECT_PAUSE_CAP s): about 4 s in all before a turn fails, as the PostgreSQL path's pool
# pre-ping does for its connections. Only ConnectionError is retried: a command that timed out
# may have run, and sending an append again could store it twice.
RECONNECT_ATTEMPTS = 3
RECONNECT_PAUSE_BASE = 0.25
RECONNECT_PAUSE_CAP = 2.0


def _reconnecting() -> Retry:
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff

    return Retry(ExponentialWithJitterBackoff(base=RECONNECT_PAUSE_BASE, cap=RECONNECT_PAUSE_CAP),
                 RECONNECT_ATTEMPTS)


def _number(text: str | None, kind: type[T]) -> T | None:
    """`text` as a number; None when absent or not one (a state written by something else is
    shown as unknown, so the conversation can still be listed, shown and deleted)."""
    try:
        return None if text is None else kind(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisStore(SessionStore):
    """Conversations in Redis, each key under `key_prefix`, expiring after `ttl` if given."""

    def __init__(self, url: str, *, key_prefix: str, ttl: int | None = None,
                 encryption: SessionKey | None = None, lock_ttl: float = LOCK_TTL) -> None:
        require_extra("redis", "redis", "the redis session backend")
        import redis.asyncio
        from redis import exceptions

        super().__init__(encryption=encryption)
        if not KEY_PREFIX_PATTERN.fullmatch(key_prefix):
            raise StoreError(f"invalid Redis key prefix {key_prefix!r}")
        self.key_prefix = key_prefix
        self.ttl = ttl
        self.lock_ttl = lock_ttl
        self.tokens: dict[str, str] = {}  # the lock token of each conversation a turn holds
        shown = redact_url(url)
        try:
            self._client = redis.asyncio.from_url(
                url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
                retry=_reconnecting(), retry_on_error=[exceptions.ConnectionError])
        except ValueError as exc:
            raise StoreError(f"the session store URL {shown} is not a Redis URL: {exc}") from None
        self.description = f"redis {shown} (keys {key_prefix}:*"
        self.description += f", expire {format_duration(ttl)} after the last change)" \
            if ttl else ")"
        if encryption is not None:
            self.description += f", {encryption.describe()}"

    def _keys(self, session_id: str) -> tuple[str, str, str, str]:
        """The SDK's three keys of a conversation, then ours."""
        base = f"{self.key_prefix}:{session_id}"
        return base, f"{base}:messages", f"{base}:counter", f"{base}:state"

    def lock_key(self, session_id: str) -> str:
        """The key of the conversation's turn lock (stores.redis_lock)."""
        return f"{self.key_prefix}:{session_id}:lock"

    async def _lock_turn(self, session_id: str, wait: float) -> TurnHold:
        from .redis_lock import redis_hold

        return await redis_hold(self, session_id, wait)

    async def _check(self) -> None:
        await self._client.ping()

    async def _session(self, session_id: str) -> SessionABC:
        from .redis_lock import fenced_session_class

        # Fail here, on open, when the server is unreachable, not halfway through a turn.
        await self._client.ping()
        return fenced_session_class()(session_id, store=self, client=self._client,
                                      key_prefix=self.key_prefix, ttl=self.ttl)

    async def _exists(self, session_id: str) -> bool:
        return bool(await self._client.exists(*self._keys(session_id)))

    async def _summary(self, session_id: str) -> SessionSummary | None:
        state = await self._client.hgetall(self._keys(session_id)[3])
        if state:
            return self._parse(session_id, state)
        return SessionSummary(session_id) if await self._exists(session_id) else None

    @staticmethod
    def _parse(session_id: str, state: dict[Any, Any]) -> SessionSummary:
        fields = {_text(k): _text(v) for k, v in state.items()}
        turns = _number(fields.get("turns", "0"), int)
        return SessionSummary(session_id, fields.get("agent") or None,
                              None if turns is None else max(turns, 0),
                              _number(fields.get("updated_at"), float), fields.get("owner"),
                              read_context(fields.get("context")),
                              _number(fields.get("pending"), int),
                              read_usage(fields.get("usage")))

    async def _write_state(self, session_id: str, *, agent: str | None, turns: int,
                           mark: Mark | int = Mark.KEEP) -> None:
        from .redis_lock import STATE, state_arguments

        # One script: fenced like the turn's other writes, and the marker counts the items
        # with nothing written between.
        _, messages, _, state = self._keys(session_id)
        mode, after = ("set", mark) if isinstance(mark, int) else (mark.value, 0)
        await self._client.eval(STATE, 3, self.lock_key(session_id), state, messages,
                               *state_arguments(self.tokens.get(session_id, ""), self.owner,
                                                agent, turns, mode, after, self.ttl))

    async def _write_context(self, session_id: str, context: str, *,
                             column: str = "context") -> None:
        # Not fenced: a conversation's context is written when it starts, outside any turn,
        # and its usage once the turn is complete.
        key = self._keys(session_id)[3]
        now = repr(time.time())
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "created_at", now)
            if self.owner is not None:
                pipe.hsetnx(key, "owner", self.owner)
            pipe.hset(key, mapping={column: context, "updated_at": now})
            if self.ttl:
                pipe.expire(key, self.ttl)
            await pipe.execute()

    async def _list(self) -> list[SessionSummary]:
        ids: set[str] = set()
        start = len(self.key_prefix) + 1
        async for key in self._client.scan_iter(match=f"{self.key_prefix}:*", count=500):
            session_id = _text(key)[start:].split(":", 1)[0]
            if SESSION_ID_PATTERN.fullmatch(session_id):
                ids.add(session_id)
        found = []
        for session_id in sorted(ids):
            summary = await self._summary(session_id)
            if summary is not None:  # it may have expired since the scan
                found.append(summary)
        return found

    async def _raw_rows(self, session_id: str) -> list[tuple[Any, str | bytes]]:
        # A Redis list element has no id of its own: the raw value is its key, and every
        # element with that value is equally unreadable.
        raw = await self._client.lrange(self._keys(session_id)[1], 0, -1)
        return [(value, value) for value in raw]

    async def _raw_tail(self, session_id: str,
                        last: int) -> tuple[int, list[tuple[Any, str | bytes]]]:
        messages = self._keys(session_id)[1]
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.llen(messages)
            pipe.lrange(messages, -last, -1)
            stored, raw = await pipe.execute()
        return stored - len(raw), [(value, value) for value in raw]

    async def _drop_rows(self, session_id: str, keys: list[Any]) -> None:
        messages = self._keys(session_id)[1]
        async with self._client.pipeline(transaction=True) as pipe:
            for value in set(keys):
                pipe.lrem(messages, 0, value)
            await pipe.execute()

    async def _delete(self, session_id: str) -> bool:
        return bool(await self._client.delete(*self._keys(session_id)))

    def _store_error(self, exc: Exception, doing: str) -> StoreError | None:
        from redis import exceptions

        if isinstance(exc, exceptions.ConnectionError | exceptions.TimeoutError | OSError):
            return StoreError(f"cannot reach the session store {self.description}: {exc}")
        if isinstance(exc, exceptions.RedisError):
            return StoreError(f"cannot {doing} in the session store {self.description}: {exc}")
        return None

    async def _close(self) -> None:
        await self._client.aclose()
