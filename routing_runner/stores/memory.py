"""Conversations that live as long as the process (the SDK's in-memory SQLiteSession)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from routing_runner.stores.base import SessionStore, SessionSummary
from routing_runner.stores.records import Mark

if TYPE_CHECKING:
    from agents.memory import SessionABC, SQLiteSession

    from .encryption import SessionKey


class MemoryStore(SessionStore):
    """Conversations in this process only, for throwaway runs and tests."""

    def __init__(self, *, encryption: SessionKey | None = None) -> None:
        super().__init__(encryption=encryption)
        self.description = "memory (nothing is kept after exit)"
        if encryption is not None:
            self.description += f", {encryption.describe()}"
        self._sessions: dict[str, SQLiteSession] = {}
        self._state: dict[str, SessionSummary] = {}

    async def _session(self, session_id: str) -> SessionABC:
        from agents.memory import SQLiteSession

        # One SDK session per id for the life of the store, so reopening continues it.
        if session_id not in self._sessions:
            self._sessions[session_id] = SQLiteSession(session_id)
        return self._sessions[session_id]

    async def _exists(self, session_id: str) -> bool:
        if session_id in self._state:
            return True
        session = self._sessions.get(session_id)
        return session is not None and bool(await session.get_items(limit=1))

    async def _summary(self, session_id: str) -> SessionSummary | None:
        if session_id in self._state:
            return self._state[session_id]
        return SessionSummary(session_id) if await self._exists(session_id) else None

    async def _write_state(self, session_id: str, *, agent: str | None, turns: int,
                           mark: Mark | int = Mark.KEEP) -> None:
        current = self._state.get(session_id, SessionSummary(session_id, turns=0))
        pending = current.pending if mark is Mark.KEEP else None
        if isinstance(mark, int):
            pending = len(await (await self._session(session_id)).get_items()) - mark
        self._state[session_id] = replace(
            current, last_agent=agent or current.last_agent,
            turns=max((current.turns or 0) + turns, 0), last_activity=time.time(),
            owner=current.owner or self.owner, pending=pending)

    async def _write_context(self, session_id: str, context: str, *,
                             column: str = "context") -> None:
        current = self._state.get(session_id, SessionSummary(session_id, turns=0))
        self._state[session_id] = replace(current, **{column: json.loads(context)},
                                          last_activity=time.time(),
                                          owner=current.owner or self.owner)

    async def _list(self) -> list[SessionSummary]:
        return [summary for session_id in {*self._state, *self._sessions}
                if (summary := await self._summary(session_id)) is not None]

    async def _delete(self, session_id: str) -> bool:
        existed = await self._exists(session_id)
        self._state.pop(session_id, None)
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.close()
        return existed
