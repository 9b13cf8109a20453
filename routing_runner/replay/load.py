"""Loading transcripts: files → documents → schema and meaning checks → typed `Transcript`s."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from routing_runner.config import LoadedConfig
from routing_runner.config.build import build_config
from routing_runner.config.document import (
    Document,
    PathKey,
    parse_documents,
    read_document,
)
from routing_runner.config.files import MAX_TRANSCRIPT_BYTES, UnreadableFile, read_text_file
from routing_runner.config.interpolate import interpolate
from routing_runner.config.model import Config
from routing_runner.config.placeholders import context_values
from routing_runner.config.schema import validate
from routing_runner.config.tools import ToolMock
from routing_runner.errors import ConfigError, Problem, UserInputError
from routing_runner.user_text import message_problem
from routing_runner.wording import did_you_mean

from .json_checks import JsonCheck, json_checks, pointer_problem
from .script import (
    EXPECTATION_KEYS,
    RESTART,
    TEXT_KINDS,
    TRANSCRIPT_SUFFIXES,
    Count,
    Expectations,
    HistorySeen,
    JudgeCheck,
    Location,
    Restart,
    Step,
    TextCheck,
    Transcript,
    Turn,
)
from .tool_checks import ToolsExpectation, known_tool_names


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


def load_transcripts(arguments: Sequence[str], config: LoadedConfig | Config,
                     env: Mapping[str, str] | None = None) -> list[Transcript]:
    """Every transcript in `arguments`, checked against `config`.

    Raises ConfigError listing every problem of every file (nothing runs if one is wrong).
    A transcript's `config:` overrides patch the loaded config's document; given a bare
    `Config`, its file is read once for that, interpolated with `env`.
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

    def __init__(self, config: LoadedConfig | Config, env: Mapping[str, str]) -> None:
        loaded = config if isinstance(config, LoadedConfig) else None
        self.config: Config = config.config if isinstance(config, LoadedConfig) else config
        self.env = env
        self.transcripts: list[Transcript] = []
        self.names: dict[str, list[tuple[Document, Location]]] = {}
        self._config_document = loaded.document if loaded is not None else None

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
        merged = self._config_document.merged(document, ("config",))
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
                                  self.where(path), self.mocks(item.get("mocks"), path)))
        if not any(isinstance(s, Turn) for s in steps):
            self.fail(("turns",), "a transcript needs at least one turn with a 'user' message",
                      key=True)
        elif not any(isinstance(item, dict) and "expect" in item for item in raw["turns"]):
            self.fail(("turns",), "no turn expects anything, so this transcript would pass "
                                  "whatever happened; give at least one turn an 'expect' "
                                  f"({', '.join(EXPECTATION_KEYS)})", key=True)
        context = self.context(raw.get("context", {}))
        mocks = self.mocks(raw.get("mocks"), ())
        if self.problems:
            return None
        return Transcript(
            name=raw["name"], steps=tuple(steps), location=self.where(()), config=self.config,
            tags=tuple(raw.get("tags", ())), description=raw.get("description"),
            overridden="config" in raw, context=context, mocks=mocks)

    def context(self, raw: Mapping[str, str]) -> dict[str, str]:
        """The transcript's context values, each key one the config declares."""
        given = {k: v for k, v in raw.items() if not k.startswith("x-")}
        for key in given:
            if key not in self.config.context:
                known = f"its keys: {', '.join(sorted(self.config.context))}" \
                    if self.config.context else "it declares none under 'context:'"
                hint = did_you_mean(key, self.config.context)
                self.fail(("context", key), f"{key!r} is not a context key of "
                                            f"{self.config.source}{hint} ({known})", key=True)
        try:
            context_values(self.config.context, given)
        except UserInputError as exc:
            self.fail(("context",) if raw else ("name",), str(exc), key=bool(raw))
        return given

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
            tool_calls=self.count(raw.get("tool_calls"), (*path, "tool_calls")),
            json=self.json_checks(raw.get("json"), (*path, "json")),
            guardrail=raw.get("guardrail"),
            max_tokens=raw.get("max_tokens"), max_cost=raw.get("max_cost"),
            no_announced_handoff=bool(raw.get("no_announced_handoff", False)),
            history_seen=self.history_seen(raw.get("history_seen"), (*path, "history_seen")),
            judge=JudgeCheck(raw["judge"]["rubric"], raw["judge"].get("threshold", 0.7))
            if "judge" in raw else None,
            tools=self.tools(raw.get("tools"), (*path, "tools")))
        if expect.guardrail is not None and expect.guardrail not in self.config.guardrails:
            hint = did_you_mean(expect.guardrail, self.config.guardrails)
            self.fail((*path, "guardrail"), f"{expect.guardrail!r} is not a guardrail of "
                                            f"{self.config.source}{hint}")
        if not expect:
            self.fail(path, "expects nothing; give at least one of "
                            f"{', '.join(EXPECTATION_KEYS)}", key=True)
        return expect

    def json_checks(self, raw: dict[str, Any] | None, path: PathKey) -> tuple[JsonCheck, ...]:
        if raw is None:
            return ()
        for key in raw:
            problem = pointer_problem(key) if key.startswith("/") else None
            if problem is not None:
                self.fail((*path, key), problem, key=True)
        return json_checks(raw)

    def mocks(self, raw: dict[str, Any] | None, at: PathKey) -> Mapping[str, ToolMock]:
        """A `mocks:` block, every tool it names checked against the config."""
        for name in raw or {}:
            self.check_tool(name, (*at, "mocks", name), key=True)
        return {name: ToolMock.from_raw(value) for name, value in (raw or {}).items()}

    def tools(self, raw: Any, path: PathKey) -> ToolsExpectation | None:
        """An `expect.tools` check, every tool it names checked against the config."""
        if raw is None:
            return None
        expected = ToolsExpectation.from_raw(raw)
        for name in expected.names():
            self.check_tool(name, path)
        return expected

    def check_tool(self, name: str, path: PathKey, *, key: bool = False) -> None:
        known = known_tool_names(self.config)
        if known is not None and name not in known:
            declared = ", ".join(sorted(known)) or "none"
            self.fail(path, f"{name!r} is not a tool of {self.config.source}"
                            f"{did_you_mean(name, known) or f' (its tools: {declared})'}",
                      key=key)

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

    def history_seen(self, raw: dict[str, Any] | None, path: PathKey) -> HistorySeen | None:
        if raw is None:
            return None
        return HistorySeen(self.count(raw.get("items"), (*path, "items")), raw.get("tool_calls"))

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


def choose(transcripts: Sequence[Transcript], keywords: Sequence[str] = (),
           tags: Sequence[str] = ()) -> list[Transcript]:
    """`select`, or UserInputError saying what matched nothing (with a did-you-mean tag)."""
    chosen = select(transcripts, keywords, tags)
    if not chosen:
        known_tags = sorted({t for transcript in transcripts for t in transcript.tags})
        hints = "".join(did_you_mean(t, known_tags) for t in tags)
        asked = " ".join([*(f"-k {k!r}" for k in keywords), *(f"--tag {t!r}" for t in tags)])
        raise UserInputError(
            f"no transcript matches {asked} among the {len(transcripts)} loaded{hints}")
    return chosen
