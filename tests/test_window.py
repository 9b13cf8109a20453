"""The history window keeps whole turns: a handoff's call is never cut from its output."""

from __future__ import annotations

from typing import Any

from routing_runner.runtime.history import window


def _turn(n: int, handoff: bool) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"role": "user", "content": f"message {n}"}]
    if handoff:
        items += [
            {"type": "function_call", "call_id": f"c{n}", "name": "transfer_to_x",
             "arguments": "{}"},
            {"type": "function_call_output", "call_id": f"c{n}", "output": "{}"},
        ]
    items.append({"role": "assistant", "content": f"reply {n}"})
    return items


def _history() -> list[dict[str, Any]]:
    return [item for n in range(10) for item in _turn(n, handoff=n % 2 == 0)]


def test_a_short_history_is_kept_whole() -> None:
    history = _history()
    assert window(history, 1000) == history


def test_the_window_starts_at_a_user_message_within_the_limit() -> None:
    kept = window(_history(), 5)
    assert kept[0] == {"role": "user", "content": "message 9"}
    assert len(kept) <= 5


def test_no_tool_output_is_kept_without_its_call_at_any_limit() -> None:
    history = _history()
    for limit in range(1, len(history) + 1):
        kept = window(history, limit)
        calls = {i["call_id"] for i in kept if i.get("type") == "function_call"}
        outputs = {i["call_id"] for i in kept if i.get("type") == "function_call_output"}
        assert outputs <= calls, limit
        assert len(kept) <= limit


def test_a_turn_longer_than_the_limit_drops_only_orphaned_outputs() -> None:
    turn = _turn(0, handoff=True)  # user, call, output, reply
    assert window(turn, 2) == [turn[3]]
