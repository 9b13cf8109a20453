"""Session stores: where conversations, the agent that spoke last and turn counts are kept.

    SessionStore                          what the chat, the turn runner and `sessions` use
    ├── SQLiteStore      stores.sqlite    one file, one machine (a lock file per session id)
    ├── MemoryStore      stores.memory    throwaway runs: nothing is kept after exit
    ├── SQLAlchemyStore  stores.sqlalchemy  any SQLAlchemy async database, shared by workers
    └── RedisStore       stores.redis     a Redis server, shared by workers, optional expiry

Items are stored by the SDK's session classes (in its EncryptedSession with `encryption`,
stores.encryption). The SDK keeps neither the agent that spoke last nor a turn count, so every
store keeps a state record beside the items: last agent, turns (user messages stored), times,
owner, context, usage totals and the marker of a turn in progress (stores.turn_lock, which
also holds a conversation for one turn across processes). A `Conversation`'s `JournaledSession`
(stores.journal) counts what a turn appended, so a failed turn is rolled back to "the user's
message and nothing after it", and turns backend exceptions into `StoreError`. Rows are read
one by one (stores.rows) before a conversation opens and before each turn (those it sends): an
unreadable row is an error, not a shorter history. No SDK or driver is imported here: a backend
is imported when its store is opened (a missing optional one names its extra).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from routing_runner.errors import RoutingRunnerError, SessionIdError, StoreError

from .conversation import Conversation
from .records import (
    KEY_PREFIX_PATTERN,
    SESSION_ID_PATTERN,
    TABLE_PREFIX_PATTERN,
    Lease,
    Mark,
    Reservation,
    SessionSummary,
    TableNames,
    TurnHold,
    check_session_id,
    new_session_id,
    require_extra,
    settle,
)

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory import SessionABC

    from .encryption import SessionKey
    from .memory import MemoryStore
    from .rows import StoredRow
    from .sqlite import SQLiteStore

__all__ = [
    "KEY_PREFIX_PATTERN", "SESSION_ID_PATTERN", "TABLE_PREFIX_PATTERN", "Lease", "MemoryStore",
    "Reservation", "SQLiteStore", "SessionStore", "SessionSummary", "TableNames",
    "check_session_id", "new_session_id", "require_extra", "settle",
]

T = TypeVar("T")


class SessionStore(ABC):
    """A place conversations are kept.

    Public methods check session ids and turn backend exceptions into StoreError; backends
    implement the underscore hooks.

    A store with an `owner` (the config it was opened for) shows, opens and deletes only that
    config's conversations, and the ones stored before conversations had owners; writing to
    one of those claims it. Another config's conversation is a SessionIdError naming that
    config. A store without an owner (library use) sees every conversation and claims none.
    """

    description: str

    def __init__(self, *, encryption: SessionKey | None = None) -> None:
        self.encryption = encryption
        self.owner: str | None = None  # set by open_store from the config
        self._leases: list[Lease] = []
        self.leased: set[str] = set()  # conversations this store keeps other processes out of

    # -- what the chat and the turn runner use --------------------------------------------

    async def open(self, session_id: str) -> Conversation:
        """Open (or create) the conversation `session_id` for chatting; close() ends it.

        SessionInUseError when the store allows one process per conversation and another
        has it open; StoreError when an encrypted conversation does not decrypt with the key.
        """
        return await self.attach(await self.reserve(session_id))

    async def reserve(self, session_id: str) -> Reservation:
        """Take the conversation's lease and read its summary; SessionInUseError if held."""
        check_session_id(session_id)
        lease = await self._acquire(session_id)
        try:
            summary = await self.summary(session_id)
        except BaseException:
            lease.release()
            raise
        self._leases.append(lease)
        if lease.exclusive:
            self.leased.add(session_id)
        return Reservation(session_id, lease, summary)

    async def attach(self, reservation: Reservation) -> Conversation:
        """Open the reserved conversation's SDK session (this is where the SDK is needed)."""
        from .journal import JournaledSession
        from .turn_lock import recover

        session_id = reservation.session_id
        if reservation.lease.exclusive:  # a dead holder's half turn goes before anyone reads
            await recover(self, reservation.summary)
        session = await self._readable_session(session_id)
        summary = reservation.summary or SessionSummary(session_id)
        return Conversation(session_id, JournaledSession(session, self, session_id), self,
                            reservation.is_new, dict(summary.context or {}),
                            usage=dict(summary.usage or {}))

    def turn_lock(self, session_id: str, *, wait: float) -> AbstractAsyncContextManager[None]:
        """Hold `session_id` for one turn, alone among every process and machine sharing the
        store; SessionInUseError after `wait` seconds. A turn whose holder died is first cut
        back to its user's message (stores.turn_lock)."""
        from .turn_lock import hold_turn

        return hold_turn(self, session_id, wait)

    async def get_active_agent(self, session_id: str) -> str | None:
        """The agent that spoke last in `session_id`."""
        summary = await self.summary(session_id)
        return summary.last_agent if summary else None

    async def set_active_agent(self, session_id: str, agent: str) -> None:
        """Remember `agent` as the one that spoke last in `session_id`."""
        await self.guarded(self._write_state(session_id, agent=agent, turns=0, mark=Mark.CLEAR),
                           f"save the last agent of conversation {session_id!r}")

    async def record_turns(self, session_id: str, turns: int, *,
                           mark: Mark | int = Mark.KEEP) -> None:
        """Add `turns` (may be negative) to the turn count; `mark` as `_write_state`'s."""
        await self.guarded(self._write_state(session_id, agent=None, turns=turns, mark=mark),
                           f"save the turn count of conversation {session_id!r}")

    async def release(self, session_id: str) -> None:  # noqa: B027 - most stores hold nothing
        """Close what this store holds for `session_id` (a server's, after each turn)."""

    async def set_context(self, session_id: str, context: Mapping[str, str]) -> None:
        """Remember the context values of `session_id` (its instructions' placeholders)."""
        await self.guarded(self._write_context(session_id, json.dumps(dict(context))),
                           f"save the context of conversation {session_id!r}")

    async def set_usage(self, session_id: str, usage: Mapping[str, Any]) -> None:
        """Remember the usage totals of `session_id` (tokens per agent, JSON-ready data)."""
        await self.guarded(self._write_context(session_id, json.dumps(dict(usage)), column="usage"),
                           f"save the usage of conversation {session_id!r}")

    async def check(self) -> None:
        """Reach the backend now (connect, create tables); StoreError when it cannot be used.

        Stores connect lazily, so this is how a caller fails fast before any conversation.
        """
        await self.guarded(self._check(), "reach the session store")

    async def close(self) -> None:
        """Release connections, files and the conversations this store opened."""
        try:
            await self._close()
        finally:
            for lease in self._leases:
                lease.release()
            self._leases.clear()
            self.leased.clear()

    # -- what `routing-runner sessions` uses ------------------------------------------------

    async def exists(self, session_id: str) -> bool:
        """Whether anything is stored for `session_id`; SessionIdError if another config's."""
        return await self.summary(session_id) is not None

    async def summary(self, session_id: str) -> SessionSummary | None:
        """Last agent, turns and last activity of `session_id`; None when nothing is stored.

        SessionIdError when the conversation belongs to another config than this store's.
        """
        check_session_id(session_id)
        summary = await self.guarded(self._summary(session_id),
                                     f"read the state of conversation {session_id!r}")
        if summary is not None and not self._sees(summary):
            raise SessionIdError(
                f"conversation {session_id!r} belongs to the config {summary.owner!r}, not "
                f"{self.owner!r} (in {self.description}); continue it with that config, or "
                "start a new conversation")
        return summary

    async def list_sessions(self) -> list[SessionSummary]:
        """Every stored conversation, most recently active first."""
        found = await self.guarded(self._list(), "list the conversations")
        return sorted((s for s in found if self._sees(s)),
                      key=lambda s: (-(s.last_activity or 0.0), s.session_id))

    async def read_items(self, session_id: str) -> list[TResponseInputItem]:
        """The items of a stored conversation, oldest first, without opening it for a chat.

        SessionIdError when nothing is stored under `session_id`; UnreadableRowsError (a
        StoreError) when a row cannot be read, rather than a history missing it.
        """
        from .rows import check_readable

        rows = await self.read_rows(session_id)
        check_readable(rows, session_id, self.description)
        return [row.item for row in rows if row.item is not None]

    async def read_rows(self, session_id: str) -> list[StoredRow]:
        """The stored rows of a conversation, each read or saying why it cannot be.

        SessionIdError when nothing is stored under `session_id`; StoreError when it was
        written under the other encryption setting or with another key.
        """
        if await self.summary(session_id) is None:
            raise SessionIdError(f"no conversation {session_id!r} in {self.description}")
        session = await self.guarded(self._session(session_id),
                                     f"open conversation {session_id!r}")
        return await self._rows(session_id, self._protected(session, session_id))

    async def check_readable(self, session_id: str, session: SessionABC,
                             last: int | None = None) -> None:
        """StoreError naming the rows of `session_id` the model would not see, if any.

        `session` is the conversation's open SDK session (encrypted when configured); `last`
        limits the check to the newest rows, those a turn with a history window reads.
        """
        from .rows import check_readable

        check_readable(await self._rows(session_id, session, last), session_id,
                       self.description)

    async def drop_unreadable(self, session_id: str) -> list[StoredRow]:
        """Delete the rows of `session_id` that cannot be read; the rows dropped.

        Nothing is dropped when the conversation needs another key or encryption setting (its
        rows are then all unreadable to this config, not damaged). The turn count is made the
        number of user messages kept, unless expired rows hide some. SessionInUseError when
        another process has the conversation open (stores that lock).
        """
        from .rows import drop_unreadable

        return await drop_unreadable(self, session_id)

    async def delete(self, session_id: str) -> bool:
        """Delete one conversation and its state; False when nothing was stored.

        SessionInUseError when another process has it open (stores that lock).
        """
        check_session_id(session_id)
        lease = await self._acquire(session_id)
        try:
            if await self.summary(session_id) is None:
                return False
            return await self.guarded(self._delete(session_id),
                                      f"delete conversation {session_id!r}")
        finally:
            lease.release()

    # -- shared machinery ------------------------------------------------------------------

    def _sees(self, summary: SessionSummary) -> bool:
        """Whether this store may show and change the conversation `summary` describes."""
        return self.owner is None or summary.owner in (None, self.owner)

    async def guarded(self, operation: Awaitable[T], doing: str) -> T:
        """Await `operation`, turning a backend exception into a StoreError saying `doing`."""
        try:
            return await operation
        except RoutingRunnerError:
            raise
        except Exception as exc:
            error = self._store_error(exc, doing)
            if error is None:
                raise
            raise error from exc

    async def _readable_session(self, session_id: str) -> SessionABC:
        """The SDK session of `session_id`, encrypted and key-checked when configured.

        StoreError when the stored rows were written under the other encryption setting or
        with another key: nothing is read or appended then.
        """
        session = await self.guarded(self._session(session_id),
                                     f"open conversation {session_id!r}")
        protected = self._protected(session, session_id)
        await self._rows(session_id, protected)
        return protected

    def _protected(self, session: SessionABC, session_id: str) -> SessionABC:
        """`session` wrapped in the SDK's EncryptedSession when the config encrypts."""
        if self.encryption is None:
            return session
        from .encryption import encrypted

        return encrypted(session, session_id, self.encryption)

    async def _rows(self, session_id: str, session: SessionABC,
                    last: int | None = None) -> list[StoredRow]:
        """The raw rows of `session_id` (the `last` ones only, when given) read one by one;
        StoreError on an encryption mismatch."""
        from .rows import stored_rows

        return await stored_rows(self, session_id, session, last)

    # -- backend hooks -----------------------------------------------------------------------

    @abstractmethod
    async def _session(self, session_id: str) -> SessionABC:
        """The backend's SDK session for `session_id` (unencrypted)."""

    @abstractmethod
    async def _summary(self, session_id: str) -> SessionSummary | None:
        """The state record of `session_id` (fields None if only items exist), or None."""

    @abstractmethod
    async def _write_state(self, session_id: str, *, agent: str | None, turns: int,
                           mark: Mark | int = Mark.KEEP) -> None:
        """Upsert the state record: set the agent if given, add `turns`, touch the time, and
        keep, clear or set the turn marker (`Mark`; a number n: the stored items minus n).

        A record without an owner gets this store's `owner` (None leaves it as it is).
        """

    @abstractmethod
    async def _write_context(self, session_id: str, context: str, *,
                             column: str = "context") -> None:
        """Upsert the state record's `column` (context or usage) with JSON text."""

    @abstractmethod
    async def _list(self) -> list[SessionSummary]:
        """A summary of every stored conversation, in any order."""

    @abstractmethod
    async def _delete(self, session_id: str) -> bool:
        """Delete the items and state of `session_id`; whether anything was there."""

    async def _acquire(self, session_id: str) -> Lease:
        """Exclusive use of `session_id`, for stores that allow one process per conversation."""
        return Lease()

    async def _lock_turn(self, session_id: str, wait: float) -> TurnHold:
        """Hold `session_id` for one turn (stores.turn_lock); here, against this process only."""
        from .turn_lock import local_hold

        return await local_hold(self, session_id, wait)

    async def _raw_rows(self, session_id: str) -> list[tuple[Any, str | bytes]]:
        """Each stored item of `session_id` as the backend holds it, oldest first, with the
        key `_drop_rows` deletes it by.

        Backends whose rows can be damaged outside this process read them directly, since the
        SDK's `get_items` skips what it cannot decode; this default (the SDK's reading) suits a
        store nothing else writes to.
        """
        items = await (await self._session(session_id)).get_items()
        return [(number, json.dumps(item)) for number, item in enumerate(items)]

    async def _raw_tail(self, session_id: str,
                        last: int) -> tuple[int, list[tuple[Any, str | bytes]]]:
        """The `last` newest rows as `_raw_rows` gives them, after how many older rows there
        are; backends read only those rows, so a turn's check does not grow with the history."""
        rows = await self._raw_rows(session_id)
        return max(len(rows) - last, 0), rows[-last:]

    async def _drop_rows(self, session_id: str, keys: list[Any]) -> None:
        """Delete the rows of `session_id` with these `_raw_rows` keys."""
        raise StoreError(f"{self.description} cannot drop single rows of a conversation")

    def _store_error(self, exc: Exception, doing: str) -> StoreError | None:
        """The StoreError for a backend exception, or None to let it propagate."""
        return None

    async def _check(self) -> None:  # noqa: B027 - stores that open eagerly have nothing to do
        """Connect to the backend."""

    async def _close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release the backend's connections."""


def __getattr__(name: str) -> Any:
    # The built-in stores stay importable from here (`from routing_runner.stores.base import
    # SQLiteStore`) without importing every backend whenever this module is.
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    if name == "MemoryStore":
        from .memory import MemoryStore

        return MemoryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
