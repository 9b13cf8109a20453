"""Every session backend keeps the same conversation: same replies, same items, same last agent.

One scripted conversation runs through the real turn runner (offline model) on each backend,
half of it before the store is closed and half after reopening it, as `chat --session-id`
does. The in-memory store is the reference the others must match item for item.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from routing_runner.config import load_config
from routing_runner.config.model import EncryptionConfig, SessionConfig
from routing_runner.render import TurnRenderer
from routing_runner.runtime.graph import build_graph
from routing_runner.runtime.providers import resolve_provider
from routing_runner.runtime.turns import TurnRunner
from routing_runner.session_admin import clear_sessions, render_conversation
from routing_runner.stores import open_store
from routing_runner.stores.base import SessionStore
from routing_runner.stores.encryption import new_key
from routing_runner.wording import Style

from . import session_services as services
from .conftest import REPO, write_config

MESSAGES = [
    "Hola, ¿cómo estás?",
    "Je veux apprendre le français.",
    "Merci beaucoup pour votre aide.",
    "Hello, can you help me with my order please?",
    "Thank you very much for your help today.",
]
SESSION_ID = "conv-1"
HISTORY_LIMIT = 8


@dataclass
class Backend:
    """A backend under test: its config, and the environment its store reads."""

    name: str
    config: SessionConfig
    env: dict[str, str]

    def store(self) -> SessionStore:
        """A new store on the same storage (the memory backend: the same store)."""
        return open_store(self.config, self.env)


def _backend(name: str, tmp_path: Path) -> Generator[Backend, None, None]:
    key = {"KEY": new_key()}
    encryption = EncryptionConfig(ttl=86400, key_env="KEY")
    if name == "memory":
        memory = open_store(SessionConfig(backend="memory"))
        backend = Backend(name, SessionConfig(backend="memory"), {})
        backend.store = lambda: memory  # type: ignore[method-assign]
        yield backend
    elif name in ("sqlite", "encrypted"):
        yield Backend(name, SessionConfig(
            backend="sqlite", path=tmp_path / "s.db",
            encryption=encryption if name == "encrypted" else None), key)
    elif name in ("postgres", "encrypted-postgres"):
        services.require("PostgreSQL")
        prefix = services.unique_prefix()
        try:
            yield Backend(name, SessionConfig(
                backend="sqlalchemy", url_env="DB", table_prefix=prefix,
                encryption=encryption if name == "encrypted-postgres" else None),
                {"DB": services.POSTGRES_URL, **key})
        finally:
            services.drop_postgres_tables(prefix)
    elif name in ("redis", "encrypted-redis"):
        services.require("Redis")
        prefix = services.unique_prefix()
        try:
            yield Backend(name, SessionConfig(
                backend="redis", url_env="REDIS", key_prefix=prefix, ttl=3600,
                encryption=encryption if name == "encrypted-redis" else None),
                {"REDIS": services.REDIS_URL, **key})
        finally:
            services.drop_redis_keys(prefix)
    else:  # pragma: no cover
        raise AssertionError(name)


BACKENDS = ["sqlite", "memory", "postgres", "redis", "encrypted", "encrypted-postgres",
            "encrypted-redis"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _backend(request.param, tmp_path)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[Backend]:
    yield from _backend("memory", tmp_path)


def _runner(tmp_path: Path) -> TurnRunner:
    text = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
    path = write_config(tmp_path, text.replace("history_limit: 200",
                                               f"history_limit: {HISTORY_LIMIT}"))
    config = load_config(path, env={}).config
    return TurnRunner(build_graph(config, resolve_provider(config, {})))


@dataclass
class Outcome:
    """What a scripted conversation produced."""

    shown: str  # what the chat printed
    items: list[Any]
    opened_as_new: list[bool]
    resumed_with: str
    summary: tuple[str | None, int | None]
    listed: list[str]


async def _chat(store: SessionStore, runner: TurnRunner, messages: list[str],
                out: io.StringIO) -> tuple[bool, str]:
    """Open the conversation, chat `messages` as `chat` does, close; (was new, first agent)."""
    renderer = TurnRenderer(out, Style(enabled=False))
    try:
        conversation = await store.open(SESSION_ID)
        first = (await runner.agent_for(conversation)).name
        for message in messages:
            out.write(f"you: {message}\n")
            async for event in runner.run(conversation, message):
                renderer.render(event)
        return conversation.is_new, first
    finally:
        await store.close()


def _converse(backend: Backend, runner: TurnRunner) -> Outcome:
    async def scenario() -> Outcome:
        out = io.StringIO()
        new_first, _ = await _chat(backend.store(), runner, MESSAGES[:2], out)
        new_second, resumed_with = await _chat(backend.store(), runner, MESSAGES[2:], out)
        store = backend.store()
        try:
            items = await store.read_items(SESSION_ID)
            summary = await store.summary(SESSION_ID)
            listed = [s.session_id for s in await store.list_sessions()]
        finally:
            await store.close()
        assert summary is not None
        return Outcome(out.getvalue(), items, [new_first, new_second], resumed_with,
                       (summary.last_agent, summary.turns), listed)

    return asyncio.run(scenario())


def test_every_backend_keeps_the_same_conversation(
        backend: Backend, reference: Backend, tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    expected = _converse(reference, runner)
    outcome = _converse(backend, runner)

    assert outcome.shown == expected.shown
    assert outcome.items == expected.items  # nothing lost, nothing reordered
    assert outcome.opened_as_new == [True, False]
    assert outcome.resumed_with == "french"  # the reopened chat continues with the last agent
    assert outcome.summary == ("english", len(MESSAGES))
    assert outcome.listed == [SESSION_ID]


def test_the_reference_conversation_is_the_one_we_mean(reference: Backend,
                                                       tmp_path: Path) -> None:
    outcome = _converse(reference, _runner(tmp_path))
    speakers = [line.split(":")[0] for line in outcome.shown.splitlines()
                if "[offline model]" in line]
    assert speakers == ["spanish", "french", "french", "english", "english"]
    assert "  [handoff] spanish -> french\n" in outcome.shown
    assert "  [handoff] french -> english\n" in outcome.shown
    # The history window (history_limit 8) reached the model: by the fifth message it no
    # longer sees the first one, and quotes the oldest message inside the window instead.
    last = outcome.shown.splitlines()[-1]
    assert "the first one was: “Merci beaucoup pour votre aide.”" in last
    assert "Hola" not in last
    # ... while every item stays stored.
    assert sum(1 for i in outcome.items if i.get("role") == "user") == len(MESSAGES)


def test_show_renders_a_stored_conversation_as_the_chat_did(
        backend: Backend, tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    outcome = _converse(backend, runner)
    shown = io.StringIO()
    render_conversation(outcome.items, runner.graph.config, shown, Style(enabled=False))
    assert shown.getvalue() == outcome.shown


def test_deleting_removes_the_items_and_the_state(backend: Backend, tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    _converse(backend, runner)

    async def delete() -> tuple[bool, bool, bool, list[str]]:
        store = backend.store()
        try:
            deleted = await store.delete(SESSION_ID)
            again = await store.delete(SESSION_ID)
            return deleted, again, await store.exists(SESSION_ID), [
                s.session_id for s in await store.list_sessions()]
        finally:
            await store.close()

    assert asyncio.run(delete()) == (True, False, False, [])


def test_a_rolled_back_turn_counts_once(backend: Backend) -> None:
    async def scenario() -> tuple[list[Any], int | None]:
        store = backend.store()
        try:
            conversation = await store.open("rollback")
            conversation.begin_turn()
            user: Any = {"role": "user", "content": "Hola"}
            await conversation.session.add_items([user])
            await conversation.session.add_items(
                [{"role": "assistant", "type": "message", "content": "half a repl"}])
            await conversation.roll_back_turn(user)
            summary = await store.summary("rollback")
            return await conversation.items(), summary.turns if summary else None
        finally:
            await store.close()

    items, turns = asyncio.run(scenario())
    assert items == [{"role": "user", "content": "Hola"}]
    assert turns == 1


def test_clear_deletes_every_conversation(backend: Backend) -> None:
    async def scenario() -> tuple[list[str], list[str], list[str]]:
        writer = backend.store()
        try:
            for session_id in ("a", "b", "c"):
                conversation = await writer.open(session_id)
                await conversation.session.add_items([{"role": "user", "content": session_id}])
        finally:
            await writer.close()
        store = backend.store()
        try:
            deleted, in_use = await clear_sessions(store)
            return sorted(deleted), in_use, [s.session_id for s in await store.list_sessions()]
        finally:
            await store.close()

    assert asyncio.run(scenario()) == (["a", "b", "c"], [], [])


# SQLite is left out: there a second worker cannot open the conversation at all.
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b not in ("sqlite", "encrypted")],
                         indirect=True)
def test_a_rollback_never_deletes_what_another_worker_stored(backend: Backend) -> None:
    async def scenario() -> list[Any]:
        mine, theirs = backend.store(), backend.store()
        try:
            conversation = await mine.open("race")
            other = await theirs.open("race")
            conversation.begin_turn()
            user: Any = {"role": "user", "content": "mine"}
            await conversation.session.add_items([user])
            other.begin_turn()
            await other.session.add_items([{"role": "user", "content": "theirs"}])
            await conversation.session.add_items(
                [{"role": "assistant", "type": "message", "content": "my partial reply"}])
            await conversation.roll_back_turn(user)  # my turn failed
            return [i["content"] for i in await other.items()]
        finally:
            await mine.close()
            if theirs is not mine:
                await theirs.close()

    assert asyncio.run(scenario()) == ["mine", "theirs", "my partial reply"]
