"""Ctrl-C in a real `routing-runner chat` process: the reply stops, the chat goes on."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from routing_runner_testing.wire_server import Text, WireServer

from .conftest import write_config

pytestmark = pytest.mark.slow  # processes or builds: `-m "not slow"` skips it


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30) -> str:
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, seen
        char = process.stdout.read(1)
        assert char, f"output ended before {marker!r}: {seen!r}"
        seen += char
    return seen


def test_sigint_interrupts_the_reply_keeps_the_message_and_the_chat_continues(
        tmp_path: Path) -> None:
    slow = " ".join(f"word{i}" for i in range(400))
    with WireServer(Text(slow, token_delay=0.02), Text("Second answer.")) as server:
        config = write_config(tmp_path, (
            f"entry: bot\nmodel: {{provider: openai, base_url: '{server.base_url}'}}\n"
            f"session: {{path: {tmp_path / 'sessions.db'}}}\n"
            "agents: {bot: {instructions: Answer.}}\n"))
        env = {**os.environ, "OPENAI_API_KEY": "sk-test", "OPENAI_AGENTS_DISABLE_TRACING": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "routing_runner", "chat", str(config), "--session-id", "c"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, bufsize=0)
        assert process.stdin is not None
        process.stdin.write("First question\n")
        process.stdin.flush()
        before = _read_until(process, "word5 ")
        process.send_signal(signal.SIGINT)
        after = _read_until(process, "keeps your message\n")
        out, err = process.communicate("Second question\n", timeout=30)

    assert process.returncode == 0, err
    assert "Traceback" not in err
    transcript = before + after + out
    assert "word399" not in transcript  # the reply was cut short
    assert "[interrupted] reply interrupted; the conversation keeps your message\n" in transcript
    assert transcript.endswith("you: Second question\nbot: Second answer.\n")
    with sqlite3.connect(tmp_path / "sessions.db") as conn:
        stored = [json.loads(r[0]) for r in conn.execute(
            "SELECT message_data FROM agent_messages WHERE session_id = 'c' ORDER BY id")]
    assert [(i.get("role"), i.get("content")) for i in stored[:2]] == [
        ("user", "First question"), ("user", "Second question")]
    assert len(stored) == 3 and stored[2]["role"] == "assistant"
    # The model saw the kept message: the second request carried both questions.
    second_input = server.requests[1].body["input"]
    assert [m["content"] for m in second_input] == ["First question", "Second question"]
