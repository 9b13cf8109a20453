"""The routing graph as text: Mermaid (renders on GitHub as is), Graphviz DOT, or plain lines.

Each agent is a node (the entry agent marked, its language shown), each handoff an edge
labelled with its tool name. With an overlay, taken edges are drawn bold with their note and
the others dashed: in red with "never taken" for coverage, in grey off a conversation's path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from routing_runner.config.model import AgentConfig, Config, HandoffConfig
from routing_runner.wording import count, inert

from .overlay import Edge, Overlay

Format = Literal["mermaid", "dot", "text"]
# Words a Mermaid flowchart reads as syntax: an agent with one of these names gets another id.
_MERMAID_WORDS = {"end", "graph", "flowchart", "subgraph", "style", "class", "classdef",
                  "click", "linkstyle", "direction", "default", "call", "href"}
_MERMAID_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def headline(config: Config) -> str:
    """One line naming the graph: title, agents, handoffs, entry agent."""
    title = " ".join(inert(config.title).split())
    return (f"{title}: {count(len(config.agents), 'agent')}, "
            f"{count(len(config.edges()), 'handoff')}, entry {config.entry}")


def draw(config: Config, fmt: Format, overlay: Overlay | None = None) -> str:
    """The graph of `config` in `fmt`, with `overlay` drawn over it; ends with a newline."""
    drawers: dict[Format, Callable[[Config, Overlay | None], list[str]]] = {
        "mermaid": _mermaid, "dot": _dot, "text": _text}
    return "\n".join(drawers[fmt](config, overlay)) + "\n"


def _edges(config: Config) -> list[tuple[Edge, str]]:
    """Each handoff edge with its label: the tool name, and what the target sees if not all."""
    return [((agent.name, h.agent), h.tool_name + _history(h))
            for agent in config.agents.values() for h in agent.handoffs]


def _history(handoff: HandoffConfig) -> str:
    seen = {"full": [], "nest": ["nested history"], "none": ["this turn only"],
            "last_n": [f"last {count(handoff.n or 0, 'turn')}"]}[handoff.history]
    if handoff.remove_tools:
        seen.append("no tools")
    return f" ({', '.join(seen)})" if seen else ""


def _node_label(config: Config, agent: AgentConfig) -> list[str]:
    parts = [agent.name]
    if agent.name == config.entry:
        parts.append("entry")
    if agent.language:
        parts.append(f"language {agent.language}")
    return parts


def _edge_note(overlay: Overlay | None, edge: Edge) -> str | None:
    """The edge's note: None when there is no overlay, "" for an untaken edge without one."""
    if overlay is None:
        return None
    return overlay.notes.get(edge, overlay.untaken_note)


def _mermaid_ids(config: Config) -> dict[str, str]:
    ids: dict[str, str] = {}
    for i, name in enumerate(config.agents):
        safe = name.replace("-", "_")
        usable = (_MERMAID_ID.match(safe) and safe.lower() not in _MERMAID_WORDS
                  and safe not in ids.values())
        ids[name] = safe if usable else f"agent_{i}"
    return ids


def _mermaid_text(text: str) -> str:
    return " ".join(inert(text).split()).replace('"', "#quot;")


def _mermaid(config: Config, overlay: Overlay | None) -> list[str]:
    ids = _mermaid_ids(config)
    lines = ["flowchart LR", f"  %% {_mermaid_text(headline(config))}"]
    if overlay is not None:
        lines.append(f"  %% {_mermaid_text(overlay.summary)}")
    for agent in config.agents.values():
        label = _mermaid_text(" · ".join(_node_label(config, agent)))
        node = f'(["{label}"])' if agent.name == config.entry else f'["{label}"]'
        lines.append(f"  {ids[agent.name]}{node}")
    untaken = []
    for number, (edge, tool) in enumerate(_edges(config)):
        note = _edge_note(overlay, edge)
        if overlay is None:
            arrow = "-->"
        elif edge in overlay.notes:
            arrow = "==>"
        else:
            arrow = "-.->"
            untaken.append(str(number))
        label = _mermaid_text(f"{tool}, {note}" if note else tool)
        lines.append(f'  {ids[edge[0]]} {arrow}|"{label}"| {ids[edge[1]]}')
    lines += ["  classDef entry stroke-width:3px", f"  class {ids[config.entry]} entry"]
    if overlay is not None and overlay.answered:
        answered = ",".join(ids[a] for a in config.agents if a in overlay.answered)
        lines += ["  classDef answered fill:#d9f2d9", f"  class {answered} answered"]
    if untaken:
        colour = "#c33" if overlay is not None and overlay.kind == "coverage" else "#999"
        lines.append(f"  linkStyle {','.join(untaken)} stroke:{colour},color:{colour}")
    return lines


def _dot_text(text: str) -> str:
    return '"' + inert(text).replace("\\", "\\\\").replace('"', '\\"').replace(
        "\n", "\\n") + '"'


def _dot(config: Config, overlay: Overlay | None) -> list[str]:
    title = headline(config) + ("" if overlay is None else "\n" + overlay.summary)
    lines = ["digraph routing {", f"  label={_dot_text(title)};", "  labelloc=t;",
             '  rankdir=LR;', '  fontname="sans-serif";',
             '  node [shape=box, style=rounded, fontname="sans-serif"];',
             '  edge [fontname="sans-serif", fontsize=10];']
    for agent in config.agents.values():
        attributes = [f"label={_dot_text(chr(10).join(_node_label(config, agent)))}"]
        if agent.name == config.entry:
            attributes.append("peripheries=2")
        if overlay is not None and agent.name in overlay.answered:
            attributes.append('style="rounded,filled", fillcolor="#d9f2d9"')
        lines.append(f"  {_dot_text(agent.name)} [{', '.join(attributes)}];")
    for edge, tool in _edges(config):
        note = _edge_note(overlay, edge)
        attributes = [f"label={_dot_text(f'{tool}{chr(10)}{note}' if note else tool)}"]
        if overlay is not None and edge in overlay.notes:
            attributes.append("penwidth=2")
        elif overlay is not None:
            colour = "red" if overlay.kind == "coverage" else "grey"
            attributes.append(f"style=dashed, color={colour}, fontcolor={colour}")
        lines.append(f"  {_dot_text(edge[0])} -> {_dot_text(edge[1])} [{', '.join(attributes)}];")
    return [*lines, "}"]


def _text(config: Config, overlay: Overlay | None) -> list[str]:
    lines = [headline(config)]
    if overlay is not None:
        lines.append(inert(overlay.summary))
    edges = _edges(config)
    width = max((len(target) for (_, target), _ in edges), default=0)
    tool_width = max((len(tool) for _, tool in edges), default=0)
    for agent in config.agents.values():
        marks = _node_label(config, agent)[1:]
        if overlay is not None and agent.name in overlay.answered:
            marks.append("answered")
        lines.append(agent.name + (f" ({', '.join(marks)})" if marks else ""))
        for edge, tool in edges:
            if edge[0] == agent.name:
                note = _edge_note(overlay, edge) or ""
                lines.append(f"  -> {edge[1]:<{width}}  {tool:<{tool_width}}  {note}".rstrip())
    return lines
