"""The user's messages inside a nested handoff history, as the offline model reads them.

A handoff with `history: nest` gives the next agent the conversation so far as one assistant
message: a preamble, then `<CONVERSATION HISTORY>`, one numbered line per item (`3. user:
text`, or the item as JSON when its text spans lines), and `</CONVERSATION HISTORY>`. A real
model reads the user's messages out of it; the offline model does the same, so what it counts
is what the receiving agent was shown.
"""

from __future__ import annotations

import json
import re
from typing import Any

from routing_runner.stores.items import is_assistant_message, is_user_message, message_text

START, END = "<CONVERSATION HISTORY>", "</CONVERSATION HISTORY>"
_LINE = re.compile(r"^\d+\. (.*)$")


def nested_user_messages(item: Any) -> list[str] | None:
    """The user's messages in a nested history message, oldest first; None for another item."""
    if not is_assistant_message(item):
        return None
    text = message_text(item)
    if START not in text or END not in text:
        return None
    body = text.split(START, 1)[1].split(END, 1)[0]
    messages = []
    for line in body.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        entry = match.group(1)
        if entry.startswith("user: "):
            messages.append(entry.removeprefix("user: "))
        elif entry.startswith("{"):
            try:
                payload = json.loads(entry)
            except ValueError:
                continue
            if is_user_message(payload):
                messages.append(message_text(payload))
    return messages
