"""Text a user gives the runner - chat lines, `-m` messages, transcript turns - checked before
it is stored or sent to a model.

Python decodes the command line with "surrogateescape" (and the chat reads stdin the same
way, see `decode_leniently`): a byte that is not UTF-8 becomes a lone surrogate such as
U+DCFF. Such a string cannot be encoded as UTF-8, so a model request carrying it fails, and
once stored it would fail every later turn of the conversation. Chat input with such bytes is
therefore *repaired*, not refused: each undecodable byte becomes U+FFFD (the replacement
character, visible in the echo) and the user is told, so a long message with one stray byte is
not lost. Conversations stored before this check are repaired the same way when they are read
back (`encodable`).

A message must say something (whitespace only is nothing to send), must not contain NUL (no
text a person types holds one; it comes from a binary paste or a broken pipe), and must fit in
MAX_MESSAGE_CHARS - far above any typed message, well below what would flood a context window.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

MAX_MESSAGE_CHARS = 100_000
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def has_surrogates(text: str) -> bool:
    """Whether `text` holds lone surrogates (undecodable bytes) that UTF-8 cannot encode."""
    return _SURROGATE.search(text) is not None


def encodable(value: Any) -> Any:
    """`value` (text, or JSON-like items) with every lone surrogate replaced by U+FFFD.

    Returns `value` itself when nothing needed replacing, so clean items are not copied.
    """
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value) if has_surrogates(value) else value
    if isinstance(value, list):
        cleaned = [encodable(item) for item in value]
        return value if all(a is b for a, b in zip(cleaned, value, strict=True)) else cleaned
    if isinstance(value, dict):
        pairs = {key: encodable(item) for key, item in value.items()}
        return value if all(pairs[k] is v for k, v in value.items()) else pairs
    return value


def message_problem(text: str) -> str | None:
    """Why `text` (valid Unicode: repaired by `encodable` first) cannot be sent, or None."""
    if not text.strip():
        return "the message is empty (only whitespace)"
    if "\0" in text:
        return "the message contains a NUL character; remove it"
    if len(text) > MAX_MESSAGE_CHARS:
        return f"the message is longer than the limit of {MAX_MESSAGE_CHARS:,} characters"
    return None


@dataclass(frozen=True)
class ChatLine:
    """A line of chat input, checked: the message to send (None: nothing) and a note."""

    message: str | None
    note: str | None = None


def check_chat_line(line: str) -> ChatLine:
    """The message a chat line carries, repaired or refused; blank lines carry none.

    Undecodable bytes are replaced (with a note saying so); a line that is blank carries no
    message and no note (the prompt simply comes back); any other problem refuses the line
    with a note.
    """
    text = line.strip()
    if not text:
        return ChatLine(None)
    note = None
    if has_surrogates(text):
        text = encodable(text)
        note = (f"note: your message held bytes that are not UTF-8; each was replaced by "
                f"{REPLACEMENT}")
    problem = message_problem(text)
    if problem is not None:
        return ChatLine(None, f"not sent: {problem}")
    return ChatLine(text, note)


def check_messages(messages: Sequence[str]) -> str | None:
    """Why one of the messages given up front (`chat -m`) cannot be sent, or None.

    Checked before the chat starts, so a one-shot run sends all of them or none; undecodable
    bytes are not a reason (they are replaced when the message is sent).
    """
    for number, text in enumerate(messages, 1):
        problem = message_problem(encodable(text))
        if problem is not None:
            return f"message {number} {problem.removeprefix('the message ')}"
    return None


def decode_leniently(stream: TextIO) -> None:
    """Make `stream` turn undecodable bytes into lone surrogates instead of raising.

    Python reads stdin strictly in most UTF-8 locales, so one bad byte would end the chat
    with a traceback; decoded leniently, `check_chat_line` replaces it and says so. Both
    `input()` and piped reading use the stream's setting.
    """
    if isinstance(stream, io.TextIOWrapper) and stream.errors != "surrogateescape":
        stream.reconfigure(errors="surrogateescape")


def read_piped_line(stream: TextIO) -> str | None:
    """One line of piped input without its newline, None at end of input.

    Reads at most MAX_MESSAGE_CHARS + 1 characters and skips the rest of a longer line, so a
    huge line (or a stream with no newline at all) cannot grow without bound; the line
    returned is then too long and `check_chat_line` refuses it.
    """
    line = stream.readline(MAX_MESSAGE_CHARS + 1)
    if not line:
        return None
    if line.endswith("\n"):
        return line[:-1]
    if len(line) > MAX_MESSAGE_CHARS:
        while (rest := stream.readline(MAX_MESSAGE_CHARS)) and not rest.endswith("\n"):
            pass
    return line
