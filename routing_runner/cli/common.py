"""What every command of the CLI shares: loading a config, and turning errors into exit codes.

Errors are printed here and only here, one readable line each (every problem of a file, for a
ConfigError), and the process exits with the error's code - never with a traceback. Commands
let a `RoutingRunnerError` propagate: `Commands`, the command group of the app, maps it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from routing_runner.config import LoadedConfig, load_config
from routing_runner.errors import EXIT_USER_INPUT, ConfigError, Problem, RoutingRunnerError
from routing_runner.wording import count, inert, redact_urls

ConfigArg = Annotated[Path, typer.Argument(help="The YAML config file.", show_default=False)]


class Commands(TyperGroup):
    """The app's command group: a `RoutingRunnerError` from any command becomes `fail`."""

    def invoke(self, ctx: Any) -> Any:  # typer.Context (its Click is vendored, private)
        """Run the chosen command; its RoutingRunnerError prints one line and sets the code."""
        try:
            return super().invoke(ctx)
        except RoutingRunnerError as error:
            fail(error)


def fail(error: RoutingRunnerError, where: str = "") -> NoReturn:
    """Print `error` (every problem of a ConfigError) and exit with its code."""
    if isinstance(error, ConfigError):
        for problem in error.problems:
            typer.echo(inert(str(problem)), err=True)
        errors = sum(p.severity == "error" for p in error.problems)
        typer.echo(f"{count(errors, 'error')} found{where}; nothing was run.", err=True)
        if error.checks_skipped:
            typer.echo("The meaning checks (handoff targets, the entry agent, instruction "
                       "files) run once these are fixed.", err=True)
    else:
        typer.echo(f"error: {inert(redact_urls(str(error)))}", err=True)
    raise typer.Exit(error.exit_code)


def usage(message: str) -> NoReturn:
    """Exit 2 for arguments that do not fit together."""
    typer.echo(f"error: {inert(message)}", err=True)
    raise typer.Exit(EXIT_USER_INPUT)


def warn(problems: tuple[Problem, ...]) -> None:
    """Print warnings; they never stop a command."""
    for problem in problems:
        typer.echo(inert(str(problem)), err=True)


def load(path: Path, *, imports: bool = False) -> LoadedConfig:
    """The config at `path` with its warnings printed, or exit 2 listing its problems.

    With `imports`, every `function:` tool and guardrail is imported too (chat, replay, serve,
    --check-imports).
    """
    try:
        loaded = load_config(path)
        if imports:
            from routing_runner.config.guardrails import check_guardrail_imports
            from routing_runner.config.imports import check_tool_imports

            check_tool_imports(loaded.config, loaded.document)
            check_guardrail_imports([loaded.config])
    except RoutingRunnerError as error:
        fail(error)
    warn(loaded.warnings)
    return loaded

