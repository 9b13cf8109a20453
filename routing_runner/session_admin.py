"""Looking after stored conversations: list, show, export, delete - on any backend.

`show` replays a stored conversation through the chat's own renderer: stored items carry no
agent names, so the speaking agent is followed from the entry agent through the recorded
handoffs, the way the turn runner moved through them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

from .config.model import Config, SessionConfig
from .errors import SessionInUseError
from .render import TurnRenderer
from .runtime.events import AgentChanged, Event, TextDelta, ToolCalled, TurnEnded
from .stores import open_store
from .stores.base import SessionStore, SessionSummary
from .stores.items import (
    is_assistant_message,
    is_tool_output,
    is_user_message,
    item_type,
    message_text,
    output_text,
)
from .stores.rows import StoredRow
from .wording import Style, format_time, inert

T = TypeVar("T")
EXPORT_FORMAT = "routing-runner.session/1"


def with_store(config: SessionConfig, action: Callable[[SessionStore], Awaitable[T]]) -> T:
    """Run `action` on the store `config` selects, closing the store afterwards."""
    store = open_store(config)

    async def run() -> T:
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


async def clear_sessions(store: SessionStore) -> tuple[list[str], list[str]]:
    """Delete every conversation of `store`'s owner (every one, without an owner).

    Returns (deleted ids, ids kept because they are in use). Conversations no config has
    claimed yet are kept: they may be another config's, stored before owners were kept.
    """
    deleted: list[str] = []
    in_use: list[str] = []
    for summary in await store.list_sessions():
        if store.owner is not None and summary.owner != store.owner:
            continue
        try:
            if await store.delete(summary.session_id):
                deleted.append(summary.session_id)
        except SessionInUseError:
            in_use.append(summary.session_id)
    return deleted, in_use


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def summary_table(summaries: Sequence[SessionSummary]) -> list[str]:
    """Aligned rows: id, last agent, turns, last activity - with a header row."""
    rows = [("ID", "LAST AGENT", "TURNS", "LAST ACTIVITY")] + [
        (s.session_id, inert(s.last_agent or "-"), "-" if s.turns is None else str(s.turns),
         format_time(s.last_activity)) for s in summaries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
            for r in rows]


def summary_record(summary: SessionSummary) -> dict[str, Any]:
    """A summary as JSON-ready data."""
    return {"session_id": summary.session_id, "last_agent": summary.last_agent,
            "turns": summary.turns, "last_activity": _iso(summary.last_activity),
            "config": summary.owner}


def export_document(summary: SessionSummary, items: Sequence[Any],
                    store_description: str) -> dict[str, Any]:
    """A conversation as one JSON document: its summary and its items as stored."""
    # The context values (chat --context) belong to the conversation: kept when it has some.
    context = {"context": dict(summary.context)} if summary.context else {}
    return {"format": EXPORT_FORMAT, **summary_record(summary), **context,
            "store": store_description, "items": list(items)}


@dataclass(frozen=True)
class UserSaid:
    """A user message of a stored conversation."""

    text: str


def _handoff_target(config: Config, agent: str, tool: str, output: Any) -> str | None:
    """The agent a call handed off to: from the config's handoff tools, else the SDK's output."""
    spec = config.agents.get(agent)
    for handoff in spec.handoffs if spec else ():
        if handoff.tool_name == tool:
            return handoff.agent
    try:
        recorded = json.loads(output) if isinstance(output, str) else None
    except ValueError:
        return None
    if isinstance(recorded, dict) and set(recorded) == {"assistant"}:
        return str(recorded["assistant"])
    return None


def conversation_events(items: Sequence[Any],
                        config: Config) -> Iterator[UserSaid | StoredRow | Event]:
    """A stored conversation as the user's messages and the turn events the chat rendered.

    An unreadable row (a StoredRow among the items) is passed on where it stands.
    """
    agent = config.entry
    calls: dict[str, tuple[str, str]] = {}
    for item in items:
        if isinstance(item, StoredRow):
            yield item
        if not isinstance(item, dict):
            continue
        if is_user_message(item):
            if config.next_turn == "entry":
                agent = config.entry
            yield UserSaid(message_text(item))
        elif item_type(item) == "function_call":
            calls[str(item.get("call_id"))] = (str(item.get("name", "?")),
                                               str(item.get("arguments", "")))
        elif is_tool_output(item):
            call = calls.pop(str(item.get("call_id")), None)
            if call is None:
                continue
            tool, arguments = call
            target = _handoff_target(config, agent, tool, item.get("output"))
            if target is None:
                yield ToolCalled(agent, tool, arguments, output_text(item.get("output")))
            else:
                yield AgentChanged(agent, target, tool)
                agent = target
        elif is_assistant_message(item):
            text = message_text(item)
            yield TextDelta(agent, text)
            yield TurnEnded(agent, text)


def render_conversation(items: Sequence[Any], config: Config, out: TextIO,
                        style: Style) -> None:
    """Write a stored conversation as the chat showed it: `you: ...`, handoffs, replies.

    Unreadable rows (StoredRow items) are marked where they stand.
    """
    renderer = TurnRenderer(out, style)
    for event in conversation_events(items, config):
        if isinstance(event, UserSaid):
            out.write(f"you: {inert(event.text)}\n")
        elif isinstance(event, StoredRow):
            out.write(style.error(f"  [unreadable] row {event.number}: {event.problem}") + "\n")
        else:
            renderer.render(event)


def stored_turns(items: Sequence[Any], config: Config) -> list[tuple[str, TurnEnded | None]]:
    """Each user message with how its turn ended (None: the reply failed or was interrupted).

    The ended turn carries the handoffs made on the way, as the turn runner's TurnEnded does.
    """
    turns: list[tuple[str, TurnEnded | None]] = []
    handoffs: list[AgentChanged] = []
    for event in conversation_events(items, config):
        if isinstance(event, UserSaid):
            turns.append((event.text, None))
            handoffs = []
        elif isinstance(event, AgentChanged):
            handoffs.append(event)
        elif isinstance(event, TurnEnded) and turns:
            turns[-1] = (turns[-1][0], TurnEnded(event.agent, event.text, tuple(handoffs)))
    return turns
