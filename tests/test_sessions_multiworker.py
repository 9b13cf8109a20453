"""Real processes on one conversation: shared stores let workers take turns, SQLite refuses.

Each worker is `python -m routing_runner chat CONFIG --session-id ID`, fed on stdin. These
tests cost a couple of seconds each (starting the SDK), so they are kept to what needs a real
process boundary.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.config import load_config
from routing_runner.stores import open_store

from . import session_services as services
from .conftest import REPO, write_config

pytestmark = pytest.mark.slow  # processes or builds: `-m "not slow"` skips it

LANGUAGES = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
SQLITE_LINE = ("  backend: sqlite          # the file defaults to "
               "~/.local/share/routing-runner/sessions.db\n")
REPLY = re.compile(r"^(\w+): \[offline model\] (.*)$")
TIMEOUT = 60.0
# Four turns, alternating between two workers; the language changes twice, so each handoff
# shows whether the worker saw the agent the other one left the conversation with.
TURNS = [
    ("A", "Hola, ¿cómo estás?"),
    ("B", "Je veux apprendre le français."),
    ("A", "Merci beaucoup pour votre aide."),
    ("B", "Hello, can you help me with my order please?"),
]


class Worker:
    """One chat process, its output read line by line on background threads."""

    def __init__(self, config: Path, session_id: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "routing_runner", "chat", str(config), "--session-id",
             session_id], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env, bufsize=1)
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.opened = threading.Event()
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._read_errors, args=(self.process.stderr,),
                             daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            self.stdout.put(line.rstrip("\n"))
        self.stdout.put(None)

    def _read_errors(self, stream: TextIO) -> None:
        for line in stream:
            self.stderr.append(line)
            if line.startswith("session: "):
                self.opened.set()

    def say(self, message: str) -> list[str]:
        """Send one message; the lines printed up to and including the agent's reply."""
        assert self.process.stdin is not None
        self.process.stdin.write(message + "\n")
        self.process.stdin.flush()
        lines: list[str] = []
        while True:
            try:
                line = self.stdout.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no reply to {message!r}; stderr: "
                                     f"{''.join(self.stderr)}") from None
            if line is None:
                raise AssertionError(f"the worker ended; stderr: {''.join(self.stderr)}")
            lines.append(line)
            if REPLY.match(line):
                return lines

    def finish(self) -> int:
        """End the chat (end of input) and wait for the process."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None and self.process.stderr is not None
        self.process.stdin.close()
        try:
            return self.process.wait(timeout=TIMEOUT)
        finally:
            for reader in self.readers:
                reader.join(timeout=TIMEOUT)
            self.process.stdout.close()
            self.process.stderr.close()


def _environment(**extra: str) -> dict[str, str]:
    # The test's own environment: no API key, tracing off, its own data folder.
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture(params=["postgres", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A languages config on a shared store, and the environment its workers run in."""
    prefix = services.unique_prefix()
    if request.param == "postgres":
        services.require("PostgreSQL")
        block = f"  backend: sqlalchemy\n  table_prefix: {prefix}\n"
        env = _environment(DATABASE_URL=services.POSTGRES_URL)
    else:
        services.require("Redis")
        block = f"  backend: redis\n  key_prefix: {prefix}\n"
        env = _environment(REDIS_URL=services.REDIS_URL)
    try:
        yield write_config(tmp_path, LANGUAGES.replace(SQLITE_LINE, block)), env
    finally:
        if request.param == "postgres":
            services.drop_postgres_tables(prefix)
        else:
            services.drop_redis_keys(prefix)


def _stored(config: Path, env: dict[str, str], session_id: str) -> tuple[list[Any], Any]:
    async def read() -> tuple[list[Any], Any]:
        store = open_store(load_config(config, env={}).config.session, env)
        try:
            return await store.read_items(session_id), await store.summary(session_id)
        finally:
            await store.close()

    return asyncio.run(read())


def test_two_workers_take_turns_on_one_conversation(
        shared: tuple[Path, dict[str, str]]) -> None:
    config, env = shared
    workers = {"A": Worker(config, "shared-1", env), "B": Worker(config, "shared-1", env)}
    try:
        replies = [workers[name].say(message) for name, message in TURNS]
    finally:
        codes = [worker.finish() for worker in workers.values()]
    assert codes == [0, 0]

    speakers = [REPLY.match(lines[-1]).group(1) for lines in replies]  # type: ignore[union-attr]
    assert speakers == ["spanish", "french", "french", "english"]
    # Each handoff starts from the agent the *other* worker's turn ended with.
    assert "  [handoff] triage -> spanish" in replies[0]
    assert "  [handoff] spanish -> french" in replies[1]  # B saw A's spanish
    assert not any("[handoff]" in line for line in replies[2])  # A saw B's french
    assert "  [handoff] french -> english" in replies[3]  # B saw A's french
    # Each worker's model saw the whole history, numbered in order.
    assert "C'est le message n° 2 de notre conversation ; le premier était : « Hola, " \
        in replies[1][-1]
    assert "C'est le message n° 3 de notre conversation" in replies[2][-1]
    assert "This is message 4 of our conversation; the first one was: “Hola, " \
        in replies[3][-1]

    items, summary = _stored(config, env, "shared-1")
    assert [i["content"] for i in items if i.get("role") == "user"] == [m for _, m in TURNS]
    replies_stored = [i for i in items if i.get("role") == "assistant"]
    assert len(replies_stored) == 4 and len(items) == 4 + 4 + 2 * 3  # + 3 handoffs
    assert (summary.last_agent, summary.turns) == ("english", 4)


def test_a_second_process_on_a_sqlite_conversation_is_refused(
        tmp_path: Path, cli: CliRunner) -> None:
    config = write_config(tmp_path, LANGUAGES.replace(
        SQLITE_LINE, "  backend: sqlite\n  path: sessions.db\n"))
    env = _environment()
    first = Worker(config, "mine", env)
    try:
        assert first.opened.wait(TIMEOUT), "".join(first.stderr)
        second = subprocess.run(
            [sys.executable, "-m", "routing_runner", "chat", str(config), "--session-id",
             "mine"], input="Je veux apprendre le français.\n", capture_output=True,
            text=True, encoding="utf-8", env=env, timeout=TIMEOUT)
        assert second.returncode == 3
        assert "error: conversation 'mine' is in use by another process (sqlite " \
            in second.stderr
        assert "Traceback" not in second.stderr and second.stdout == ""
        # The first chat goes on untouched.
        reply = first.say("Hola, ¿cómo estás?")
        assert REPLY.match(reply[-1]).group(1) == "spanish"  # type: ignore[union-attr]
    finally:
        assert first.finish() == 0
    # Once the first process is gone, the conversation can be continued - all of it.
    resumed = cli.invoke(app, ["chat", str(config), "-s", "mine",
                               "-m", "Je veux apprendre le français."])
    assert resumed.exit_code == 0, resumed.output
    assert "session: mine (resumed, last agent spanish)" in resumed.stderr
    assert "C'est le message n° 2 de notre conversation" in resumed.stdout
