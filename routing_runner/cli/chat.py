"""`routing-runner chat`: arguments in, a chat loop on the terminal, exit code out.

The banner and the prompt appear before the Agents SDK has loaded (see `chat.ChatLoop`).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from routing_runner.errors import (
    EXIT_INTERRUPTED,
    EXIT_RUN_FAILURE,
    RoutingRunnerError,
    UserInputError,
)
from routing_runner.user_text import check_messages, decode_leniently, read_piped_line
from routing_runner.wording import Style, count, inert, use_colour

from .common import ConfigArg, fail, load
from .replay import CassetteDir, RecordMode

if TYPE_CHECKING:
    from routing_runner.config.model import Config
    from routing_runner.replay.record import TranscriptRecorder
    from routing_runner.runtime.cassettes import Tape
    from routing_runner.runtime.graph import AgentGraph
    from routing_runner.runtime.providers import ResolvedProvider


def _piped_reader() -> Callable[[str], str | None]:
    def read(_prompt: str) -> str | None:
        return read_piped_line(sys.stdin)

    return read


def _terminal_reader(config: Path) -> Callable[[str], str | None]:
    from routing_runner.config.model import data_folder

    from .line_input import History, history_path, terminal_reader

    return terminal_reader(History(history_path(data_folder(), config)),
                           lambda warning: typer.echo(f"warning: {warning}", err=True))


def _list_reader(messages: list[str]) -> Callable[[str], str | None]:
    pending = iter(messages)
    return lambda _prompt: next(pending, None)


SessionId = Annotated[str | None, typer.Option(
    "--session-id", "-s", help="Resume (or start) the conversation with this id.")]
Messages = Annotated[list[str] | None, typer.Option(
    "--message", "-m", help="Send this message instead of reading input (repeatable); "
                            "exit code 3 if a reply fails.")]
Context = Annotated[list[str] | None, typer.Option(
    "--context", metavar="KEY=VALUE",
    help="A value for a context key of the config (its instructions' {{ key }}); repeatable. "
         "Stored with the conversation, so a resumed chat keeps it.")]
ShowUsage = Annotated[bool, typer.Option(
    "--usage", help="After each reply, a dim line of its tokens per agent (and cost, with "
                    "`prices`); /usage shows the chat's sum.")]
Record = Annotated[Path | None, typer.Option(
    "--record", metavar="FILE", help="Write the chat as a transcript for `replay`: each turn "
                                     "expects the agent and handoff route seen.")]


def _check_arguments(message: list[str] | None, record: Path | None) -> None:
    if (refused := check_messages(message or [])) is not None:
        raise UserInputError(f"--message: {refused}")
    # lexists: a symlink at the path counts as a file there, even a dangling one.
    if record is not None and (os.path.lexists(record) or not record.parent.is_dir()):
        raise UserInputError(f"--record {record}: " + (
            "the file exists; choose a new name" if os.path.lexists(record)
            else f"the folder {record.parent} does not exist"))


def _context_of(cfg: Config, context: list[str] | None) -> dict[str, str]:
    """The --context values; UserInputError for a wrong one, or a guardrail that won't import."""
    from routing_runner.config.guardrails import check_guardrail_imports
    from routing_runner.config.placeholders import parse_assignments

    check_guardrail_imports([cfg])
    return parse_assignments(context or [], cfg.context)


def _tape(folder: Path | None, record_mode: str | None, cfg: Config, name: str,
          ) -> tuple[Tape | None, ResolvedProvider]:
    """The chat's cassette (`DIR/<name>.yaml`; new_episodes unless told) and the provider,
    resolved with a placeholder key when only the cassette answers (no request is sent)."""
    try:
        return _open_tape(folder, record_mode, cfg, name)
    except RoutingRunnerError as error:
        fail(error)


def _open_tape(folder: Path | None, record_mode: str | None, cfg: Config, name: str,
               ) -> tuple[Tape | None, ResolvedProvider]:
    from routing_runner.runtime.providers import resolve_provider

    if folder is None:
        if record_mode is not None:
            raise UserInputError("--record-mode needs --cassettes DIR")
        return None, resolve_provider(cfg, os.environ)
    # Only now: the cassettes load the SDK, which a chat otherwise loads behind its prompt.
    from routing_runner.replay.cassettes import (
        RECORD_MODES,
        cassette_path,
        check_folder,
        new_tape,
        replay_environment,
        tape_mode,
    )

    mode = record_mode or "new_episodes"
    if mode not in RECORD_MODES:
        raise UserInputError(f"--record-mode {mode}: choose one of {', '.join(RECORD_MODES)}")
    check_folder(folder, mode)
    path = cassette_path(folder, name)
    kind = tape_mode(mode, path)
    provider = resolve_provider(cfg, replay_environment(os.environ, kind == "replay", [cfg]))
    return new_tape(path, kind, cfg, provider), provider


def _save_tape(tape: Tape | None) -> None:
    if tape is None:
        return
    try:
        tape.save()
    except (RoutingRunnerError, OSError) as error:
        typer.echo(f"error: cassette {tape.path}: {error}", err=True)
        return
    typer.echo(f"cassette {tape.path}: {tape.recorded} recorded, {tape.replayed} replayed, "
               f"{tape.missed} missed", err=True)


def _farewell(cfg: Config, config: Path, chosen_id: str, record: Path | None,
              recorder: TranscriptRecorder | None) -> None:
    """What a chat says as it ends: how to resume it, and what it recorded."""
    if cfg.session.backend != "memory":
        typer.echo(f"resume with: routing-runner chat {shlex.quote(str(config))} "
                   f"--session-id {chosen_id}", err=True)
    if recorder is not None:
        typer.echo(f"recorded {count(len(recorder.turns), 'turn')} to {record}; check it with: "
                   f"routing-runner replay {config} {record}" if recorder.turns
                   else "nothing recorded: no turn completed", err=True)


def chat(config: ConfigArg, session_id: SessionId = None, message: Messages = None,
         record: Record = None, context: Context = None, usage: ShowUsage = False,
         cassettes: CassetteDir = None, record_mode: RecordMode = None) -> None:
    """Chat with the bot in the terminal, streaming replies; the conversation is stored."""
    from routing_runner.chat import HELP, ChatLoop
    from routing_runner.replay.record import TranscriptRecorder
    from routing_runner.stores import open_store
    from routing_runner.stores.base import Reservation, check_session_id, new_session_id

    cfg = load(config).config
    _check_arguments(message, record)
    given = _context_of(cfg, context)
    if session_id is not None:
        check_session_id(session_id)
    chosen_id = session_id or new_session_id()
    # With --record, the cassette is the transcript's: replay finds it by that name.
    tape, provider = _tape(cassettes, record_mode, cfg,
                           record.stem if record is not None else f"chat {chosen_id}")
    store = open_store(cfg.session)
    interactive = sys.stdin.isatty() and not message
    decode_leniently(sys.stdin)
    style = Style(enabled=use_colour(sys.stdout, os.environ))
    typer.echo(inert(f"{cfg.title} - {config}"), err=True)
    typer.echo(f"model: {inert(provider.label)}", err=True)
    recorder = None if record is None else TranscriptRecorder(record, record.stem, config,
                                                              chosen_id, context=given)

    def opened(reservation: Reservation, first_agent: str) -> None:
        state = "new" if reservation.is_new else f"resumed, last agent {first_agent}"
        typer.echo(inert(f"session: {chosen_id} ({state}) in {store.description}"), err=True)
        typer.echo(HELP, err=True)

    def build() -> AgentGraph:
        from routing_runner.runtime.graph import build_graph

        return build_graph(cfg, provider, wrap_model=None if tape is None else tape.wrap)

    reader = _list_reader(message) if message else \
        _terminal_reader(config) if interactive else _piped_reader()
    loop = ChatLoop(cfg, build, store, chosen_id, reader,
                    sys.stdout, style, on_open=opened, echo_input=not interactive,
                    on_turn=None if recorder is None else recorder.record,
                    require_new=None if recorder is None else "--record",
                    one_shot=bool(message), context=given, show_usage=usage)
    interrupted = False
    try:
        loop.run()
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C at the prompt, a second one, SIGTERM
    _save_tape(tape)
    _farewell(cfg, config, chosen_id, record, recorder)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if message and loop.failed_turns:
        raise typer.Exit(EXIT_RUN_FAILURE)
