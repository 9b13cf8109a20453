"""The interactive chat in a real terminal (tmux): line editing, history, Ctrl-D and Ctrl-C."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routing_runner_testing.wire_server import Reply, Text, WireServer

from .conftest import write_config

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def _echo(body: dict[str, Any]) -> Reply:
    """Answers with the repr of the last message the model received."""
    return Text(f"got {body['input'][-1]['content']!r}")


class Terminal:
    """A chat running in a detached tmux session of its own."""

    def __init__(self, socket: Path, name: str) -> None:
        self.socket = socket
        self.name = name

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], check=True,
                              capture_output=True, text=True).stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        assignments = [f"{k}={v}" for k, v in env.items()]
        shell = f"env {shlex.join(assignments)} {shlex.join(command)}; echo exit-code=$?; " \
                "sleep 600"
        self.tmux("new-session", "-d", "-s", self.name, "-x", "160", "-y", "40", shell)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def screen(self) -> list[str]:
        return self.tmux("capture-pane", "-p", "-t", self.name).rstrip("\n").splitlines()

    def wait_for(self, text: str, timeout: float = 90, *, last: bool = False) -> list[str]:
        """The screen once a line holds `text` (with `last`: the last line is `text`)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if (lines[-1:] == [text]) if last else any(text in line for line in lines):
                return lines
            assert time.monotonic() < deadline, f"{text!r} never appeared:\n" + "\n".join(lines)
            time.sleep(0.05)


@pytest.fixture
def terminals(tmp_path: Path) -> Iterator[Path]:
    socket = tmp_path / "tmux.sock"
    yield socket
    subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True)


def test_the_prompt_edits_lines_recalls_history_and_sends_no_escape_bytes(
        tmp_path: Path, terminals: Path) -> None:
    data = tmp_path / "data"
    with WireServer(responder=_echo) as server:
        config = write_config(tmp_path, (
            f"entry: bot\nmodel: {{provider: openai, base_url: '{server.base_url}'}}\n"
            f"session: {{path: {tmp_path / 'sessions.db'}}}\n"
            "agents: {bot: {instructions: Answer.}}\n"))
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_DATA_HOME": str(data),
               "OPENAI_API_KEY": "sk-test", "NO_COLOR": "1", "TERM": "xterm",
               "OPENAI_AGENTS_DISABLE_TRACING": "1"}
        chat = [sys.executable, "-m", "routing_runner", "chat", str(config)]
        first = Terminal(terminals, "first")
        first.start([*chat, "-s", "one"], env)
        # Keys go in only once the prompt is shown: typed ahead, the terminal would echo them.
        first.wait_for("you>", last=True)
        first.keys("hello there", literal=True)
        first.keys("Enter")
        first.wait_for("bot: got 'hello there'")
        first.wait_for("you>", last=True)
        first.keys("Up")
        first.wait_for("you> hello there", last=True)
        # Five to the left is before "there": the edit lands in the middle of the line.
        first.keys("Left", "Left", "Left", "Left", "Left")
        first.keys("dear ", literal=True)
        first.keys("Enter")
        first.wait_for("bot: got 'hello dear there'")
        first.wait_for("you>", last=True)
        first.keys("C-d")
        lines = first.wait_for("exit-code=0")
        # Ctrl-D moves off the prompt line: the hint starts a line of its own.
        assert any(line.startswith("resume with: routing-runner chat ") for line in lines)
        assert lines[lines.index("exit-code=0") - 1].startswith("resume with:")

        # A later chat on the same config recalls what was typed; Ctrl-C at the prompt
        # ends it with 130.
        second = Terminal(terminals, "second")
        second.start([*chat, "-s", "two"], env)
        second.wait_for("you>", last=True)
        second.keys("Up")
        second.wait_for("you> hello dear there", last=True)
        second.keys("C-c")
        second.wait_for("exit-code=130")
        sent = [request.body["input"] for request in server.requests]

    assert len(sent) == 2
    assert [m["content"] for m in sent[1] if m.get("role") == "user"] == [
        "hello there", "hello dear there"]
    assert all("\x1b" not in str(body) and "[D" not in str(body) for body in sent)
    [history] = (data / "routing-runner" / "history").iterdir()  # one file for the one config
    assert history.read_text(encoding="utf-8") == "hello there\nhello dear there\n"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert stat.S_IMODE(history.parent.stat().st_mode) == 0o700
