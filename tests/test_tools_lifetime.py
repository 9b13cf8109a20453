"""MCP server processes end with the runner: SIGTERM or Ctrl-C of a chat, a `replay -w` run.

Each server writes its process id to a file when it starts; after the runner has exited, the
process table must not hold any of them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import write_config

pytestmark = pytest.mark.slow  # processes: `-m "not slow"` skips it

SERVER = '''
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo")


@server.tool()
def echo(text: str) -> str:
    """Say it back."""
    return text


if __name__ == "__main__":
    with Path("pids.txt").open("a") as pids:
        pids.write(f"{os.getpid()}\\n")
    server.run("stdio")
'''


def _config(folder: Path) -> Path:
    (folder / "echo_server.py").write_text(SERVER, encoding="utf-8")
    return write_config(folder, f"""
entry: bot
model: {{provider: offline}}
session: {{path: {folder / 'sessions.db'}}}
tools:
  echo:
    mcp: {{command: [python, echo_server.py], timeout: 60}}
agents:
  bot: {{instructions: Answer., tools: [echo]}}
""")


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is dead: it only waits to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _servers(folder: Path) -> list[int]:
    pids = folder / "pids.txt"
    return [int(p) for p in pids.read_text().split()] if pids.exists() else []


def _left_behind(folder: Path) -> list[int]:
    # An orphan would live on; a server being stopped has at most a moment left to go.
    deadline = time.monotonic() + 10
    while (alive := [p for p in _servers(folder) if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _chat(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "routing_runner", "chat", str(config)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        bufsize=0, cwd=config.parent)


def _until(process: subprocess.Popen[str], marker: str) -> None:
    assert process.stdout is not None
    seen = ""
    while marker not in seen:
        char = process.stdout.read(1)
        assert char, f"output ended before {marker!r}: {seen!r}"
        seen += char


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ending_the_chat_leaves_no_mcp_server_behind(tmp_path: Path,
                                                               signum: int) -> None:
    process = _chat(_config(tmp_path))
    assert process.stdin is not None
    process.stdin.write("please echo text=hello\n")
    _until(process, "[tool] echo")
    _until(process, "bot: ")
    _until(process, "\n")
    assert [p for p in _servers(tmp_path) if _alive(p)], "the server should run during the chat"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    # SIGTERM ends the chat; a Ctrl-C that lands as the reply finishes ends only the reply,
    # and the chat then ends at the end of its input.
    assert process.returncode in ((130,) if signum == signal.SIGTERM else (0, 130)), err
    assert "Traceback" not in err
    assert _servers(tmp_path) and _left_behind(tmp_path) == []


def test_replay_workers_leave_no_mcp_server_behind(tmp_path: Path) -> None:
    config = _config(tmp_path)
    transcripts = tmp_path / "echo.yaml"
    # Half of them mocked: the workers send mocks and expected arguments back with the results.
    transcripts.write_text("\n---\n".join(
        f"name: echo {i}\n{'mocks: {echo: {result: canned}}' if i % 2 else ''}\n"
        f"turns:\n  - user: please echo text=hi{i}\n"
        f"    expect: {{tools: [{{name: echo, args: {{text: hi{i}}}}}]}}\n" for i in range(4)),
        encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "routing_runner", "replay", str(config), str(transcripts),
         "-w", "2"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed, 0 failed, 0 errors" in result.stdout
    # One server per worker process, shared by its conversations.
    assert len(_servers(tmp_path)) == 2
    assert _left_behind(tmp_path) == []
