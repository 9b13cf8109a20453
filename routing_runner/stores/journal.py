"""The SDK session a conversation runs on: journals a turn's additions, keeps the turn count.

Every SDK read and write goes through the store's `guarded`, so a busy database or an
unreachable server reaches the user as a StoreError saying what failed, never as a driver's
traceback.

A write and its bookkeeping (journal, turn count) run to their end even when the turn is
cancelled meanwhile, so what the journal says was stored is exactly what was stored.

The journal remembers the items the current turn stored, so a rollback can first make sure
they are still the last ones: on a shared store another worker may have written to the same
conversation meanwhile, and popping "the last N items" would then delete its items.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agents.items import TResponseInputItem
from agents.memory import SessionABC

from routing_runner.stores.base import settle
from routing_runner.stores.items import is_user_message
from routing_runner.stores.records import Mark
from routing_runner.stores.turn_lock import holds
from routing_runner.user_text import encodable

if TYPE_CHECKING:
    from routing_runner.stores.base import SessionStore


class JournaledSession(SessionABC):
    """Delegates to an SDK session; remembers how many items the current turn added."""

    def __init__(self, inner: SessionABC, store: SessionStore, session_id: str) -> None:
        self.inner = inner
        self.store = store
        self.session_id = session_id
        self.session_settings = inner.session_settings
        self.added_this_turn = 0
        self.turn_items: list[TResponseInputItem] = []
        self.in_turn = False  # history stored before a first turn is not one

    def begin_turn(self) -> None:
        """Start journaling a new turn."""
        self.added_this_turn = 0
        self.turn_items = []
        self.in_turn = True

    async def turn_is_last(self) -> bool:
        """Whether the items this turn stored are still the conversation's last items."""
        if not self.turn_items:
            return True
        tail = await self.get_items(limit=len(self.turn_items))
        return [_canonical(i) for i in tail] == [_canonical(i) for i in self.turn_items]

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        items = await self.store.guarded(self.inner.get_items(limit),
                                         f"read conversation {self.session_id!r}")
        # Text stored before input was checked may hold undecodable bytes; repaired here, it
        # no longer fails every request of the conversation.
        return encodable(items)  # type: ignore[no-any-return]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        # Settled: a write cancelled by Ctrl-C or SIGTERM may still land (a thread, a sent
        # command), and a journal that missed it would make the rollback store the user's
        # message a second time.
        await settle(self._add_items(items))

    async def _add_items(self, items: list[TResponseInputItem]) -> None:
        await self.store.guarded(self.inner.add_items(items),
                                 f"save conversation {self.session_id!r}")
        self.added_this_turn += len(items)
        self.turn_items.extend(items)
        users = [number for number, item in enumerate(items) if is_user_message(item)]
        if users:
            # The write that counts the turn also marks it in progress (stores.turn_lock): the
            # items stored after its user's message are a reply until the turn's end clears it.
            mark = len(items) - 1 - users[-1] \
                if self.in_turn and holds(self.store, self.session_id) else Mark.KEEP
            await self.store.record_turns(self.session_id, len(users), mark=mark)

    async def pop_item(self) -> TResponseInputItem | None:
        return await settle(self._pop_item())

    async def _pop_item(self) -> TResponseInputItem | None:
        item = await self.store.guarded(self.inner.pop_item(),
                                        f"roll back conversation {self.session_id!r}")
        if item is not None:
            if self.added_this_turn:
                self.added_this_turn -= 1
            if self.turn_items:
                self.turn_items.pop()
            if is_user_message(item):
                await self.store.record_turns(self.session_id, -1)
        return item

    async def clear_session(self) -> None:
        await settle(self._clear_session())

    async def _clear_session(self) -> None:
        await self.store.guarded(self.inner.clear_session(),
                                 f"clear conversation {self.session_id!r}")
        self.begin_turn()
        summary = await self.store.summary(self.session_id)
        if summary is not None and summary.turns:
            await self.store.record_turns(self.session_id, -summary.turns)


def _canonical(item: Any) -> str:
    """An item as stored: backends return JSON round-trips of what was added."""
    return json.dumps(item, sort_keys=True, default=str, ensure_ascii=False)
