"""Reading conversation items (the SDK's input items, as stored) without importing the SDK."""

from __future__ import annotations

from typing import Any


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
