"""Two `serve` processes on one PostgreSQL database or one Redis: concurrent requests for one
conversation take turns through the store's turn lock, and nothing is interleaved or lost.

The store's `turn_lock` holds across processes: a PostgreSQL advisory lock, a Redis lock key.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

from routing_runner.config import load_config
from routing_runner.stores import open_store
from routing_runner.stores.items import is_assistant_message, is_user_message

from . import session_services as services
from .conftest import REPO, write_config
from .serve_process import ServeProcess

pytestmark = pytest.mark.slow  # server processes

SQLITE_LINE = "  backend: sqlite "
MESSAGES = ["Je veux apprendre le français.", "Hello, can you help me with my order?",
            "Hola, ¿cómo estás?", "Merci beaucoup pour votre aide.",
            "Thank you, that was very helpful.", "Gracias por tu ayuda."]


@pytest.fixture(params=["postgres", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The languages config on a shared store, and the environment its servers run in."""
    text = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
    if request.param == "postgres":
        with services.postgres_prefix() as prefix:
            block = f"  backend: sqlalchemy\n  table_prefix: {prefix}\n  x-was: "
            yield (write_config(tmp_path, text.replace(SQLITE_LINE, block)),
                   {**os.environ, "DATABASE_URL": services.POSTGRES_URL})
    else:
        with services.redis_prefix() as prefix:
            block = f"  backend: redis\n  key_prefix: {prefix}\n  x-was: "
            yield (write_config(tmp_path, text.replace(SQLITE_LINE, block)),
                   {**os.environ, "REDIS_URL": services.REDIS_URL})


def _stored(config: Path, env: dict[str, str], session_id: str) -> list[Any]:
    async def read() -> list[Any]:
        store = open_store(load_config(config, env={}).config.session, env)
        try:
            return await store.read_items(session_id)
        finally:
            await store.close()

    return asyncio.run(read())


def _whole_turns(items: list[Any]) -> list[str]:
    """The user messages, checking each is followed by its handoffs and one reply before the
    next user message: a turn interleaved with another breaks that order."""
    said: list[str] = []
    answered = True
    for item in items:
        if is_user_message(item):
            assert answered, f"a user message before the reply to {said[-1]!r}: {items}"
            said.append(str(item["content"]))
            answered = False
        elif is_assistant_message(item):
            assert not answered, f"two replies to {said[-1]!r}: {items}"
            answered = True
    assert answered, items
    return said


def test_two_servers_serialise_concurrent_turns_of_one_conversation(
        shared: tuple[Path, dict[str, str]]) -> None:
    config, env = shared
    with ServeProcess(config, env=env) as one, ServeProcess(config, env=env) as two:
        clients = [openai.OpenAI(base_url=s.base_url, api_key="unused", max_retries=0)
                   for s in (one, two)]
        first = clients[0].chat.completions.with_raw_response.create(
            model="multilingual-support", messages=[{"role": "user", "content": "Hello!"}])
        session_id = first.headers["x-session-id"]

        def send(number: int) -> str:
            reply = clients[number % 2].chat.completions.create(
                model="multilingual-support", extra_headers={"X-Session-Id": session_id},
                messages=[{"role": "user", "content": MESSAGES[number]}])
            return str(reply.routing["agent"])

        with ThreadPoolExecutor(len(MESSAGES)) as pool:
            agents = list(pool.map(send, range(len(MESSAGES))))
        for client in clients:
            client.close()
    assert sorted(agents) == ["english", "english", "french", "french", "spanish", "spanish"]
    said = _whole_turns(_stored(config, env, session_id))
    assert sorted(said) == sorted(["Hello!", *MESSAGES])
