"""One open conversation: its history, the agent that spoke last, and rolling back a failed turn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .items import is_user_message, message_text

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

    from .base import SessionStore
    from .journal import JournaledSession


@dataclass
class Conversation:
    """One stored conversation: its SDK session and the agent that spoke last."""

    session_id: str
    session: JournaledSession
    store: SessionStore
    is_new: bool
    # The values of the config's context keys given to this conversation (stored with it).
    context: dict[str, str] = field(default_factory=dict)
    # Tokens per agent over its completed turns (JSON-ready `runtime.usage.Tokens` data).
    usage: dict[str, Any] = field(default_factory=dict)

    async def get_active_agent(self) -> str | None:
        """The agent that spoke last, if any turn completed."""
        return await self.store.get_active_agent(self.session_id)

    async def set_active_agent(self, agent: str) -> None:
        """Remember `agent` as the one that spoke last."""
        await self.store.set_active_agent(self.session_id, agent)

    async def set_context(self, values: Mapping[str, str], *, keep_others: bool = True) -> None:
        """Give the conversation these context values and store them.

        `keep_others=False` forgets the values given before (a replay starting over).
        """
        merged = {**self.context, **values} if keep_others else dict(values)
        if merged != self.context:
            await self.store.set_context(self.session_id, merged)
            self.context = merged

    async def set_usage(self, totals: Mapping[str, Any]) -> None:
        """Store the conversation's new usage totals (after a completed turn)."""
        await self.store.set_usage(self.session_id, totals)
        self.usage = dict(totals)

    def begin_turn(self) -> None:
        """Start counting what the coming turn stores."""
        self.session.begin_turn()

    async def roll_back_turn(self, user_message: TResponseInputItem) -> None:
        """Undo what the current turn stored, keeping only the user's message.

        When another worker has written to the conversation since (shared stores), nothing is
        popped - that would delete its items - and the turn's items stay as they are.
        """
        if not await self.session.turn_is_last():
            if not any(is_user_message(item) for item in self.session.turn_items):
                await self.session.add_items([user_message])
            return
        for _ in range(self.session.added_this_turn):
            if await self.session.pop_item() is None:
                break
        await self.session.add_items([user_message])

    async def retract_unanswered(self) -> str | None:
        """Take back the last message if no reply to it is stored (`/retry`: a failed turn
        kept it, and it is sent again, so stored once); its text, or None when it was answered.
        """
        last = await self.session.get_items(limit=1)
        if not last or not is_user_message(last[0]):
            return None
        await self.session.pop_item()
        return message_text(last[0])

    async def add_unanswered(self, messages: list[str]) -> None:
        """Store user messages that got no reply (interrupted before their reply began)."""
        await self.session.add_items([{"role": "user", "content": text} for text in messages])

    async def add_history(self, messages: Sequence[tuple[str, str]]) -> None:
        """Store earlier messages, each a role ("user" or "assistant") and its text."""
        await self.session.add_items([{"role": role, "content": text}  # type: ignore[misc]
                                      for role, text in messages])

    async def reset(self) -> None:
        """Forget every item: the conversation starts over (replay starts each run so)."""
        await self.session.clear_session()

    async def items(self) -> list[TResponseInputItem]:
        """Every stored item, oldest first."""
        return await self.session.get_items()

    async def check_readable(self, last: int | None = None) -> None:
        """StoreError unless the model would see every row a turn reads (the SDK skips bad
        ones): all stored rows, or the `last` newest when the turn has a history window."""
        await self.store.check_readable(self.session_id, self.session.inner, last)
