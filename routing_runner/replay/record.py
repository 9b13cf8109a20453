"""Recording a chat as a transcript (`chat --record`): each turn's message and what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from routing_runner.config.schema import schema_path
from routing_runner.errors import UserInputError
from routing_runner.private_files import write_private
from routing_runner.runtime.events import TurnEnded

from .script import route_of


class _Dumper(yaml.SafeDumper):
    """Block style, with multi-line strings as literal blocks and `_Flow` mappings inline."""


class _Flow(dict[str, Any]):
    """A mapping written on one line: `expect: {agent: spanish, route: [triage, spanish]}`."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def _represent_flow(dumper: yaml.SafeDumper, mapping: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", mapping, flow_style=True)


_Dumper.add_representer(str, _represent_text)
_Dumper.add_representer(_Flow, _represent_flow)


@dataclass
class TranscriptRecorder:
    """Collects a chat's completed turns and writes them as a transcript.

    Each turn expects what was observed - the answering agent, the route and the tools called
    - so a good manual session becomes a regression test that `replay` passes.
    """

    path: Path
    name: str
    config_source: Path
    session_id: str
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    turns: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, str] = field(default_factory=dict)  # chat --context, replayed as given

    def add(self, user: str, ended: TurnEnded) -> None:
        """Add one completed turn (with the function and MCP tools it called, in order)."""
        expect = _Flow(agent=ended.agent, route=list(route_of(ended)))
        if ended.guardrail is not None:
            expect["guardrail"] = ended.guardrail
        called = [call.tool for call in ended.tools if call.output is not None]
        if called:
            expect["tools"] = called
        self.turns.append({"user": user, "expect": expect})

    def record(self, user: str, ended: TurnEnded) -> None:
        """Add one completed turn and rewrite the file, so a crash loses nothing before it."""
        self.add(user, ended)
        self.write()

    def text(self) -> str:
        """The transcript as YAML, starting with the schema line editors read.

        The schema is named by the absolute `file://` URL of the installed copy, so the line
        holds wherever the transcript is saved or moved to (`sessions export` cannot know
        where its output goes); the schema's `$id` is a name, not a place it can be fetched.
        """
        schema = schema_path("transcript").resolve().as_uri()
        head: dict[str, Any] = {"name": self.name}
        if self.context:
            head["context"] = _Flow(self.context)
        dumped = yaml.dump({**head, "turns": self.turns}, Dumper=_Dumper,
                           sort_keys=False, allow_unicode=True, width=100)
        return (f"# yaml-language-server: $schema={schema}\n"
                f"# Recorded from session {self.session_id} of {self.config_source} on "
                f"{self.recorded_at:%Y-%m-%d %H:%M} UTC.\n{dumped}")

    def write(self) -> None:
        """Write the transcript (whole, replacing the file atomically) when a turn was kept."""
        if not self.turns:
            return
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            partial.unlink(missing_ok=True)  # a stale one, or a symlink planted there
            write_private(partial, self.text())
            partial.replace(self.path)
        except OSError as exc:
            raise UserInputError(f"cannot write the transcript {self.path}: "
                                 f"{exc.strerror or exc}") from exc
