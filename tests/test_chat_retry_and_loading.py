"""`/retry` on a resumed conversation, Ctrl-C while the SDK still loads, the resume hint."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Text, WireServer

from .conftest import REPO, write_config

LANGUAGES = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")


def _stored(database: Path, session_id: str) -> tuple[list[dict[str, Any]], int]:
    """The items of a conversation and its turn count."""
    with sqlite3.connect(database) as conn:
        items = [json.loads(r[0]) for r in conn.execute(
            "SELECT message_data FROM agent_messages WHERE session_id = ? ORDER BY id",
            (session_id,))]
        turns = conn.execute("SELECT turns FROM routing_runner_state WHERE session_id = ?",
                             (session_id,)).fetchone()[0]
    return items, turns


def _read_until(stream: Any, marker: str) -> str:
    seen = ""
    while marker not in seen:
        char = stream.read(1)
        assert char, f"output ended before {marker!r}: {seen!r}"
        seen += char
    return seen


def test_retry_after_resuming_sends_the_stored_unanswered_message_again(
        cli: CliRunner, tmp_path: Path, isolated_environment: Path) -> None:
    # With max_turns 1 the triage agent's handoff uses the only model call: the reply fails
    # and the conversation keeps the message, unanswered.
    config = write_config(tmp_path, LANGUAGES.replace("max_turns: 6", "max_turns: 1"))
    failed = cli.invoke(app, ["chat", str(config), "-s", "r", "-m", "Hola, ¿cómo estás?"])
    assert failed.exit_code == 3, failed.output
    write_config(tmp_path, LANGUAGES)  # the same file, fixed

    resumed = cli.invoke(app, ["chat", str(config), "-s", "r"], input="/retry\n")

    assert resumed.exit_code == 0, resumed.output
    assert "nothing to retry" not in resumed.stdout
    assert "spanish: [offline model]" in resumed.stdout
    items, turns = _stored(isolated_environment / "routing-runner" / "sessions.db", "r")
    users = [i["content"] for i in items if i.get("role") == "user"]
    assert users == ["Hola, ¿cómo estás?"]  # sent again, stored once
    assert items[-1]["role"] == "assistant" and turns == 1


def test_retry_after_resuming_an_answered_conversation_says_there_is_nothing_to_retry(
        cli: CliRunner, tmp_path: Path, isolated_environment: Path) -> None:
    config = write_config(tmp_path, LANGUAGES)
    assert cli.invoke(app, ["chat", str(config), "-s", "a", "-m", "Hola"]).exit_code == 0
    resumed = cli.invoke(app, ["chat", str(config), "-s", "a"], input="/retry\n")
    assert resumed.exit_code == 0
    assert "nothing to retry: the last message was answered" in resumed.stdout
    items, turns = _stored(isolated_environment / "routing-runner" / "sessions.db", "a")
    assert turns == 1 and items[-1]["role"] == "assistant"


# Holds the Agents SDK's import until the test creates the gate file, so a signal is sure to
# land while the first reply waits for the SDK.
GATED_IMPORT = """\
import importlib.abc, os, sys, time

class _Gate(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "agents":
            while not os.path.exists(os.environ["SDK_GATE"]):
                time.sleep(0.01)
        return None

sys.meta_path.insert(0, _Gate())
"""


def test_ctrl_c_while_the_sdk_loads_returns_to_the_prompt_and_keeps_the_message(
        tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(GATED_IMPORT, encoding="utf-8")
    gate = tmp_path / "gate"
    with WireServer(Text("Answer to both.")) as server:
        config = write_config(tmp_path, (
            f"entry: bot\nmodel: {{provider: openai, base_url: '{server.base_url}'}}\n"
            f"session: {{path: {tmp_path / 'sessions.db'}}}\n"
            "agents: {bot: {instructions: Answer.}}\n"))
        env = {**os.environ, "OPENAI_API_KEY": "sk-test", "SDK_GATE": str(gate),
               "PYTHONPATH": str(hook)}
        process = subprocess.Popen(
            [sys.executable, "-m", "routing_runner", "chat", str(config), "-s", "c"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, bufsize=0)
        # A chat that stops answering fails the test (its output ends) instead of hanging it.
        watchdog = threading.Timer(120, process.kill)
        watchdog.start()
        assert process.stdin is not None and process.stderr is not None
        _read_until(process.stderr, "Ctrl-C interrupts a reply.")
        process.stdin.write("First question\n")
        _read_until(process.stdout, "you: First question\n")
        process.send_signal(signal.SIGINT)
        interrupted = _read_until(process.stdout, "\n")
        gate.touch()
        out, err = process.communicate("Second question\n", timeout=60)
        watchdog.cancel()
        requests = [r.body["input"] for r in server.requests]

    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert interrupted == "  [interrupted] reply interrupted; the conversation keeps your message\n"
    assert out == "you: Second question\nbot: Answer to both.\n"
    items, turns = _stored(tmp_path / "sessions.db", "c")
    assert [(i["role"], i.get("content")) for i in items[:2]] == [
        ("user", "First question"), ("user", "Second question")]
    assert items[2]["role"] == "assistant" and len(items) == 3 and turns == 2
    # One model call: the interrupted message never reached the model on its own.
    assert [[m["content"] for m in body] for body in requests] == [
        ["First question", "Second question"]]


def test_the_resume_hint_quotes_the_config_path_for_the_shell(
        cli: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "my bots; rm -rf ~"
    folder.mkdir()
    config = write_config(folder, LANGUAGES)
    result = cli.invoke(app, ["chat", str(config), "-s", "q", "-m", "Hola"])
    hint = result.stderr.splitlines()[-1]
    assert hint.startswith("resume with: ")
    assert shlex.split(hint.removeprefix("resume with: ")) == \
        ["routing-runner", "chat", str(config), "--session-id", "q"]
