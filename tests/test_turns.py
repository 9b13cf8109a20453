"""The turn runner: events of a turn, and a stored conversation that survives interruptions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from routing_runner.config import load_config
from routing_runner.runtime.events import AgentChanged, TextDelta, TurnEnded, TurnStarted
from routing_runner.runtime.graph import build_graph
from routing_runner.runtime.providers import resolve_provider
from routing_runner.runtime.turns import TurnRunner
from routing_runner.stores.base import SQLiteStore

from .conftest import REPO


def _runner() -> TurnRunner:
    config = load_config(REPO / "configs" / "languages.yaml", env={}).config
    return TurnRunner(build_graph(config, resolve_provider(config, {})))


async def _items(db: Path, session_id: str) -> list[Any]:
    store = SQLiteStore(db)
    conversation = await store.open(session_id)
    items = await conversation.items()
    await store.close()
    return items


def test_a_turn_streams_started_handoff_deltas_then_ended(tmp_path: Path) -> None:
    async def turn() -> list[Any]:
        store = SQLiteStore(tmp_path / "s.db")
        conversation = await store.open("t")
        events = [e async for e in _runner().run(conversation, "Hola, ¿qué tal estás hoy?")]
        await store.close()
        return events

    events = asyncio.run(turn())
    assert events[0] == TurnStarted("triage")
    assert events[1] == AgentChanged("triage", "spanish", "transfer_to_spanish")
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert {d.agent for d in deltas} == {"spanish"}
    ended = events[-1]
    assert isinstance(ended, TurnEnded)
    assert ended.text == "".join(d.text for d in deltas)
    assert (ended.agent, ended.model_calls, ended.tool_calls) == ("spanish", 2, 0)


@pytest.mark.parametrize("stop_after_deltas", [1, 10])
def test_an_interrupted_turn_keeps_the_user_message_and_nothing_after_it(
        tmp_path: Path, stop_after_deltas: int) -> None:
    db = tmp_path / "s.db"
    runner = _runner()

    async def interrupted_turn() -> None:
        store = SQLiteStore(db)
        conversation = await store.open("t")
        async for _ in runner.run(conversation, "Hola, ¿qué tal estás hoy?"):
            pass  # a first, complete turn
        seen = 0

        async def consume() -> None:
            nonlocal seen
            async for event in runner.run(conversation, "Je voudrais parler français."):
                if isinstance(event, TextDelta):
                    seen += 1
                    if seen == stop_after_deltas:
                        task.cancel()  # what Ctrl-C does to the chat's turn

        task = asyncio.ensure_future(consume())
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await conversation.get_active_agent() == "spanish"
        await store.close()

    asyncio.run(interrupted_turn())
    items = asyncio.run(_items(db, "t"))
    assert items[-1] == {"role": "user", "content": "Je voudrais parler français."}
    assert len(items) == 5  # first turn: user, handoff call + output, reply; then the user message


def test_the_next_turn_after_an_interruption_sees_the_kept_message(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    runner = _runner()

    async def scenario() -> TurnEnded:
        store = SQLiteStore(db)
        conversation = await store.open("t")

        async def consume() -> None:
            async for event in runner.run(conversation, "Hola, ¿qué tal estás hoy?"):
                if isinstance(event, TextDelta):
                    task.cancel()

        task = asyncio.ensure_future(consume())
        with pytest.raises(asyncio.CancelledError):
            await task
        events = [e async for e in runner.run(conversation, "Muchas gracias por la ayuda.")]
        await store.close()
        assert isinstance(events[-1], TurnEnded)
        return events[-1]

    ended = asyncio.run(scenario())
    assert "Este es el mensaje n.º 2 de nuestra conversación" in ended.text
