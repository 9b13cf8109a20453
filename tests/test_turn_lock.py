"""`SessionStore.turn_lock`: one turn at a time per conversation, across processes.

In-process checks on every backend (waiting, SessionInUseError, the SQLite lease, lock files,
Redis fencing), then real worker processes (tests/turn_lock_worker.py) on SQLite, PostgreSQL
and Redis: two contending for one conversation store whole turns one after the other, and a
worker killed with SIGKILL mid-reply leaves the user's message and no half reply once the next
turn has taken the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import agents.extensions.memory  # noqa: F401 - imported now, not while a short lock is held
import pytest

from routing_runner.config import load_config
from routing_runner.errors import SessionInUseError, StoreError
from routing_runner.stores import open_store
from routing_runner.stores.base import SessionStore
from routing_runner.stores.items import is_user_message
from routing_runner.stores.memory import MemoryStore
from routing_runner.stores.redis import RedisStore
from routing_runner.stores.sqlalchemy import SQLAlchemyStore
from routing_runner.stores.sqlite import SQLiteStore
from routing_runner_testing.wire_server import Fault, Reply, Text, ToolCall, WireServer

from . import session_services as services
from .conftest import REPO, write_config

BACKENDS = ["memory", "sqlite", "postgres", "redis", "sql-rows"]
SHARED = ["sqlite", "postgres", "redis", "sql-rows"]  # the ones several processes can use
# The expiry of Redis locks and lock rows in these tests (renewed every second while held).
LOCK_TTL = 3.0


@contextlib.contextmanager
def session_block(backend: str, folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A config's `session:` block for `backend` and the environment it reads."""
    if backend == "sqlite":
        yield f"{{path: {folder / 'sessions.db'}}}", {}
    elif backend == "memory":
        yield "{backend: memory}", {}
    elif backend == "sql-rows":  # SQLAlchemy on a dialect without advisory locks
        yield ("{backend: sqlalchemy}",
               {"DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'rows.db'}"})
    elif backend == "postgres":
        with services.postgres_prefix() as prefix:
            yield (f"{{backend: sqlalchemy, table_prefix: {prefix}}}",
                   {"DATABASE_URL": services.POSTGRES_URL})
    else:
        with services.redis_prefix() as prefix:
            yield f"{{backend: redis, key_prefix: {prefix}}}", {"REDIS_URL": services.REDIS_URL}


def _config(folder: Path, block: str, base_url: str = "http://127.0.0.1:9/v1") -> Path:
    return write_config(folder, (
        f"entry: triage\nmodel: {{provider: openai, base_url: '{base_url}'}}\n"
        f"session: {block}\nrouting: {{next_turn: entry}}\n"
        "agents:\n"
        "  triage: {instructions: Hand off., handoffs: [helper]}\n"
        "  helper: {instructions: Answer.}\n"))


def _store(config: Path, env: dict[str, str]) -> SessionStore:
    store = open_store(load_config(config).config.session, {**os.environ, **env})
    if isinstance(store, RedisStore | SQLAlchemyStore):
        store.lock_ttl = LOCK_TTL
    return store


@pytest.fixture(params=BACKENDS)
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """Two stores on one backend, as two processes would open it (memory: one store twice)."""
    with session_block(request.param, tmp_path) as (block, env):
        config = _config(tmp_path, block)
        first = _store(config, env)
        yield first, first if isinstance(first, MemoryStore) else _store(config, env)


async def _contend(first: SessionStore, second: SessionStore) -> tuple[str, list[str]]:
    order: list[str] = []
    async with first.turn_lock("talk", wait=5):
        with pytest.raises(SessionInUseError) as refused:
            async with second.turn_lock("talk", wait=0.2):
                order.append("never")

        async def waiter() -> None:
            async with second.turn_lock("talk", wait=30):
                order.append("second")

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0.3)
        order.append("first")
    await task
    return str(refused.value), order


def test_a_held_conversation_waits_then_is_refused_in_one_line(
        two_stores: tuple[SessionStore, SessionStore]) -> None:
    first, second = two_stores

    async def run() -> tuple[str, list[str]]:
        try:
            return await _contend(first, second)
        finally:
            await first.close()
            await second.close()

    message, order = asyncio.run(run())
    assert order == ["first", "second"]
    assert "\n" not in message
    assert "conversation 'talk' is in use" in message and first.description in message


def test_sqlite_turns_and_chats_exclude_each_other_and_leave_no_lock_files(
        tmp_path: Path) -> None:
    chat, server = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    locks = tmp_path / "s.db-locks"

    async def run() -> None:
        await chat.reserve("talk")  # a chat holds the conversation for its whole length
        with pytest.raises(SessionInUseError):
            async with server.turn_lock("talk", wait=0.2):
                pass
        async with chat.turn_lock("talk", wait=0):  # the chat's own turns pass
            pass
        await chat.close()
        async with server.turn_lock("talk", wait=1):
            assert sorted(os.listdir(locks)) == [".writes.lock", "talk.lock"]
            with pytest.raises(SessionInUseError):
                await chat.reserve("talk")
            assert await server.delete("talk") is False  # a turn of its own does not block it
        await server.close()

    asyncio.run(run())
    assert os.listdir(locks) == [".writes.lock"]


def test_a_dead_holders_half_turn_is_cut_back_by_the_next_holder(
        two_stores: tuple[SessionStore, SessionStore]) -> None:
    first, second = two_stores
    reply = [{"type": "function_call", "call_id": "c1", "name": "transfer_to_helper",
              "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": "{}"}]

    async def run() -> tuple[list[Any], Any]:
        try:
            async with first.turn_lock("talk", wait=5):
                conversation = await first.open("talk")
                await conversation.session.add_items(
                    [{"role": "user", "content": "earlier"}])  # history: no turn, no marker
                conversation.begin_turn()
                await conversation.session.add_items([{"role": "user", "content": "hola"}])
                await conversation.session.add_items(reply)
                assert (await first.summary("talk")).pending == 2  # type: ignore[union-attr]
            # The holder is gone without ending its turn (a killed process does no more).
            async with second.turn_lock("talk", wait=5):
                return await second.read_items("talk"), await second.summary("talk")
        finally:
            await first.close()
            await second.close()

    items, summary = asyncio.run(run())
    assert items == [{"role": "user", "content": "earlier"}, {"role": "user", "content": "hola"}]
    assert summary.turns == 2 and summary.pending is None


def test_redis_a_holder_stalled_past_expiry_cannot_write(tmp_path: Path) -> None:
    with session_block("redis", tmp_path) as (block, env):
        config = _config(tmp_path, block)
        stalled, taker = _store(config, env), _store(config, env)
        stalled.lock_ttl = 0.5

        async def run() -> tuple[str, list[Any]]:
            try:
                async with stalled.turn_lock("talk", wait=5):
                    conversation = await stalled.open("talk")
                    conversation.begin_turn()
                    # The event loop stalls on purpose: no renewal, so the lock expires.
                    time.sleep(1.0)  # noqa: ASYNC251
                    async with taker.turn_lock("talk", wait=5):
                        with pytest.raises(StoreError) as refused:
                            await conversation.session.add_items(
                                [{"role": "user", "content": "late"}])
                        with pytest.raises(StoreError):
                            await stalled.record_turns("talk", 1)
                        return str(refused.value), await taker.read_items("talk") \
                            if await taker.exists("talk") else []
            finally:
                await stalled.close()
                await taker.close()

        message, items = asyncio.run(run())
    assert "writes of this one are refused" in message and "\n" not in message
    assert items == []


# -- real processes ------------------------------------------------------------------------

def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra, "OPENAI_API_KEY": "sk-test",
            "OPENAI_AGENTS_DISABLE_TRACING": "1", "PYTHONPATH": str(REPO)}


def _worker(config: Path, env: dict[str, str], *messages: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.turn_lock_worker", str(config), "talk", str(LOCK_TTL),
         *messages], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=_env(env))


def _stored(config: Path, env: dict[str, str]) -> tuple[list[Any], Any]:
    async def read() -> tuple[list[Any], Any]:
        store = _store(config, env)
        try:
            return await store.read_items("talk"), await store.summary("talk")
        finally:
            await store.close()

    return asyncio.run(read())


def _answer(body: dict[str, Any]) -> Reply:
    """Triage hands off to the helper, who answers slowly enough for turns to overlap."""
    if body["instructions"].startswith("Hand off"):
        return ToolCall("transfer_to_helper", latency=0.05)
    return Text("Here is the answer.", latency=0.15, token_delay=0.01)


def _stalling(streaming: threading.Event) -> Callable[[dict[str, Any]], Reply | Fault]:
    """`_answer`, except that the helper's reply to a message saying "stalls" starts
    streaming (`streaming` is set) and never ends."""
    def answer(body: dict[str, Any]) -> Reply | Fault:
        users = [item for item in body.get("input") or body.get("messages") or []
                 if isinstance(item, dict) and item.get("role") == "user"]
        if "stalls" in str(users[-1:]) and not body["instructions"].startswith("Hand off"):
            streaming.set()
            return Fault.stall(after_events=4)
        return _answer(body)

    return answer


def _whole_turns(items: list[Any]) -> list[str]:
    """The user messages, checking that each is followed by a whole reply and nothing else."""
    starts = [n for n, item in enumerate(items) if is_user_message(item)] + [len(items)]
    assert starts[0] == 0, items
    for start, end in itertools.pairwise(starts):
        kinds = [item.get("type", "message") for item in items[start + 1:end]]
        assert kinds == ["function_call", "function_call_output", "message"], items
    return [items[n]["content"] for n in starts[:-1]]


@pytest.mark.slow
@pytest.mark.parametrize("backend", SHARED)
def test_two_processes_on_one_conversation_take_turns(backend: str, tmp_path: Path) -> None:
    with session_block(backend, tmp_path) as (block, env), \
            WireServer(responder=_answer) as server:
        config = _config(tmp_path, block, server.base_url)
        workers = [_worker(config, env, *(f"{name}{n}" for n in range(4))) for name in "AB"]
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            assert out.count("TurnEnded") == 4, out + err
        items, summary = _stored(config, env)
    messages = _whole_turns(items)
    assert sorted(messages) == [f"{name}{n}" for name in "AB" for n in range(4)]
    for name in "AB":  # each worker's turns in its own order
        assert [m for m in messages if m[0] == name] == [f"{name}{n}" for n in range(4)]
    assert summary.turns == 8 and summary.pending is None


@pytest.mark.slow
@pytest.mark.parametrize("backend", SHARED)
def test_a_worker_killed_mid_reply_leaves_the_message_and_no_half_reply(
        backend: str, tmp_path: Path) -> None:
    streaming = threading.Event()

    answer = _stalling(streaming)

    with session_block(backend, tmp_path) as (block, env), \
            WireServer(responder=answer, strict=False) as server:
        config = _config(tmp_path, block, server.base_url)
        killed = _worker(config, env, "first", "this one stalls")
        assert streaming.wait(60), killed.communicate(timeout=5)
        time.sleep(0.3)  # let the stream's first events arrive
        killed.send_signal(signal.SIGKILL)
        out, _ = killed.communicate(timeout=30)
        assert "ended first TurnEnded" in out and "ended this one stalls" not in out, out
        half, _ = _stored(config, env)
        assert half[-1].get("type") == "function_call_output"  # the handoff was stored: half
        nxt = _worker(config, env, "after")
        out, err = nxt.communicate(timeout=120)
        assert nxt.returncode == 0 and "ended after TurnEnded" in out, out + err
        items, summary = _stored(config, env)
    assert items[:4] == half[:4]  # the first turn, whole
    assert is_user_message(items[4]) and items[4]["content"] == "this one stalls"
    assert _whole_turns(items[5:]) == ["after"]
    assert summary.turns == 3 and summary.pending is None


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_chat_killed_mid_reply_is_repaired_by_the_next_chat(backend: str,
                                                              tmp_path: Path) -> None:
    # SQLite: the next chat's lease finds the marker; PostgreSQL: its first turn's lock does.
    streaming = threading.Event()

    answer = _stalling(streaming)

    def chat(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "routing_runner", "chat", str(config), "--session-id",
             "talk"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=_env(env))

    with session_block(backend, tmp_path) as (block, env), \
            WireServer(responder=answer, strict=False) as server:
        config = _config(tmp_path, block, server.base_url)
        killed = chat(config, env)
        assert killed.stdin is not None
        killed.stdin.write("first\nthis one stalls\n")
        killed.stdin.flush()
        assert streaming.wait(60)
        time.sleep(0.3)
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=30)
        assert _stored(config, env)[0][-1].get("type") == "function_call_output"
        out, err = chat(config, env).communicate("after\n", timeout=120)
        assert "Here is the answer." in out, out + err
        items, summary = _stored(config, env)
    assert _whole_turns(items[:4]) == ["first"]
    assert is_user_message(items[4]) and items[4]["content"] == "this one stalls"
    assert _whole_turns(items[5:]) == ["after"]
    assert summary.turns == 3 and summary.pending is None
