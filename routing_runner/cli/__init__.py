"""The `routing-runner` command line: arguments in, library calls, rendering and exit codes out.

Each command group lives in its own module (`cli.chat`, `cli.replay`, `cli.sessions`); this one
assembles them and holds the small ones. Errors become messages and exit codes in one place,
`cli.common` (`Commands`, `fail`). `validate`, `schema` and `--help` never import the
Agents SDK.
"""

from __future__ import annotations

import json
import logging
import platform
import signal
import sys
from typing import Annotated

import typer

from routing_runner.config.handoff_checks import lint_handoffs
from routing_runner.errors import EXIT_INTERRUPTED, EXIT_USER_INPUT, ConfigError, RoutingRunnerError
from routing_runner.wording import count, inert

from .chat import chat
from .common import Commands, ConfigArg, fail, load, warn
from .graph import graph
from .replay import replay
from .serve import serve
from .sessions import app as sessions_app

app = typer.Typer(
    name="routing-runner",
    cls=Commands,
    help="Run multi-agent routing bots declared in YAML on the OpenAI Agents SDK.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)


def _print_version(asked: bool) -> None:
    if not asked:
        return
    from importlib.metadata import PackageNotFoundError, version

    from routing_runner import __version__

    try:
        sdk = f"openai-agents {version('openai-agents')}"
    except PackageNotFoundError:
        sdk = "openai-agents not installed"
    typer.echo(f"routing-runner {__version__} ({sdk}, Python {platform.python_version()})")
    raise typer.Exit()


@app.callback()
def _main(
    _version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version (and the Agents SDK's) and exit.")] = False,
) -> None:
    # The SDK and the openai client log failures (with tracebacks) that the turn runner
    # already reports in one line; without a handler Python would print them to stderr.
    # OpenTelemetry's exporter logs every retry of a collector that does not answer: spans
    # lost there are not a failure of the conversation (README, "OpenTelemetry").
    for name in ("openai", "httpx", "httpcore", "opentelemetry"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False


@app.command()
def validate(config: ConfigArg, check_imports: Annotated[bool, typer.Option(
        "--check-imports", help="Also import every `function:` tool (runs their modules' code).")]
             = False) -> None:
    """Check a config (YAML, schema, meaning) and list every problem with file:line:col."""
    loaded = load(config, imports=check_imports)
    if loaded.unavailable:
        fail(ConfigError(loaded.unavailable))
    cfg = loaded.config
    warn(tuple(lint_handoffs(loaded.document, cfg)))
    typer.echo(f"{inert(str(config))}: valid - {count(len(cfg.agents), 'agent')}, "
               f"{count(len(cfg.edges()), 'handoff')}, entry {cfg.entry!r}")


@app.command()
def schema(
    name: Annotated[str, typer.Argument(help="config or transcript")] = "config",
) -> None:
    """Print a JSON Schema (for editors and other tools)."""
    from routing_runner.config.schema import load_schema

    try:
        typer.echo(json.dumps(load_schema(name), indent=2, ensure_ascii=False))
    except FileNotFoundError:
        typer.echo(f"error: no schema named {name!r} (config or transcript)", err=True)
        raise typer.Exit(EXIT_USER_INPUT) from None


app.command()(chat)
app.command()(replay)
app.command()(serve)
app.command()(graph)
app.add_typer(sessions_app)


def main() -> None:
    """Console-script entry point: never shows a traceback for errors a user can cause."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except RoutingRunnerError as error:  # pragma: no cover - commands catch their own
        fail(error)
    finally:
        # The command has stopped cleanly and chosen its exit code: a signal landing now
        # (Ctrl-C just as a replay ends) must not turn it into death by signal.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
