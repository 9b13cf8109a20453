"""A `serve` worker killed with SIGKILL in the middle of a streamed reply: the stored
conversation keeps the user's message and no half reply, and another worker answers the next
request on that conversation once the dead worker's turn lock is gone (at once on SQLite and
PostgreSQL, whose locks die with the process or its connection; after the lock key's expiry on
Redis)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from routing_runner.config import load_config
from routing_runner.stores import open_store
from routing_runner.stores.items import is_assistant_message, is_user_message, message_text
from routing_runner_testing.wire_server import WireServer

from . import session_services as services
from .conftest import write_config
from .serve_process import ServeProcess
from .test_serve_limits import Streaming, _environment, _reply

pytestmark = pytest.mark.slow  # server processes


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store_block(request: pytest.FixtureRequest,
                tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The config's `session:` block for one backend, and the environment servers run in."""
    if request.param == "sqlite":
        yield f"{{path: {tmp_path / 'sessions.db'}}}", _environment()
    elif request.param == "postgres":
        with services.postgres_prefix() as prefix:
            yield (f"{{backend: sqlalchemy, table_prefix: {prefix}}}",
                   _environment(DATABASE_URL=services.POSTGRES_URL))
    else:
        with services.redis_prefix() as prefix:
            yield (f"{{backend: redis, key_prefix: {prefix}}}",
                   _environment(REDIS_URL=services.REDIS_URL))


def _stored(config: Path, env: dict[str, str], session_id: str) -> list[Any]:
    async def read() -> list[Any]:
        store = open_store(load_config(config, env={}).config.session, env)
        try:
            return await store.read_items(session_id)
        finally:
            await store.close()

    return asyncio.run(read())


def _wait_for_text(stream: Streaming) -> None:
    """Until the reply's text streams: the first chunk names the agent before the model runs."""
    deadline = time.monotonic() + 60
    while not any(chunk.choices and chunk.choices[0].delta.content for chunk in stream.chunks):
        assert stream.error is None and time.monotonic() < deadline, stream.error
        time.sleep(0.02)


def test_a_worker_killed_mid_reply_leaves_the_message_and_the_next_worker_answers(
        tmp_path: Path, store_block: tuple[str, dict[str, str]]) -> None:
    block, env = store_block
    with WireServer(responder=_reply, strict=False) as model:
        config = write_config(tmp_path, (
            f"name: bot\nentry: bot\nmodel: {{provider: openai, base_url: '{model.base_url}', "
            "retry: {max_retries: 0}}\n"
            f"session: {block}\n"
            # Long enough for a Redis lock key left by the dead worker to expire (15 s).
            "serve: {lock_wait: 40}\n"
            "agents: {bot: {instructions: Answer.}}\n"))
        with ServeProcess(config, env=env) as doomed:
            client = openai.OpenAI(base_url=doomed.base_url, api_key="unused", max_retries=0)
            first = client.chat.completions.with_raw_response.create(
                model="bot", messages=[{"role": "user", "content": "Hello"}])
            session_id = first.headers["x-session-id"]
            slow = Streaming(client, "a slow one please", session_id)
            _wait_for_text(slow)
            os.kill(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait(timeout=30)
            slow.finish()
            client.close()
        with ServeProcess(config, env=env) as survivor:
            client = openai.OpenAI(base_url=survivor.base_url, api_key="unused", max_retries=0)
            again = client.chat.completions.create(
                model="bot", extra_headers={"X-Session-Id": session_id},
                messages=[{"role": "user", "content": "hi again"}])
            client.close()
    assert again.choices[0].message.content == "Quick answer."
    items = _stored(config, env, session_id)
    assert [message_text(i) for i in items if is_user_message(i)] == [
        "Hello", "a slow one please", "hi again"]
    assert [message_text(i) for i in items if is_assistant_message(i)] == [
        "Quick answer.", "Quick answer."]
