"""The history window: the model sees only the latest items, cut at a turn boundary.

A plain "last N items" cut can separate a handoff's tool call from its output, which the model
APIs reject. The window instead starts at the first user message inside the last N items, so
every turn it keeps is whole; when a single turn is longer than N, it keeps the last N items
minus any leading tool outputs whose call fell outside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from routing_runner.stores.items import is_tool_output, is_user_message

Item = Any


def window(items: Sequence[Item], limit: int) -> list[Item]:
    """The last `limit` items of `items`, starting at a turn boundary where possible."""
    tail = list(items[-limit:]) if limit < len(items) else list(items)
    if len(tail) == len(items):
        return tail
    for start, item in enumerate(tail):
        if is_user_message(item):
            return tail[start:]
    call_ids = {item.get("call_id") for item in tail
                if isinstance(item, dict) and not is_tool_output(item)}
    return [item for item in tail
            if not (is_tool_output(item) and item.get("call_id") not in call_ids)]


def history_window(limit: int) -> Callable[[list[Item], list[Item]], list[Item]]:
    """A `session_input_callback` that windows the stored history to `limit` items."""

    def combine(history: list[Item], new_input: list[Item]) -> list[Item]:
        return [*window(history, limit), *new_input]

    return combine
