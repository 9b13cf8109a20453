"""Reading conversation items (the SDK's input items, as stored) without importing the SDK.

The one place that knows their shapes: the history window, the offline model, the turn
journal and `sessions show` all read items through these functions.
"""

from __future__ import annotations

from typing import Any

# The items that carry a tool's output back to the model, each answering an earlier call.
OUTPUT_TYPES = frozenset({"function_call_output", "custom_tool_call_output",
                          "computer_call_output", "local_shell_call_output"})


def item_type(item: Any) -> str | None:
    """An item's type (`message` when a message leaves it out); None for a non-item."""
    return item.get("type", "message") if isinstance(item, dict) else None


def is_tool_output(item: Any) -> bool:
    """Whether `item` is a tool's output answering the call with its `call_id`."""
    return item_type(item) in OUTPUT_TYPES


def is_assistant_message(item: Any) -> bool:
    """Whether `item` is a reply of the model."""
    return item_type(item) == "message" and item.get("role") == "assistant"


def is_user_message(item: object) -> bool:
    """Whether a stored item is a message the user wrote (one per turn)."""
    return isinstance(item, dict) and item.get("role") == "user" and \
        item.get("type", "message") == "message"


def message_text(item: Any) -> str:
    """The text of a message item: its content string, or its text parts joined."""
    content = item.get("content") if isinstance(item, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def output_text(output: Any) -> str:
    """A tool's output as text: MCP and structured outputs are lists of parts with `text`."""
    if isinstance(output, str):
        return output
    parts = output if isinstance(output, list) else [output]
    texts = [p.get("text") if isinstance(p, dict) else getattr(p, "text", None) for p in parts]
    if texts and all(isinstance(t, str) for t in texts):
        return "\n".join(t for t in texts if isinstance(t, str))
    return str(output)
