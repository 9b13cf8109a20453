"""Transcripts: scripted conversations for `replay`, loaded into typed, frozen objects.

A transcript is one YAML document (a file may hold many, separated by `---`)::

    name: Spanish then French
    tags: [switch]
    config: {routing: {next_turn: last_agent}}    # optional overrides, like a merge patch
    turns:
      - user: Hola, ¿cómo estás?
        expect: {agent: spanish, route: [triage, spanish], language: es}
      - restart                                   # close the session, reopen it fresh
      - user: Je veux apprendre le français.
        expect: {agent: french, contains: message n° 2}

Loading collects every problem of every file before anything runs, each located
`file:line:col`: the schema (`schemas/transcript.schema.json`) checks the shape, and the code
checks the meaning against the config - agents that do not exist, routes along handoffs that
are not declared, regular expressions that do not compile, a transcript that expects nothing
(it would pass whatever happened), two transcripts with the same name.

`config` overrides are merged into the config's own document and go through the config's
schema and checks, so a transcript can change whatever a config can say, and a wrong override
is reported at its line in the transcript.

`TranscriptRecorder` writes the other way: a chat's turns as a transcript (`chat --record`).
"""

from __future__ import annotations

import copy
import glob
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from .config import Config, build_config
from .document import (
    MAX_TRANSCRIPT_BYTES,
    Document,
    PathKey,
    Position,
    UnreadableFile,
    format_path,
    parse_documents,
    read_document,
    read_text_file,
)
from .errors import ConfigError, Problem, UserInputError
from .events import TurnEnded
from .interpolate import interpolate
from .private_files import write_private
from .schema import did_you_mean, schema_path, validate
from .user_text import message_problem

TRANSCRIPT_SUFFIXES = (".yaml", ".yml")
RESTART = "restart"
TextKind = Literal["contains", "not_contains", "matches"]
TEXT_KINDS: tuple[TextKind, ...] = ("contains", "not_contains", "matches")
EXPECTATION_KEYS = ("agent", "route", *TEXT_KINDS, "language", "model_calls", "tool_calls")


@dataclass(frozen=True)
class Location:
    """Where something was written: file and 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Count:
    """An expected number: exactly `minimum` when both bounds are equal, else a range."""

    minimum: int | None
    maximum: int | None

    def allows(self, value: int) -> bool:
        """Whether `value` satisfies this expectation."""
        return (self.minimum is None or value >= self.minimum) and \
            (self.maximum is None or value <= self.maximum)

    def __str__(self) -> str:
        if self.minimum == self.maximum:
            return str(self.minimum)
        if self.maximum is None:
            return f"at least {self.minimum}"
        if self.minimum is None:
            return f"at most {self.maximum}"
        return f"{self.minimum} to {self.maximum}"


@dataclass(frozen=True)
class TextCheck:
    """One check on the reply's text: it contains, does not contain, or matches `value`."""

    kind: TextKind
    value: str
    ignore_case: bool = False

    def pattern(self) -> re.Pattern[str]:
        """The compiled regular expression (a literal one for contains / not_contains)."""
        source = self.value if self.kind == "matches" else re.escape(self.value)
        return re.compile(source, re.IGNORECASE if self.ignore_case else 0)

    def passes(self, text: str) -> bool:
        """Whether `text` satisfies this check."""
        found = self.pattern().search(text) is not None
        return not found if self.kind == "not_contains" else found

    def __str__(self) -> str:
        words = {"contains": "contains", "not_contains": "does not contain",
                 "matches": "matches"}[self.kind]
        suffix = " (ignoring case)" if self.ignore_case else ""
        return f"{words} {self.value!r}{suffix}"


@dataclass(frozen=True)
class Expectations:
    """What the reply to one message must look like; None / empty means "not checked"."""

    agent: str | None = None
    route: tuple[str, ...] | None = None
    text: tuple[TextCheck, ...] = ()
    language: str | None = None
    model_calls: Count | None = None
    tool_calls: Count | None = None

    def __bool__(self) -> bool:
        return any((self.agent is not None, self.route is not None, self.text,
                    self.language is not None, self.model_calls is not None,
                    self.tool_calls is not None))


@dataclass(frozen=True)
class Turn:
    """The user's message and the expectations on the reply."""

    user: str
    expect: Expectations
    location: Location


@dataclass(frozen=True)
class Restart:
    """Close the session and reopen it as a new process would."""

    location: Location


Step = Turn | Restart


@dataclass(frozen=True)
class Transcript:
    """One scripted conversation, with the config it runs on (overrides applied)."""

    name: str
    steps: tuple[Step, ...]
    location: Location
    config: Config
    tags: tuple[str, ...] = ()
    description: str | None = None
    overridden: bool = False

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The user turns, restarts left out."""
        return tuple(step for step in self.steps if isinstance(step, Turn))


# ---------------------------------------------------------------------------------------------
# Finding the files


def find_transcript_files(arguments: Sequence[str]) -> tuple[list[Path], list[Problem]]:
    """The transcript files named by `arguments` (files, folders, globs), each once, in order.

    Folders are searched recursively for *.yaml and *.yml, skipping hidden names. An argument
    that names nothing is a problem.
    """
    found: list[Path] = []
    problems: list[Problem] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in TRANSCRIPT_SUFFIXES
                           and p.is_file() and not _hidden(p.relative_to(path)))
            if not files:
                problems.append(Problem(argument, 1, 1, "",
                                        "no transcript files (*.yaml, *.yml) in this folder"))
            found.extend(files)
        elif path.exists():
            found.append(path)
        elif glob.has_magic(argument):
            matches = sorted(Path(p) for p in glob.glob(argument, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                problems.append(Problem(argument, 1, 1, "", "no file matches this pattern"))
            found.extend(files)
        else:
            problems.append(Problem(argument, 1, 1, "", "file not found"))
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values()), problems


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


# ---------------------------------------------------------------------------------------------
# Loading


def load_transcripts(arguments: Sequence[str], config: Config,
                     env: Mapping[str, str] | None = None) -> list[Transcript]:
    """Every transcript in `arguments`, checked against `config`.

    Raises ConfigError listing every problem of every file (nothing runs if one is wrong).
    `env` interpolates the config file again when a transcript overrides it.
    """
    paths, problems = find_transcript_files(arguments)
    loader = _Loader(config, os.environ if env is None else env)
    by_file = {str(path): loader.load_file(path) for path in paths}
    for problem in loader.check_names():
        by_file[problem.file].append(problem)
    for file, found in by_file.items():
        # In line order; problems an override causes in the config file come last.
        problems.extend(sorted(found, key=lambda p: (p.file != file, p.line, p.column)))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ConfigError(errors)
    return loader.transcripts


class _Loader:
    """Loads transcript files one by one, keeping what they share: the base config, names."""

    def __init__(self, config: Config, env: Mapping[str, str]) -> None:
        self.config = config
        self.env = env
        self.transcripts: list[Transcript] = []
        self.names: dict[str, list[tuple[Document, Location]]] = {}
        self._config_document: Document | None = None

    def load_file(self, path: Path) -> list[Problem]:
        source = str(path)
        try:
            text = read_text_file(path, MAX_TRANSCRIPT_BYTES)
        except UnreadableFile as exc:
            return [Problem(source, 1, 1, "", str(exc))]
        try:
            documents = [d for d in parse_documents(text, source) if d.data is not None]
        except ConfigError as error:
            return list(error.problems)
        if not documents:
            return [Problem(source, 1, 1, "", "no transcript in this file")]
        problems: list[Problem] = []
        for document in documents:
            problems.extend(self.load_document(document))
        return problems

    def load_document(self, document: Document) -> list[Problem]:
        if not isinstance(document.data, dict):
            return [document.problem((), "a transcript is a YAML mapping, found "
                                         f"{_kind(document.data)}")]
        problems = validate(document, "transcript")
        if problems:
            return problems
        raw: dict[str, Any] = document.data
        config = self.config
        if "config" in raw:
            overridden, override_problems = self.overridden_config(document)
            if overridden is None:
                return override_problems
            config = overridden
        builder = _TranscriptBuilder(document, config)
        transcript = builder.build()
        if transcript is not None:
            self.transcripts.append(transcript)
            self.names.setdefault(transcript.name, []).append((document, transcript.location))
        return builder.problems

    def overridden_config(self, document: Document) -> tuple[Config | None, list[Problem]]:
        """The config with `document`'s `config` block merged in, or the problems it causes."""
        if self._config_document is None:
            base = read_document(self.config.source)
            interpolate(base, self.env)
            self._config_document = base
        merged = _merge_overrides(self._config_document, document, ("config",))
        problems = validate(merged, "config")
        if problems:
            return None, problems
        config, problems = build_config(merged, self.config.source)
        # Warnings (unreachable agents, ...) belong to the config and were shown with it.
        errors = [p for p in problems if p.severity == "error"]
        return (config if not errors else None), errors

    def check_names(self) -> list[Problem]:
        problems = []
        for name, places in self.names.items():
            first = places[0][1]
            for document, _ in places[1:]:
                problems.append(document.problem(
                    ("name",), f"the name {name!r} is already used by the transcript at {first}; "
                               "names must be unique (they name sessions and test cases)"))
        return problems


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    return "a text" if isinstance(value, str) else f"a {type(value).__name__}"


class _TranscriptBuilder:
    """A typed transcript from a schema-valid document, plus its meaning problems."""

    def __init__(self, document: Document, config: Config) -> None:
        self.document = document
        self.config = config
        self.problems: list[Problem] = []

    def where(self, path: PathKey) -> Location:
        position = self.document.position(path)
        return Location(self.document.source, position.line)

    def fail(self, path: PathKey, message: str, *, key: bool = False) -> None:
        self.problems.append(self.document.problem(path, message, key=key))

    def build(self) -> Transcript | None:
        raw: dict[str, Any] = self.document.data
        steps: list[Step] = []
        for index, item in enumerate(raw["turns"]):
            path: PathKey = ("turns", index)
            if item == RESTART:
                steps.append(Restart(self.where(path)))
            else:
                problem = message_problem(item["user"])
                if problem is not None:
                    self.fail((*path, "user"), problem)
                steps.append(Turn(item["user"], self.expectations(item.get("expect"), path),
                                  self.where(path)))
        if not any(isinstance(s, Turn) for s in steps):
            self.fail(("turns",), "a transcript needs at least one turn with a 'user' message",
                      key=True)
        elif not any(isinstance(item, dict) and "expect" in item for item in raw["turns"]):
            self.fail(("turns",), "no turn expects anything, so this transcript would pass "
                                  "whatever happened; give at least one turn an 'expect' "
                                  f"({', '.join(EXPECTATION_KEYS)})", key=True)
        if self.problems:
            return None
        return Transcript(
            name=raw["name"], steps=tuple(steps), location=self.where(()), config=self.config,
            tags=tuple(raw.get("tags", ())), description=raw.get("description"),
            overridden="config" in raw)

    def expectations(self, raw: dict[str, Any] | None, turn: PathKey) -> Expectations:
        if raw is None:
            return Expectations()
        path: PathKey = (*turn, "expect")
        ignore_case = bool(raw.get("ignore_case", False))
        checks = [TextCheck(kind, value, ignore_case)
                  for kind in TEXT_KINDS for value in _texts(raw.get(kind))]
        for index, check in enumerate(c for c in checks if c.kind == "matches"):
            self.check_pattern(check, (*path, "matches") if isinstance(raw["matches"], str)
                               else (*path, "matches", index))
        agent = raw.get("agent")
        if agent is not None:
            self.check_agent(agent, (*path, "agent"))
        route = tuple(raw["route"]) if "route" in raw else None
        if route is not None:
            self.check_route(route, (*path, "route"), agent)
        expect = Expectations(
            agent=agent, route=route, text=tuple(checks), language=raw.get("language"),
            model_calls=self.count(raw.get("model_calls"), (*path, "model_calls")),
            tool_calls=self.count(raw.get("tool_calls"), (*path, "tool_calls")))
        if not expect:
            self.fail(path, "expects nothing; give at least one of "
                            f"{', '.join(EXPECTATION_KEYS)}", key=True)
        return expect

    def check_pattern(self, check: TextCheck, path: PathKey) -> None:
        try:
            check.pattern()
        except re.error as exc:
            self.fail(path, f"not a valid regular expression: {exc}")

    def check_agent(self, agent: str, path: PathKey) -> None:
        if agent not in self.config.agents:
            self.fail(path, f"{agent!r} is not an agent of {self.config.source}"
                            f"{did_you_mean(agent, self.config.agents)}")

    def check_route(self, route: tuple[str, ...], path: PathKey, agent: str | None) -> None:
        for index, name in enumerate(route):
            if name not in self.config.agents:
                self.check_agent(name, (*path, index))
                return
            if index:
                source = self.config.agents[route[index - 1]]
                targets = [h.agent for h in source.handoffs]
                if name not in targets:
                    declared = ", ".join(targets) or "none"
                    self.fail((*path, index),
                              f"{source.name!r} has no handoff to {name!r}, so this route cannot "
                              f"happen (its handoffs: {declared})")
                    return
        if agent in self.config.agents and route[-1] != agent:
            self.fail(path, f"the route ends at {route[-1]!r} but 'agent' expects {agent!r}")

    def count(self, raw: int | dict[str, int] | None, path: PathKey) -> Count | None:
        if raw is None:
            return None
        if isinstance(raw, int):
            return Count(raw, raw)
        count = Count(raw.get("min"), raw.get("max"))
        if count.minimum is not None and count.maximum is not None and \
                count.minimum > count.maximum:
            self.fail(path, f"min {count.minimum} is more than max {count.maximum}")
        return count


def _texts(raw: str | list[str] | None) -> list[str]:
    if raw is None:
        return []
    return [raw] if isinstance(raw, str) else list(raw)


# ---------------------------------------------------------------------------------------------
# Config overrides: a merge patch applied to the config's document, positions kept


@dataclass(frozen=True)
class _OverridePosition(Position):
    """A position in the transcript (not the config file) of an overridden value."""


@dataclass
class _OverriddenDocument(Document):
    """The config document with a transcript's overrides merged in.

    Problems are located in whichever file the value came from: overridden values in the
    transcript, the rest in the config file with a note naming the transcript.
    """

    overrides_source: str = ""
    overrides_prefix: PathKey = ()
    overrides_at: Position = field(default_factory=lambda: Position(1, 1))

    def problem(self, path: PathKey, message: str, *, key: bool = False,
                severity: str = "error") -> Problem:
        pos = self.position(path, key=key)
        level: Literal["error", "warning"] = "warning" if severity == "warning" else "error"
        if isinstance(pos, _OverridePosition):
            return Problem(self.overrides_source, pos.line, pos.column,
                           format_path((*self.overrides_prefix, *path)), message, level)
        note = (f" (with the config overrides of {self.overrides_source}:"
                f"{self.overrides_at.line}:{self.overrides_at.column})")
        return Problem(self.source, pos.line, pos.column, format_path(path), message + note,
                       level)


def _merge_overrides(base: Document, transcript: Document,
                     prefix: PathKey) -> _OverriddenDocument:
    """`base` with the mapping at `prefix` of `transcript` merged in (RFC 7396 merge patch)."""
    merged = _OverriddenDocument(
        source=base.source, data=copy.deepcopy(base.data), values=dict(base.values),
        keys=dict(base.keys), plain_scalars=set(base.plain_scalars),
        containers=set(base.containers), interpolated=dict(base.interpolated),
        overrides_source=transcript.source,
        overrides_prefix=prefix, overrides_at=transcript.position(prefix, key=True))

    def forget(path: PathKey) -> None:
        for table in (merged.values, merged.keys, merged.interpolated):
            for stale in [p for p in table if p[:len(path)] == path]:
                del table[stale]
        for group in (merged.plain_scalars, merged.containers):
            group.difference_update({p for p in group if p[:len(path)] == path})

    def adopt(path: PathKey) -> None:
        """Take the positions of everything at `path` from the transcript."""
        source = (*prefix, *path)
        for table, target in ((transcript.values, merged.values),
                              (transcript.keys, merged.keys)):
            for p, pos in table.items():
                if p[:len(source)] == source:
                    target[(*path, *p[len(source):])] = _OverridePosition(pos.line, pos.column)
        for group, into in ((transcript.plain_scalars, merged.plain_scalars),
                            (transcript.containers, merged.containers)):
            into.update((*path, *p[len(source):]) for p in group if p[:len(source)] == source)

    def apply(target: dict[str, Any], patch: dict[str, Any], path: PathKey) -> None:
        for key, value in patch.items():
            at = (*path, key)
            if value is None:
                target.pop(key, None)
                forget(at)
            elif isinstance(value, dict) and isinstance(target.get(key), dict):
                # The key itself is now the transcript's, so a problem with it points there.
                merged.keys[at] = _OverridePosition(*_line_col(transcript, (*prefix, *at)))
                apply(target[key], value, at)
            else:
                forget(at)
                target[key] = copy.deepcopy(value)
                adopt(at)

    patch = transcript.data
    for part in prefix:
        patch = patch[part]
    if isinstance(merged.data, dict):
        apply(merged.data, patch, ())
    return merged


def _line_col(document: Document, path: PathKey) -> tuple[int, int]:
    position = document.position(path, key=True)
    return position.line, position.column


# ---------------------------------------------------------------------------------------------
# Selecting


def select(transcripts: Iterable[Transcript], keywords: Sequence[str] = (),
           tags: Sequence[str] = ()) -> list[Transcript]:
    """The transcripts whose name contains any keyword (ignoring case) and that carry any tag.

    An empty `keywords` or `tags` does not filter.
    """
    wanted_words = [k.casefold() for k in keywords]
    wanted_tags = set(tags)
    return [
        t for t in transcripts
        if (not wanted_words or any(w in t.name.casefold() for w in wanted_words))
        and (not wanted_tags or wanted_tags & set(t.tags))
    ]


# ---------------------------------------------------------------------------------------------
# Recording a chat as a transcript


def route_of(ended: TurnEnded) -> tuple[str, ...]:
    """The agents a completed turn went through: the first one, then each handoff target."""
    if not ended.handoffs:
        return (ended.agent,)
    return (ended.handoffs[0].source, *(h.target for h in ended.handoffs))


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

    Each turn expects what was observed - the answering agent and the route - so a good
    manual session becomes a regression test that `replay` passes.
    """

    path: Path
    name: str
    config_source: Path
    session_id: str
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    turns: list[dict[str, Any]] = field(default_factory=list)

    def add(self, user: str, ended: TurnEnded) -> None:
        """Add one completed turn."""
        self.turns.append({"user": user,
                           "expect": _Flow(agent=ended.agent, route=list(route_of(ended)))})

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
        dumped = yaml.dump({"name": self.name, "turns": self.turns}, Dumper=_Dumper,
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

