"""A shared store's connection dropping under a running `routing-runner chat` does not end it.

A real chat process talks to the test servers; the test cuts that process's own connections
(Redis `CLIENT KILL`, PostgreSQL `pg_terminate_backend`), never anyone else's, and never
restarts the shared servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from . import session_services as services
from .conftest import write_config

REPLY = "bot: [offline model]"


def _socket_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` holds (Linux /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if match := re.fullmatch(r"socket:\[(\d+)\]", link):
            inodes.add(match.group(1))
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Chat:
    """A `routing-runner chat` process fed one line at a time."""

    def __init__(self, config: Path, session_id: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "routing_runner", "chat", str(config), "-s", session_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", **env}, bufsize=1)
        self.shown = ""

    def send(self, message: str) -> None:
        """Type `message` (its reply is read by `answer`)."""
        assert self.process.stdin is not None
        self.process.stdin.write(message + "\n")
        self.process.stdin.flush()

    def answer(self) -> str:
        """The next reply or error line the chat prints (a failed turn shows `[error] ...`)."""
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            assert line, f"the chat ended: {self.shown!r}"
            self.shown += line
            if line.startswith(REPLY) or line.startswith("  [error]"):
                return line

    def say(self, message: str) -> str:
        """Send `message` and return its reply line."""
        self.send(message)
        return self.answer()

    def end(self) -> tuple[int, str]:
        """Close the input; the exit code and stderr."""
        out, err = self.process.communicate(timeout=120)
        self.shown += out
        return self.process.returncode, err

    def kill(self) -> None:
        """Stop the process if a failed assertion left it running."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture
def chats() -> Iterator[list[Chat]]:
    started: list[Chat] = []
    yield started
    for chat in started:
        chat.kill()


def _config(tmp_path: Path, session: str) -> Path:
    return write_config(tmp_path, (
        "entry: bot\nmodel: {provider: offline}\n"
        f"session: {session}\nagents: {{bot: {{instructions: Answer.}}}}\n"))


# -- Redis ------------------------------------------------------------------------------------

async def _redis(command: Any) -> Any:
    import redis.asyncio

    client = redis.asyncio.from_url(services.REDIS_URL)
    try:
        return await command(client)
    finally:
        await client.aclose()


def _kill_redis_connections(pid: int) -> int:
    """CLIENT KILL every connection process `pid` has to the Redis server; how many."""
    ports = _socket_ports(pid)

    async def kill(client: Any) -> int:
        killed = 0
        for entry in await client.client_list():
            if int(str(entry["addr"]).rsplit(":", 1)[1]) in ports:
                killed += int(await client.execute_command("CLIENT", "KILL", "ID", entry["id"])
                              in (1, b"OK", "OK", True))
        return killed

    return int(asyncio.run(_redis(kill)))


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    with services.redis_prefix() as prefix:
        yield prefix


def test_a_killed_redis_connection_is_reconnected_and_the_chat_goes_on(
        tmp_path: Path, redis_prefix: str, chats: list[Chat]) -> None:
    config = _config(tmp_path, f"{{backend: redis, key_prefix: {redis_prefix}}}")
    chat = Chat(config, "c1", {"REDIS_URL": services.REDIS_URL})
    chats.append(chat)
    assert chat.say("hello one").startswith(REPLY)
    assert _kill_redis_connections(chat.process.pid) >= 1
    assert chat.say("hello two").startswith(REPLY)
    assert _kill_redis_connections(chat.process.pid) >= 1
    assert chat.say("hello three").startswith(REPLY)
    code, err = chat.end()

    assert code == 0, err
    assert "error" not in err
    stored = asyncio.run(_redis(lambda c: c.lrange(f"{redis_prefix}:c1:messages", 0, -1)))
    items = [json.loads(raw) for raw in stored]
    assert [i["content"] for i in items if i.get("role") == "user"] == [
        "hello one", "hello two", "hello three"]
    assert len(items) == 6
    state = asyncio.run(_redis(lambda c: c.hgetall(f"{redis_prefix}:c1:state")))
    assert state[b"turns"] == b"3"


class Outage:
    """A TCP relay to a server that the test can take down (every connection cut, new ones
    closed at once, as by a server restarting) and bring back - without touching the server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.down = False
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Down: every relayed connection is closed and new ones are refused."""
        self.down = True
        with self._lock:
            cut, self._open = self._open, []
        for end in cut:
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def restore(self) -> None:
        """Up again."""
        self.down = False

    def stop(self) -> None:
        self.cut()
        self._listener.close()


def test_a_redis_outage_fails_the_turn_it_hits_and_the_next_turn_works(
        tmp_path: Path, redis_prefix: str, chats: list[Chat]) -> None:
    server = urlsplit(services.REDIS_URL)
    outage = Outage(server.hostname or "127.0.0.1", server.port or 6379)
    try:
        config = _config(tmp_path, f"{{backend: redis, key_prefix: {redis_prefix}}}")
        chat = Chat(config, "c1", {"REDIS_URL": f"redis://127.0.0.1:{outage.port}{server.path}"})
        chats.append(chat)
        assert chat.say("hello one").startswith(REPLY)
        outage.cut()
        failed = chat.say("hello two")
        assert failed.startswith("  [error] cannot reach the session store redis "), failed
        assert failed.rstrip().endswith("your message was not stored")
        outage.restore()
        assert chat.say("hello three").startswith(REPLY)
        code, err = chat.end()
    finally:
        outage.stop()

    assert code == 0, err
    assert "Traceback" not in err
    stored = asyncio.run(_redis(lambda c: c.lrange(f"{redis_prefix}:c1:messages", 0, -1)))
    assert [json.loads(raw).get("content") for raw in stored][::2] == ["hello one",
                                                                        "hello three"]


# -- PostgreSQL -------------------------------------------------------------------------------

def _asyncpg_url() -> str:
    return services.POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
def pg_prefix() -> Iterator[str]:
    with services.postgres_prefix() as prefix:
        yield prefix


async def _terminate_while_blocked(chat: Chat, table: str, message: str) -> None:
    """Send `message` while `table` is locked; when the chat's query waits on the lock,
    terminate that backend (as a database restart would), then release the lock."""
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_url())
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        chat.send(message)
        ports = _socket_ports(chat.process.pid)
        deadline = time.monotonic() + 60
        while True:
            waiting = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND client_port = ANY($1::int[])", sorted(ports))
            if waiting:
                break
            assert time.monotonic() < deadline, "the chat never waited for the table"
            await asyncio.sleep(0.05)
            ports = _socket_ports(chat.process.pid)
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", waiting[0]["pid"])
        await transaction.rollback()
    finally:
        await conn.close()


async def _pg_rows(prefix: str) -> tuple[list[Any], Any]:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_url())
    try:
        items = [json.loads(r[0]) for r in await conn.fetch(
            f'SELECT message_data FROM "{prefix}_agent_messages" ORDER BY id')]
        turns = await conn.fetchval(
            f'SELECT turns FROM "{prefix}_routing_runner_state" WHERE session_id = \'c1\'')
        return items, turns
    finally:
        await conn.close()


def test_a_postgres_connection_terminated_during_a_turn_fails_that_turn_only(
        tmp_path: Path, pg_prefix: str, chats: list[Chat]) -> None:
    config = _config(tmp_path, f"{{backend: sqlalchemy, table_prefix: {pg_prefix}}}")
    chat = Chat(config, "c1", {"DATABASE_URL": services.POSTGRES_URL})
    chats.append(chat)
    assert chat.say("hello one").startswith(REPLY)
    asyncio.run(_terminate_while_blocked(chat, f"{pg_prefix}_routing_runner_state", "hello two"))
    failed = chat.answer()
    assert failed.startswith("  [error] cannot reach the session database"), failed
    assert failed.rstrip().endswith("; your message was not stored")
    assert chat.say("hello three").startswith(REPLY)
    code, err = chat.end()

    assert code == 0, err
    assert "Traceback" not in err
    items, turns = asyncio.run(_pg_rows(pg_prefix))
    # The turn failed reading the last agent, before it stored anything.
    assert [i["content"] for i in items if i.get("role") == "user"] == [
        "hello one", "hello three"]
    assert len(items) == 4 and turns == 2
