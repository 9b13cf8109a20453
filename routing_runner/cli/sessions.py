"""`routing-runner sessions ...`: look after stored conversations, on every backend.

Arguments in, `session_admin` calls, rendering and exit codes out. Data (tables, JSON, the
rendered conversation, a new key) goes to stdout; what happened goes to stderr. The Agents SDK
and database drivers are imported only when a command reaches its store.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from routing_runner.errors import EXIT_RUN_FAILURE, RoutingRunnerError
from routing_runner.wording import Style, count, format_time, inert, use_colour

from .common import fail, load, usage

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from routing_runner.config.model import Config
    from routing_runner.stores.base import SessionStore, SessionSummary

T = TypeVar("T")

app = typer.Typer(
    name="sessions",
    help="List, show, export, repair and delete stored conversations (every session backend).",
    no_args_is_help=True,
)

ConfigArg = Annotated[Path, typer.Argument(
    help="The YAML config whose session store to use.", show_default=False)]
IdArg = Annotated[str, typer.Argument(help="The session id.", show_default=False)]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


class ExportFormat(StrEnum):
    """Formats `sessions export` writes."""

    json = "json"
    transcript = "transcript"


def _config(path: Path) -> Config:
    return load(path).config


def _run(config: Config, action: Callable[[SessionStore], Awaitable[T]]) -> T:
    from routing_runner.session_admin import with_store

    try:
        return with_store(config.session, action)
    except RoutingRunnerError as error:
        fail(error)


def _turns(summary: SessionSummary) -> str:
    if summary.turns is None:
        return "? turns"
    return count(summary.turns, "turn")


def _unclaimed(summaries: list[SessionSummary]) -> str:
    """A note on the conversations no config has claimed yet, or nothing."""
    unclaimed = sum(s.owner is None for s in summaries)
    if not unclaimed:
        return ""
    return (f" ({unclaimed} stored before conversations belonged to a config: resuming one "
            "claims it for this config)")


def _confirm(question: str) -> bool:
    """Ask on stderr; end of input counts as no."""
    try:
        answer = typer.confirm(inert(question), default=False, err=True)
    except typer.Abort:
        answer = False
    if not sys.stdin.isatty():
        typer.echo("", err=True)  # a piped answer is not echoed: end the prompt's line
    return answer


@app.command("list")
def list_sessions(
    config: ConfigArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the stored conversations: id, last agent, turns, last activity (newest first)."""
    from routing_runner.session_admin import summary_record, summary_table

    cfg = _config(config)

    async def action(store: SessionStore) -> tuple[str, list[SessionSummary]]:
        return store.description, await store.list_sessions()

    description, summaries = _run(cfg, action)
    if as_json:
        typer.echo(json.dumps([summary_record(s) for s in summaries], indent=2,
                              ensure_ascii=False))
        return
    typer.echo(inert(f"{count(len(summaries), 'conversation')} in {description}"
                     f"{_unclaimed(summaries)}"), err=True)
    if summaries:
        typer.echo("\n".join(summary_table(summaries)))


@app.command()
def show(config: ConfigArg, session_id: IdArg, show_usage: Annotated[bool, typer.Option(
        "--usage", help="Then its tokens (and cost, with `prices`) per agent over every "
                        "completed turn, as the chat's /usage.")] = False) -> None:
    """Show a stored conversation the way the chat showed it."""
    from routing_runner.runtime.usage import UsageTally, stored_usage
    from routing_runner.session_admin import render_conversation
    from routing_runner.stores.base import SessionSummary
    from routing_runner.stores.rows import StoredRow, describe_unreadable

    cfg = _config(config)

    async def action(store: SessionStore) -> tuple[str, SessionSummary, list[Any]]:
        rows = await store.read_rows(session_id)
        summary = await store.summary(session_id) or SessionSummary(session_id)
        # Unreadable rows stay in place, to be marked; expired ones are gone by design.
        return store.description, summary, [row if row.problem else row.item for row in rows
                                             if not row.expired]

    description, summary, items = _run(cfg, action)
    typer.echo(inert(f"session: {session_id} in {description} - {_turns(summary)}, last agent "
                     f"{summary.last_agent or '-'}, last activity "
                     f"{format_time(summary.last_activity)}"), err=True)
    unreadable = [item for item in items if isinstance(item, StoredRow)]
    if unreadable:
        typer.echo(inert(f"warning: {count(len(unreadable), 'unreadable row')} ("
                         f"{describe_unreadable(unreadable)}): the model does not see them; drop "
                         f"them with `routing-runner sessions repair {config} {session_id} "
                         "--drop-unreadable`"), err=True)
    style = Style(enabled=use_colour(sys.stdout, os.environ))
    render_conversation(items, cfg, sys.stdout, style)
    if show_usage:
        totals = stored_usage(summary.usage)
        lines = UsageTally(cfg, totals, earlier=True).lines() if totals else [
            "no usage is stored: no turn of this conversation completed since usage was kept"]
        typer.echo("\n".join(inert(line) for line in lines))


@app.command()
def export(
    config: ConfigArg,
    session_id: IdArg,
    output_format: Annotated[ExportFormat, typer.Option(
        "--format", "-f", help="json: the summary and the items exactly as stored. "
                               "transcript: the completed turns as a replay transcript.")
    ] = ExportFormat.json,
) -> None:
    """Write a stored conversation to stdout (JSON, or a transcript for `replay`)."""
    from routing_runner.session_admin import export_document, stored_turns
    from routing_runner.stores.base import SessionSummary

    cfg = _config(config)

    async def action(store: SessionStore) -> dict[str, Any]:
        items = await store.read_items(session_id)
        summary = await store.summary(session_id) or SessionSummary(session_id)
        return export_document(summary, items, store.description)

    document = _run(cfg, action)
    if output_format is ExportFormat.json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    from routing_runner.replay.record import TranscriptRecorder

    recorder = TranscriptRecorder(Path.cwd() / f"{session_id}.yaml", f"session {session_id}",
                                  config, session_id, context=document.get("context", {}))
    for user, ended in stored_turns(document["items"], cfg):
        if ended is not None:  # a turn without a reply has nothing to expect
            recorder.add(user, ended)
    typer.echo(recorder.text(), nl=False)


@app.command()
def delete(config: ConfigArg, session_id: IdArg, yes: YesOption = False) -> None:
    """Delete one stored conversation (asks first unless --yes)."""
    from routing_runner.errors import SessionIdError
    from routing_runner.stores.base import check_session_id

    cfg = _config(config)
    try:
        check_session_id(session_id)
    except SessionIdError as error:
        fail(error)

    async def describe(store: SessionStore) -> tuple[str, SessionSummary | None]:
        return store.description, await store.summary(session_id)

    description, summary = _run(cfg, describe)
    if summary is None:
        fail(SessionIdError(f"no conversation {session_id!r} in {description}"))
    question = (f"Delete conversation {session_id} ({_turns(summary)}, last activity "
                f"{format_time(summary.last_activity)}) from {description}?")
    if not yes and not _confirm(question):
        typer.echo("nothing deleted", err=True)
        return

    async def remove(store: SessionStore) -> bool:
        return await store.delete(session_id)

    _run(cfg, remove)
    typer.echo(f"deleted conversation {session_id}", err=True)


@app.command()
def clear(config: ConfigArg, yes: YesOption = False) -> None:
    """Delete every conversation of this config in its store (asks first unless --yes).

    Conversations stored before conversations belonged to a config are kept: they may be
    another config's. Delete them one by one with `sessions delete`.
    """
    cfg = _config(config)

    async def tally(store: SessionStore) -> tuple[str, int, int]:
        summaries = await store.list_sessions()
        unclaimed = sum(s.owner is None for s in summaries) if store.owner else 0
        return store.description, len(summaries) - unclaimed, unclaimed

    description, total, unclaimed = _run(cfg, tally)
    if unclaimed:
        typer.echo(f"keeping {count(unclaimed, 'conversation')} stored "
                   "before conversations belonged to a config (they may be another config's); "
                   "see `routing-runner sessions list`, delete one with `sessions delete`",
                   err=True)
    if total == 0:
        typer.echo(inert(f"no conversations of {cfg.title} in {description}"), err=True)
        return
    noun = "conversation" if total == 1 else f"{total} conversations"
    if not yes and not _confirm(f"Delete {'the ' if total == 1 else 'all '}{noun} "
                                f"of {inert(cfg.title)} in {description}?"):
        typer.echo("nothing deleted", err=True)
        return

    from routing_runner.session_admin import clear_sessions

    async def remove(store: SessionStore) -> tuple[list[str], list[str]]:
        return await clear_sessions(store)

    deleted, in_use = _run(cfg, remove)
    typer.echo(f"deleted {count(len(deleted), 'conversation')}", err=True)
    if in_use:
        typer.echo(f"error: kept {len(in_use)} in use by another process: {', '.join(in_use)}",
                   err=True)
        raise typer.Exit(EXIT_RUN_FAILURE)


@app.command()
def repair(
    config: ConfigArg,
    session_id: IdArg,
    drop_unreadable: Annotated[bool, typer.Option(
        "--drop-unreadable", help="Delete the rows that cannot be read (`sessions show` marks "
                                  "them); they cannot be recovered.")] = False,
    yes: YesOption = False,
) -> None:
    """Repair a stored conversation: drop its unreadable rows (asks first unless --yes)."""
    from routing_runner.stores.rows import describe_unreadable

    if not drop_unreadable:
        usage("say what to repair: --drop-unreadable deletes the rows that cannot be read")
    cfg = _config(config)

    async def inspect(store: SessionStore) -> tuple[str, list[Any]]:
        rows = await store.read_rows(session_id)
        return store.description, [row for row in rows if row.problem is not None]

    description, bad = _run(cfg, inspect)
    if not bad:
        typer.echo(f"conversation {session_id} has no unreadable rows; nothing to repair",
                   err=True)
        return
    question = (f"Drop {count(len(bad), 'unreadable row')} ({describe_unreadable(bad)}) from "
                f"conversation {session_id} in {description}? They cannot be recovered.")
    if not yes and not _confirm(question):
        typer.echo("nothing dropped", err=True)
        return

    async def drop(store: SessionStore) -> int:
        return len(await store.drop_unreadable(session_id))

    dropped = _run(cfg, drop)
    typer.echo(f"dropped {count(dropped, 'unreadable row')} from conversation {session_id}",
               err=True)


@app.command("new-key")
def new_key() -> None:
    """Print a new random key for session.encryption (export it as the key_env variable)."""
    from routing_runner.config.model import DEFAULT_KEY_ENV
    from routing_runner.stores.encryption import new_key as make_key

    typer.echo(make_key())
    typer.echo(f"keep it secret, and keep it: conversations written with a key are readable "
               f"only with it (e.g. export {DEFAULT_KEY_ENV}=<the key>)", err=True)
