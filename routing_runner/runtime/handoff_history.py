"""What the receiving agent of a handoff sees: a handoff's `history` and `remove_tools`.

    full     everything (the SDK's default)
    nest     the conversation so far summarised in one message (the SDK's nested history)
    last_n   the last `n` turns: each of the user's messages and what followed it
    none     this turn only: the user's latest message and the handoffs that led here

`remove_tools` leaves out tool calls and their outputs (earlier handoffs included).

Only the model's input changes: the items a filter keeps for the session (`new_items`) are
never touched, so the stored conversation stays whole whatever the next agent is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agents import HandoffInputData, RunItem, TResponseInputItem
from agents.extensions.handoff_filters import default_handoff_history_mapper
from agents.handoffs import nest_handoff_history

from routing_runner.config.model import HandoffConfig
from routing_runner.stores.items import is_user_message, item_type


def history_filter(
        handoff: HandoffConfig) -> Callable[[HandoffInputData], HandoffInputData] | None:
    """The SDK input filter for `handoff`'s policy; None for the default (everything)."""
    if handoff.history == "full" and not handoff.remove_tools:
        return None
    keep = {"none": 1, "last_n": handoff.n}.get(handoff.history)

    def apply(data: HandoffInputData) -> HandoffInputData:
        if handoff.history == "nest":
            mapper = _without_tools_mapper if handoff.remove_tools else None
            return nest_handoff_history(data, history_mapper=mapper)
        history = data.input_history
        if not isinstance(history, str) and keep is not None:
            history = _last_turns(history, keep)
        if not handoff.remove_tools:
            return data.clone(input_history=history)
        return data.clone(
            input_history=history if isinstance(history, str) else _plain(history),
            pre_handoff_items=_run_items(data.pre_handoff_items),
            input_items=_run_items(data.input_items if data.input_items is not None
                                   else data.new_items))

    return apply


def _last_turns(history: Sequence[TResponseInputItem], turns: int) -> tuple[Any, ...]:
    """The items from the `turns`-th latest user message on (all of them if fewer)."""
    starts = [i for i, item in enumerate(history) if is_user_message(item)]
    return tuple(history[starts[-turns]:] if len(starts) >= turns else history)


def _is_tool_item(item: Any) -> bool:
    # Everything but messages is a tool's doing (calls, outputs, reasoning about them).
    return item_type(item) not in ("message", None)


def _plain(items: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(item for item in items if not _is_tool_item(item))


def _run_items(items: Sequence[RunItem]) -> tuple[RunItem, ...]:
    return tuple(item for item in items if not _is_tool_item(item.to_input_item()))


def _without_tools_mapper(transcript: list[TResponseInputItem]) -> list[TResponseInputItem]:
    """The SDK's summary of the conversation, from its messages only."""
    return default_handoff_history_mapper(list(_plain(transcript)))
