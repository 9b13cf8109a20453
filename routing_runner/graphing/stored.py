"""The path one stored conversation took: each turn's route, read from the session store.

Stored items carry no agent names; `session_admin.stored_turns` follows the handoffs the way
`sessions show` does. The only part of `graph` that opens a store (and so may load the SDK).
"""

from __future__ import annotations

from typing import Any

from routing_runner.config.model import Config
from routing_runner.session_admin import stored_turns, with_store
from routing_runner.stores.base import SessionStore


def conversation_routes(config: Config, session_id: str) -> list[tuple[str, ...]]:
    """Each turn's route, first agent to the one that answered; () for a turn without reply.

    SessionIdError when nothing is stored under `session_id`; StoreError when the store
    cannot be read (or a row of the conversation cannot).
    """
    async def read(store: SessionStore) -> list[Any]:
        return await store.read_items(session_id)

    routes: list[tuple[str, ...]] = []
    for _, ended in stored_turns(with_store(config.session, read), config):
        if ended is None:
            routes.append(())
            continue
        first = ended.handoffs[0].source if ended.handoffs else ended.agent
        routes.append((first, *(handoff.target for handoff in ended.handoffs)))
    return routes
