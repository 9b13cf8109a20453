"""The default history window (issue 16): without `history_limit` the model sees the latest 200
items, cut at a turn boundary; `history_limit: all` sends the whole conversation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.config import load_config
from routing_runner.config.model import DEFAULT_HISTORY_LIMIT, SessionConfig
from routing_runner.stores import open_store

from .conftest import write_config

# 150 answered messages stored: 300 items, more than the default window holds.
STORED = 150


def _config(folder: Path, history_limit: str | None) -> Path:
    limit = "" if history_limit is None else f"  history_limit: {history_limit}\n"
    return write_config(folder, f"name: bot\nentry: bot\nmodel: {{provider: offline}}\n"
                                f"session:\n  path: {folder / 's.db'}\n{limit}"
                                "agents: {bot: {instructions: Answer.}}\n")


def _prefill(database: Path) -> None:
    async def fill() -> None:
        store = open_store(SessionConfig(path=database))
        try:
            conversation = await store.open("c1")
            await conversation.add_history([(role, f"earlier message {n}")
                                            for n in range(1, STORED + 1)
                                            for role in ("user", "assistant")])
        finally:
            await store.close()

    asyncio.run(fill())


def test_a_config_without_history_limit_gets_the_default_window(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path, None), env={}).config.session.history_limit == 200
    assert load_config(_config(tmp_path, "all"), env={}).config.session.history_limit is None
    assert load_config(_config(tmp_path, "5"), env={}).config.session.history_limit == 5


@pytest.mark.parametrize(("history_limit", "counted", "first"), [
    # The window's 200 items start at a user message: 100 of the stored ones, and the new one.
    (None, DEFAULT_HISTORY_LIMIT // 2 + 1, "earlier message 51"),
    ("all", STORED + 1, "earlier message 1"),
])
def test_the_model_sees_the_default_window_or_the_whole_conversation(
        cli: CliRunner, tmp_path: Path, history_limit: str | None, counted: int,
        first: str) -> None:
    config = _config(tmp_path, history_limit)
    _prefill(tmp_path / "s.db")

    result = cli.invoke(app, ["chat", str(config), "--session-id", "c1", "-m", "Hello there"])

    assert result.exit_code == 0, result.output
    # The offline model counts the user messages it is sent, and quotes the first of them.
    assert f"This is message {counted} of our conversation; the first one was: “{first}”" \
        in result.stdout
