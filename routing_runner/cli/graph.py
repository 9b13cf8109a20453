"""`routing-runner graph`: the routing graph of a config, optionally with coverage or a path.

Built from the YAML alone: neither the Agents SDK nor a store is loaded unless `--session`
asks for a stored conversation.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .common import ConfigArg, load, usage


class GraphFormat(StrEnum):
    """Formats `graph` writes."""

    mermaid = "mermaid"
    dot = "dot"
    text = "text"


def graph(
    config: ConfigArg,
    output_format: Annotated[GraphFormat, typer.Option(
        "--format", "-f", help="mermaid (renders on GitHub as is), dot (Graphviz) or text.")
    ] = GraphFormat.mermaid,
    coverage: Annotated[Path | None, typer.Option(
        "--coverage", metavar="REPORT.json",
        help="A `replay --json` report: mark the handoffs it took (how often) and never took.",
        show_default=False)] = None,
    session: Annotated[str | None, typer.Option(
        "--session", metavar="ID",
        help="Draw one stored conversation's path over the graph.", show_default=False)] = None,
) -> None:
    """Draw the routing graph: agents (entry, language) and handoffs with their tool names."""
    from routing_runner.graphing.draw import draw
    from routing_runner.graphing.overlay import Overlay, coverage_overlay, session_overlay

    if coverage is not None and session is not None:
        usage("--coverage and --session draw different things over the graph: give one")
    cfg = load(config).config
    overlay: Overlay | None = None
    if coverage is not None:
        overlay = coverage_overlay(cfg, coverage)
    elif session is not None:
        from routing_runner.graphing.stored import conversation_routes

        overlay = session_overlay(cfg, session, conversation_routes(cfg, session))
    typer.echo(draw(cfg, output_format.value, overlay), nl=False)
