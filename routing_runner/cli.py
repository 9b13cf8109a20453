"""The `routing-runner` command line: arguments in, library calls, rendering and exit codes out.

`validate`, `schema` and `--help` never import the Agents SDK; `chat` imports it only after the
config has loaded.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .cli_replay import replay
from .cli_sessions import app as sessions_app
from .errors import (
    EXIT_INTERRUPTED,
    EXIT_RUN_FAILURE,
    ConfigError,
    Problem,
    RoutingRunnerError,
    UserInputError,
)
from .loader import LoadedConfig, load_config

app = typer.Typer(
    name="routing-runner",
    help="Run multi-agent routing bots declared in YAML on the OpenAI Agents SDK.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)

@app.callback()
def _quiet_libraries() -> None:
    # The SDK and the openai client log failures (with tracebacks) that the turn runner
    # already reports in one line; without a handler Python would print them to stderr.
    for name in ("openai", "httpx", "httpcore"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False


ConfigArg = Annotated[Path, typer.Argument(help="The YAML config file.", show_default=False)]

app.add_typer(sessions_app)


def _fail(error: RoutingRunnerError) -> NoReturn:
    if isinstance(error, ConfigError):
        for problem in error.problems:
            typer.echo(str(problem), err=True)
        errors = sum(p.severity == "error" for p in error.problems)
        typer.echo(f"{errors} error{'s' if errors != 1 else ''} found; nothing was run.", err=True)
    else:
        typer.echo(f"error: {error}", err=True)
    raise typer.Exit(error.exit_code)


def _warn(problems: tuple[Problem, ...]) -> None:
    for problem in problems:
        typer.echo(str(problem), err=True)


def _load(path: Path) -> LoadedConfig:
    try:
        loaded = load_config(path)
    except RoutingRunnerError as error:
        _fail(error)
    _warn(loaded.warnings)
    return loaded


@app.command()
def validate(config: ConfigArg) -> None:
    """Check a config (YAML, schema, meaning) and list every problem with file:line:col."""
    loaded = _load(config)
    cfg = loaded.config
    typer.echo(f"{config}: valid - {_count(len(cfg.agents), 'agent')}, "
               f"{_count(len(cfg.edges()), 'handoff')}, entry {cfg.entry!r}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@app.command()
def schema(
    name: Annotated[str, typer.Argument(help="config")] = "config",
) -> None:
    """Print a JSON Schema (for editors and other tools)."""
    from .schema import load_schema

    try:
        typer.echo(json.dumps(load_schema(name), indent=2, ensure_ascii=False))
    except FileNotFoundError:
        typer.echo(f"error: no schema named {name!r}", err=True)
        raise typer.Exit(2) from None


def _line_reader(interactive: bool) -> Callable[[str], str | None]:
    def read(prompt: str) -> str | None:
        try:
            if interactive:
                return input(prompt)
            line = sys.stdin.readline()
            return line.rstrip("\n") if line else None
        except EOFError:
            return None

    return read


def _list_reader(messages: list[str]) -> Callable[[str], str | None]:
    pending = iter(messages)
    return lambda _prompt: next(pending, None)


@app.command()
def chat(
    config: ConfigArg,
    session_id: Annotated[str | None, typer.Option(
        "--session-id", "-s", help="Resume (or start) the conversation with this id.")] = None,
    message: Annotated[list[str] | None, typer.Option(
        "--message", "-m", help="Send this message instead of reading input (repeatable); "
                                "exit code 3 if a reply fails.")] = None,
    record: Annotated[Path | None, typer.Option(
        "--record", metavar="FILE", help="Write the chat as a transcript for `replay`: each turn "
                                         "expects the agent and handoff route seen.")] = None,
) -> None:
    """Chat with the bot in the terminal, streaming replies; the conversation is stored."""
    from .providers import resolve_provider
    from .render import Style
    from .sessions import check_session_id, new_session_id, open_store

    loaded = _load(config)
    cfg = loaded.config
    if record is not None and (record.exists() or not record.parent.is_dir()):
        _fail(UserInputError(f"--record {record}: " + ("the file exists; choose a new name"
              if record.exists() else f"the folder {record.parent} does not exist")))
    try:
        if session_id is not None:
            check_session_id(session_id)
        provider = resolve_provider(cfg, os.environ)
        store = open_store(cfg.session)
    except RoutingRunnerError as error:
        _fail(error)
    interactive = sys.stdin.isatty() and not message
    style = Style(enabled=sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    typer.echo(f"{cfg.title} - {config}", err=True)
    typer.echo(f"model: {provider.label}", err=True)

    from .chat import HELP, ChatLoop
    from .graph import build_graph
    from .sessions import Conversation
    from .transcript import TranscriptRecorder

    chosen_id = session_id or new_session_id()
    recorder = None if record is None else TranscriptRecorder(record, record.stem, config,
                                                              chosen_id)

    def opened(conversation: Conversation, first_agent: str) -> None:
        if recorder is not None and not conversation.is_new:
            raise UserInputError(f"--record needs a new conversation, and {chosen_id!r} has "
                                 "messages already (a replay starts from an empty one)")
        state = "new" if conversation.is_new else f"resumed, last agent {first_agent}"
        typer.echo(f"session: {conversation.session_id} ({state}) in {store.description}",
                   err=True)
        typer.echo(HELP, err=True)

    reader = _line_reader(interactive) if not message else _list_reader(message)
    try:
        loop = ChatLoop(build_graph(cfg, provider), store, chosen_id, reader,
                        sys.stdout, style, on_open=opened, echo_input=not interactive,
                        on_turn=None if recorder is None else recorder.record)
        loop.run()
    except KeyboardInterrupt:
        typer.echo("", err=True)
    except RoutingRunnerError as error:
        _fail(error)
    if cfg.session.backend != "memory":
        typer.echo(f"resume with: routing-runner chat {config} --session-id {chosen_id}",
                   err=True)
    if recorder is not None:
        typer.echo(f"recorded {_count(len(recorder.turns), 'turn')} to {record}; check it with: "
                   f"routing-runner replay {config} {record}" if recorder.turns
                   else "nothing recorded: no turn completed", err=True)
    if message and loop.failed_turns:
        raise typer.Exit(EXIT_RUN_FAILURE)


app.command()(replay)


def main() -> None:
    """Console-script entry point: never shows a traceback for errors a user can cause."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except RoutingRunnerError as error:  # pragma: no cover - commands catch their own
        typer.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
