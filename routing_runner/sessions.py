"""Session backends: where conversations (and the agent that spoke last) are kept.

Conversation items are stored by the SDK's own session classes. The SDK does not remember which
agent spoke last, so each store keeps that beside the items, keyed by session id.

A `Conversation` wraps the SDK session in a `JournaledSession`, which counts what a turn
appended so an interrupted or failed turn can be rolled back to "the user's message and nothing
after it" - the stored conversation is never left with half a reply.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
from abc import ABC, abstractmethod
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import SessionConfig
from .errors import SessionIdError, StoreError

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory import SessionABC

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STATE_TABLE = "routing_runner_state"


def new_session_id() -> str:
    """A fresh random session id."""
    return secrets.token_hex(6)


def check_session_id(session_id: str) -> str:
    """`session_id` when it is a safe id, else SessionIdError."""
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise SessionIdError(
            f"invalid session id {session_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return session_id


def _journaled(inner: SessionABC) -> SessionABC:
    """`inner` wrapped so the current turn's additions are counted."""
    from agents.memory import SessionABC

    class JournaledSession(SessionABC):
        """Delegates to an SDK session and remembers how many items the current turn added."""

        def __init__(self, inner: SessionABC) -> None:
            self.inner = inner
            self.session_id = inner.session_id
            self.session_settings = inner.session_settings
            self.added_this_turn = 0

        async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
            return await self.inner.get_items(limit)

        async def add_items(self, items: list[TResponseInputItem]) -> None:
            await self.inner.add_items(items)
            self.added_this_turn += len(items)

        async def pop_item(self) -> TResponseInputItem | None:
            item = await self.inner.pop_item()
            if item is not None and self.added_this_turn:
                self.added_this_turn -= 1
            return item

        async def clear_session(self) -> None:
            await self.inner.clear_session()
            self.added_this_turn = 0

    return JournaledSession(inner)


@dataclass
class Conversation:
    """One stored conversation: its SDK session and the agent that spoke last."""

    session_id: str
    session: SessionABC
    store: SessionStore
    is_new: bool

    async def get_active_agent(self) -> str | None:
        """The agent that spoke last, if any turn completed."""
        return await self.store.get_active_agent(self.session_id)

    async def set_active_agent(self, agent: str) -> None:
        """Remember `agent` as the one that spoke last."""
        await self.store.set_active_agent(self.session_id, agent)

    def begin_turn(self) -> None:
        """Start counting what the coming turn stores."""
        self.session.added_this_turn = 0  # type: ignore[attr-defined]

    async def roll_back_turn(self, user_message: TResponseInputItem) -> None:
        """Undo what the current turn stored, keeping only the user's message."""
        added: int = self.session.added_this_turn  # type: ignore[attr-defined]
        for _ in range(added):
            if await self.session.pop_item() is None:
                break
        await self.session.add_items([user_message])

    async def items(self) -> list[TResponseInputItem]:
        """Every stored item, oldest first."""
        return await self.session.get_items()


class SessionStore(ABC):
    """A place conversations are kept."""

    description: str

    @abstractmethod
    async def open(self, session_id: str) -> Conversation:
        """Open (or create) the conversation `session_id`."""

    @abstractmethod
    async def get_active_agent(self, session_id: str) -> str | None:
        """The agent that spoke last in `session_id`."""

    @abstractmethod
    async def set_active_agent(self, session_id: str, agent: str) -> None:
        """Remember `agent` as the one that spoke last in `session_id`."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections and files."""


class SQLiteStore(SessionStore):
    """Conversations in one SQLite file (the SDK's SQLiteSession), created owner-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"sqlite {path}"
        self._sessions: list[SessionABC] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Create the file owner-only before SQLite opens it; SQLite gives its -wal and
            # -shm side files the same permissions as the database file.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            with closing(self._connect()) as conn, conn:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} ("
                             "session_id TEXT PRIMARY KEY, active_agent TEXT NOT NULL, "
                             "updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the session database {path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5.0)

    async def open(self, session_id: str) -> Conversation:
        from agents.memory import SQLiteSession

        check_session_id(session_id)
        try:
            with closing(self._connect()) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='agent_sessions'"
                ).fetchone() is not None and conn.execute(
                    "SELECT 1 FROM agent_sessions WHERE session_id = ?", (session_id,)
                ).fetchone() is not None
            inner = SQLiteSession(session_id, self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the session database {self.path}: {exc}") from exc
        self._sessions.append(inner)
        return Conversation(session_id, _journaled(inner), self, not exists)

    async def get_active_agent(self, session_id: str) -> str | None:
        with closing(self._connect()) as conn:
            row = conn.execute(f"SELECT active_agent FROM {STATE_TABLE} WHERE session_id = ?",
                               (session_id,)).fetchone()
        return str(row[0]) if row else None

    async def set_active_agent(self, session_id: str, agent: str) -> None:
        try:
            with closing(self._connect()) as conn, conn:
                conn.execute(
                    f"INSERT INTO {STATE_TABLE} (session_id, active_agent) VALUES (?, ?) "
                    "ON CONFLICT(session_id) DO UPDATE SET active_agent = excluded.active_agent, "
                    "updated_at = CURRENT_TIMESTAMP", (session_id, agent))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the session database {self.path}: {exc}") from exc

    async def close(self) -> None:
        for session in self._sessions:
            session.close()  # type: ignore[attr-defined]
        self._sessions.clear()


class MemoryStore(SessionStore):
    """Conversations that live as long as the process (the SDK's in-memory SQLiteSession)."""

    description = "memory (nothing is kept after exit)"

    def __init__(self) -> None:
        self._sessions: dict[str, SessionABC] = {}
        self._active: dict[str, str] = {}

    async def open(self, session_id: str) -> Conversation:
        from agents.memory import SQLiteSession

        check_session_id(session_id)
        is_new = session_id not in self._sessions
        if is_new:
            self._sessions[session_id] = _journaled(SQLiteSession(session_id))
        return Conversation(session_id, self._sessions[session_id], self, is_new)

    async def get_active_agent(self, session_id: str) -> str | None:
        return self._active.get(session_id)

    async def set_active_agent(self, session_id: str, agent: str) -> None:
        self._active[session_id] = agent


def open_store(config: SessionConfig) -> SessionStore:
    """The store a config's `session` block selects."""
    if config.backend == "memory":
        return MemoryStore()
    return SQLiteStore(config.database_path())
