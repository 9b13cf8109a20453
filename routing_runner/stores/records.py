"""The plain values stores deal in: session ids, table names, summaries, leases, reservations."""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import json
import re
import secrets
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from routing_runner.errors import SessionIdError, StoreError

# Letters, digits, '.', '_' and '-': safe as a file name (the SQLite lock files), as a SQL
# parameter and inside a Redis key (no ':' to split on, no glob characters).
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
T = TypeVar("T")


def new_session_id() -> str:
    """A fresh random session id (48 random bits, 12 hex digits)."""
    return secrets.token_hex(6)


def check_session_id(session_id: str) -> str:
    """`session_id` when it is a safe id, else SessionIdError."""
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise SessionIdError(
            f"invalid session id {session_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return session_id


def require_extra(module: str, extra: str, what: str) -> None:
    """StoreError naming the extra to install when `module` is not importable."""
    if importlib.util.find_spec(module) is None:
        raise StoreError(f"{what} needs the optional package {module!r}: "
                         f"pip install 'routing-runner[{extra}]'")


async def settle(operation: Awaitable[T]) -> T:
    """Await `operation` to its end even if the caller is cancelled meanwhile.

    Bookkeeping written after the SDK stored items must not be abandoned halfway by Ctrl-C,
    or the turn count would drift from the items; the cancellation is re-raised afterwards.
    """
    task = asyncio.ensure_future(operation)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        raise cancelled
    return task.result()


# The schema's patterns again: stores can be built directly, and the SDK writes table names
# into its SQL as text, so a name is checked where it is used as well.
TABLE_PREFIX_PATTERN = re.compile(r"^[a-z](?:[a-z0-9_]{0,30}[a-z0-9])?$")
KEY_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class TableNames:
    """The SQL tables of a store: the SDK's two and our state table, all with one prefix."""

    sessions: str = "agent_sessions"
    messages: str = "agent_messages"
    state: str = "routing_runner_state"

    @classmethod
    def with_prefix(cls, prefix: str | None) -> TableNames:
        """The tables for `prefix` (None: the SDK's default names)."""
        if prefix is None:
            return cls()
        if not TABLE_PREFIX_PATTERN.fullmatch(prefix):
            raise StoreError(f"invalid table prefix {prefix!r}: use a lower-case letter, then "
                             "up to 31 lower-case letters, digits or '_'")
        return cls(f"{prefix}_agent_sessions", f"{prefix}_agent_messages",
                   f"{prefix}_routing_runner_state")

    def describe(self) -> str:
        """How the tables are shown in a store's description."""
        return f"tables {self.sessions}, {self.messages}, {self.state}"


@dataclass(frozen=True)
class SessionSummary:
    """What a store knows of one conversation without reading its items.

    `turns` counts the user messages stored; it and the others are None when the conversation's
    items exist but its state record does not (written by another tool, or a crash between the
    two writes).
    """

    session_id: str
    last_agent: str | None = None
    turns: int | None = None
    last_activity: float | None = None  # seconds since the epoch, UTC
    owner: str | None = None  # the config it belongs to; None: stored before owners were kept
    # The values of the config's context keys this conversation was given (chat --context).
    context: Mapping[str, str] | None = None
    # A turn in progress under an exclusive hold: how many stored items are the history and its
    # user's message. Items beyond are a reply its holder never finished (stores.turn_lock).
    pending: int | None = None
    # Tokens per agent over the conversation's completed turns, as `runtime.usage.Tokens`
    # data (JSON from the store; `runtime.usage.stored_usage` reads it).
    usage: Mapping[str, Any] | None = None


def read_usage(stored: str | bytes | None) -> Mapping[str, Any] | None:
    """A conversation's stored usage totals (JSON text), None when it has none or it is
    unreadable (then its totals start over rather than the conversation failing to open)."""
    if stored is None:
        return None
    try:
        value = json.loads(stored)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def read_context(stored: str | bytes | None) -> Mapping[str, str] | None:
    """A conversation's stored context (JSON text), None when it has none or it is unreadable.

    Unreadable means written by something else: the conversation then starts without it and
    says so through the missing keys, rather than failing to open.
    """
    if stored is None:
        return None
    try:
        value = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): str(v) for k, v in value.items()}


class Lease:
    """Exclusive use of one conversation while it is open; stores without locks lend this one."""

    exclusive = False  # whether other processes are kept out (a lock file) or not (this one)

    def release(self) -> None:
        """Give the conversation back (a lock file is deleted too)."""


class TurnHold:
    """One turn's exclusive hold on a conversation (stores.turn_lock)."""

    async def release(self) -> None:
        """Give the conversation back to the next turn."""


class Mark(enum.Enum):
    """What a state write does to the "turn in progress" marker (`SessionSummary.pending`).

    Besides these, a state write may carry a number n: the write follows a user's message,
    and the marker becomes the number of stored items minus n (the items stored after it).
    """

    KEEP = "keep"
    CLEAR = "clear"


@dataclass(frozen=True)
class Reservation:
    """A conversation held for this process (its lease taken), not yet opened.

    Reserving needs neither the Agents SDK nor the conversation's items, so a chat can refuse a
    conversation in use, or say which agent will answer, before the SDK has loaded.
    """

    session_id: str
    lease: Lease
    summary: SessionSummary | None

    @property
    def is_new(self) -> bool:
        """Nothing is stored for this conversation yet."""
        return self.summary is None

