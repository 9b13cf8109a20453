"""A worker process for tests/test_turn_lock.py: turns of one conversation, each under the lock.

    python -m tests.turn_lock_worker CONFIG SESSION_ID LOCK_TTL MESSAGE...

Each message is one turn run by the library's TurnRunner inside `store.turn_lock`, the way a
server worker runs it. Prints `locked MESSAGE` once it holds the lock and `ended MESSAGE EVENT`
after the turn's last event, flushed, so the test can follow (and kill) it.
"""

from __future__ import annotations

import asyncio
import os
import sys

import agents.extensions.memory  # noqa: F401 - imported now, not while a lock is held

from routing_runner.config import load_config
from routing_runner.runtime.graph import build_graph
from routing_runner.runtime.providers import resolve_provider
from routing_runner.runtime.turns import TurnRunner
from routing_runner.stores import open_store
from routing_runner.stores.records import Lease, Reservation
from routing_runner.stores.redis import RedisStore
from routing_runner.stores.sqlalchemy import SQLAlchemyStore

WAIT = 60.0


async def main(config_path: str, session_id: str, lock_ttl: float, messages: list[str]) -> None:
    config = load_config(config_path).config
    store = open_store(config.session)
    if isinstance(store, RedisStore | SQLAlchemyStore):
        store.lock_ttl = lock_ttl  # Redis locks and lock rows (PostgreSQL's need no expiry)
    graph = build_graph(config, resolve_provider(config, os.environ))
    runner = TurnRunner(graph)
    try:
        for message in messages:
            async with store.turn_lock(session_id, wait=WAIT):
                print("locked", message, flush=True)
                summary = await store.summary(session_id)
                conversation = await store.attach(Reservation(session_id, Lease(), summary))
                last = None
                async for event in runner.run(conversation, message):
                    last = event
                print("ended", message, type(last).__name__, flush=True)
    finally:
        await graph.aclose()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]))
