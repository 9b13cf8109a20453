"""SIGINT and SIGTERM at random instants never leave a stored conversation half-done.

Real `chat` and `replay` processes talk to the loopback server, which answers slowly enough
that a signal can land anywhere: while the SDK loads, while the user's message is being
stored, between a handoff's call and its output, while the reply streams, while the turn's
bookkeeping is written. Afterwards every stored conversation must be whole.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from routing_runner.stores.items import is_user_message
from routing_runner_testing.wire_server import Reply, Text, ToolCall, WireServer

from .conftest import write_config

pytestmark = pytest.mark.slow  # processes or builds: `-m "not slow"` skips it

SEED = 20261201
CHAT_RUNS = 20
REPLAY_RUNS = 12
AT_ONCE = 3  # runs spend most of their time waiting: three at a time keep the test short


def _answer(body: dict[str, Any]) -> Reply:
    """Triage hands off to the helper, who answers; every request stands alone."""
    if body["instructions"].startswith("Hand off"):
        return ToolCall("transfer_to_helper", latency=0.03)
    return Text("Here is a fairly long answer, streamed a word at a time, to widen the window.",
                latency=0.03, token_delay=0.01)


def _config(tmp_path: Path, server: WireServer) -> Path:
    return write_config(tmp_path, (
        f"entry: triage\nmodel: {{provider: openai, base_url: '{server.base_url}'}}\n"
        f"session: {{path: {tmp_path / 'sessions.db'}}}\n"
        "agents:\n"
        "  triage: {instructions: Hand off., handoffs: [helper]}\n"
        "  helper: {instructions: Answer.}\n"))


def _env() -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": "sk-test", "OPENAI_AGENTS_DISABLE_TRACING": "1"}


def _stored(database: Path) -> dict[str, tuple[list[dict[str, Any]], str | None, int]]:
    """Every conversation in the database: its items, last agent and turn count."""
    with sqlite3.connect(database) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'agent_messages'"
                            ).fetchone():
            return {}  # stopped before any conversation was opened
        items: dict[str, list[dict[str, Any]]] = {}
        for session_id, data in conn.execute(
                "SELECT session_id, message_data FROM agent_messages ORDER BY id"):
            items.setdefault(session_id, []).append(json.loads(data))
        state = {row[0]: (row[1], row[2]) for row in conn.execute(
            "SELECT session_id, active_agent, turns FROM routing_runner_state")}
    return {sid: (items.get(sid, []), *state.get(sid, (None, 0)))
            for sid in set(items) | set(state)}


def _check_whole(session_id: str, items: list[dict[str, Any]], last_agent: str | None,
                 turns: int) -> None:
    users = [item["content"] for item in items if is_user_message(item)]
    where = f"conversation {session_id}: {json.dumps(items)[:2000]}"
    assert len(users) == len(set(users)), f"a user message is stored twice in {where}"
    assert turns == len(users), f"turn count {turns} for {len(users)} messages in {where}"
    calls = {i["call_id"] for i in items if i.get("type") == "function_call"}
    outputs = {i["call_id"] for i in items if i.get("type") == "function_call_output"}
    assert calls == outputs, f"a handoff call without its output in {where}"
    # After each user message: nothing (the reply was interrupted) or a whole reply.
    starts = [n for n, item in enumerate(items) if is_user_message(item)] + [len(items)]
    assert starts[0] == 0, where
    for start, end in itertools.pairwise(starts):
        reply = items[start + 1:end]
        assert not reply or reply[-1].get("role") == "assistant", f"half a reply in {where}"
    answered = any(item.get("role") == "assistant" for item in items)
    if answered:
        assert last_agent == "helper", where
    else:
        assert last_agent in (None, "triage"), where


def _sleep_then_signal(process: subprocess.Popen[str], rng: random.Random, started: str,
                       latest: float) -> int:
    """Once stderr shows `started` (Python has loaded us), wait up to `latest` s, signal."""
    assert process.stderr is not None
    seen = ""
    while started not in seen:
        line = process.stderr.readline()
        assert line, seen
        seen += line
    time.sleep(rng.uniform(0.0, latest))
    signum = rng.choice([signal.SIGINT, signal.SIGTERM])
    process.send_signal(signum)
    return signum


def _chat_run(config: Path, run: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "routing_runner", "chat", str(config),
         "--session-id", f"chat-{run}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=_env())
    assert process.stdin is not None
    process.stdin.write("".join(f"message {run}.{n}\n" for n in range(3)))
    process.stdin.flush()
    signum = _sleep_then_signal(process, random.Random(SEED + run), "Type a message", 2.5)
    _, err = process.communicate(timeout=120)
    assert "Traceback" not in err, err
    # The chat waits at its prompt until stdin closes, after the signal: SIGTERM ends it;
    # SIGINT interrupts a reply (the chat goes on) or ends it at the prompt.
    expected = (130,) if signum == signal.SIGTERM else (0, 130)
    assert process.returncode in expected, (signum, process.returncode, err)


def test_chat_interrupted_at_random_instants_stores_only_whole_turns(tmp_path: Path) -> None:
    # Not strict: a request cut short by the signal is expected here.
    with WireServer(responder=_answer, strict=False) as server:
        config = _config(tmp_path, server)
        with ThreadPoolExecutor(AT_ONCE) as pool:
            list(pool.map(lambda run: _chat_run(config, run), range(CHAT_RUNS)))
    stored = _stored(tmp_path / "sessions.db")
    assert stored
    for session_id, (items, last_agent, turns) in sorted(stored.items()):
        _check_whole(session_id, items, last_agent, turns)


def _replay_run(folder: Path, server: WireServer, run: int) -> None:
    folder.mkdir()
    config = _config(folder, server)
    transcripts = folder / "transcripts.yaml"
    transcripts.write_text("---\n".join(
        f"name: t{t}\nturns:\n" + "".join(
            f"  - user: transcript {t} message {n}\n    expect: {{agent: helper}}\n"
            for n in range(3))
        for t in range(4)), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "routing_runner", "replay", str(config), str(transcripts),
         "-j", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    _sleep_then_signal(process, random.Random(-SEED - run), "model:", 2.5)
    out, err = process.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert process.returncode in (0, 130), (process.returncode, out, err)
    for session_id, (items, last_agent, turns) in sorted(
            _stored(folder / "sessions.db").items()):
        _check_whole(session_id, items, last_agent, turns)


def test_replay_stopped_at_random_instants_stores_only_whole_turns(tmp_path: Path) -> None:
    # Not strict: a request cut short by the signal is expected here.
    with WireServer(responder=_answer, strict=False) as server, \
            ThreadPoolExecutor(AT_ONCE) as pool:
        list(pool.map(lambda run: _replay_run(tmp_path / f"run{run}", server, run),
                      range(REPLAY_RUNS)))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_reply_ends_the_one_shot_chat_with_130(
        tmp_path: Path, signum: signal.Signals) -> None:
    slow = " ".join(f"word{i}" for i in range(400))
    with WireServer(Text(slow, token_delay=0.02)) as server:
        config = write_config(tmp_path, (
            f"entry: bot\nmodel: {{provider: openai, base_url: '{server.base_url}'}}\n"
            f"session: {{path: {tmp_path / 'sessions.db'}}}\n"
            "agents: {bot: {instructions: Answer.}}\n"))
        process = subprocess.Popen(
            [sys.executable, "-m", "routing_runner", "chat", str(config), "-s", "c",
             "-m", "First question"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        assert process.stdout is not None
        seen = ""
        while "word5 " not in seen:
            char = process.stdout.read(1)
            assert char, seen
            seen += char
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "word399" not in out
    items, _, turns = _stored(tmp_path / "sessions.db")["c"]
    assert [(i.get("role"), i.get("content")) for i in items] == [("user", "First question")]
    assert turns == 1
