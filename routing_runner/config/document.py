"""YAML text → a parsed document: plain Python values plus the line and column of each.

Only YAML's safe types are accepted (no Python tags). Duplicate keys are an error naming both
lines, and anchors/aliases are allowed but their expansion is bounded, so a "billion laughs"
document or absurd nesting fails with a clear message instead of eating the machine.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from routing_runner.errors import ConfigError, Problem
from routing_runner.wording import redact_url

from .files import MAX_CONFIG_BYTES, UnreadableFile, read_text_file

PathKey = tuple[str | int, ...]

MAX_DEPTH = 64
MAX_NODES = 100_000
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Position:
    """1-based line and column in the source text."""

    line: int
    column: int


@dataclass
class Document:
    """A parsed YAML document: its data and where each value and key came from."""

    source: str
    data: Any
    values: dict[PathKey, Position] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)
    plain_scalars: set[PathKey] = field(default_factory=set)
    containers: set[PathKey] = field(default_factory=set)
    # What was written at each value that interpolates an environment variable: messages
    # show this, never the variable's value (it may well be a key).
    interpolated: dict[PathKey, str] = field(default_factory=dict)

    def quote(self, path: PathKey, value: Any) -> str:
        """`value` (found at `path`) quoted for a message, safe to show.

        A value that came from the environment is shown as written (`'${API_KEY}'`), a URL
        with its credentials redacted, and everything as a Python literal, so control
        characters appear escaped.
        """
        if path in self.interpolated:
            return repr(self.interpolated[path])
        if isinstance(value, str) and "://" in value:
            return repr(redact_url(value))
        return repr(value)

    def position(self, path: PathKey, *, key: bool = False) -> Position:
        """Where `path` is; the nearest enclosing value when it has no position of its own.

        A mapping or list is located at its key, where a reader looks for it.
        """
        table = self.keys if key or path in self.containers else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Position(1, 1))

    def problem(self, path: PathKey, message: str, *, key: bool = False,
                severity: str = "error") -> Problem:
        """A Problem located at `path` in this document."""
        pos = self.position(path, key=key)
        return Problem(self.source, pos.line, pos.column, format_path(path), message,
                       "warning" if severity == "warning" else "error")

    def merged(self, patch: Document, at: PathKey) -> Document:
        """This document with the mapping at `at` of `patch` merged in (RFC 7396 merge patch).

        Every value keeps the position it came from: a problem with a patched value points
        into `patch` (a transcript's `config:` block), any other one into this document with a
        note naming the patch. This document is left unchanged.
        """
        return _merged(self, patch, at)


def format_path(path: PathKey) -> str:
    """`agents.spanish.handoffs[0]` style rendering of a path."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# libyaml's parser when PyYAML was built with it: twice as fast on a folder of transcripts,
# with the same marks (line and column) on every node.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeBase):  # type: ignore[valid-type,misc]
    """A safe loader that only composes; construction is done by `_Builder` with positions."""


def _unsupported_tag(tag: str) -> str:
    short = tag.replace("tag:yaml.org,2002:", "!!")
    return f"unsupported YAML tag {short!r}: only plain YAML values are allowed (no Python tags)"


def _mark(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, source: str, loader: _Loader) -> None:
        self.doc = Document(source=source, data=None)
        self.loader = loader
        self.problems: list[Problem] = []
        self.nodes = 0

    def fail(self, node: Node, message: str) -> None:
        pos = _mark(node)
        self.problems.append(Problem(self.doc.source, pos.line, pos.column, "", message))

    def build(self, node: Node, path: PathKey, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(node, f"the document expands to more than {MAX_NODES:,} values "
                                "(are aliases nested inside each other?)")
        if depth > MAX_DEPTH:
            raise _TooBig(node, f"the document is nested more than {MAX_DEPTH} levels deep")
        self.doc.values.setdefault(path, _mark(node))
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        self.doc.containers.add(path)
        if isinstance(node, SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self.fail(node, _unsupported_tag(node.tag))
            return [self.build(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self.mapping(node, path, depth)
        self.fail(node, "unsupported YAML node")
        return None

    def scalar(self, node: ScalarNode, path: PathKey) -> Any:
        if not node.style:  # plain: None from PyYAML's parser, "" from libyaml's
            self.doc.plain_scalars.add(path)
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            problem = exc.problem or "cannot be read"
            if "could not determine a constructor" in problem:
                problem = _unsupported_tag(node.tag)
            self.fail(node, problem)
            return None

    def mapping(self, node: MappingNode, path: PathKey, depth: int) -> dict[Any, Any]:
        if node.tag != "tag:yaml.org,2002:map":
            self.fail(node, _unsupported_tag(node.tag))
        result: dict[Any, Any] = {}
        seen: dict[Any, Node] = {}
        merged: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged.extend(self.merge_sources(value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, "mapping keys must be plain scalars")
                continue
            key = self.loader.construct_object(key_node)
            if not isinstance(key, str | int | bool | float) and key is not None:
                self.fail(key_node, "mapping keys must be plain scalars")
                continue
            if key in seen:
                first = _mark(seen[key])
                self.fail(key_node, f"duplicate key {key!r} (first defined on line {first.line})")
                continue
            seen[key] = key_node
            child_path = (*path, key if isinstance(key, str) else str(key))
            self.doc.keys[child_path] = _mark(key_node)
            result[child_path[-1]] = self.build(value_node, child_path, depth + 1)
        # Explicit keys win over merged ones, as YAML's merge key specifies.
        for source in merged:
            for key_node, value_node in source.value:
                key = self.loader.construct_object(key_node)
                name = key if isinstance(key, str) else str(key)
                if name not in result:
                    child_path = (*path, name)
                    self.doc.keys[child_path] = _mark(key_node)
                    result[name] = self.build(value_node, child_path, depth + 1)
        return result

    def merge_sources(self, node: Node) -> Iterator[MappingNode]:
        if isinstance(node, MappingNode):
            yield node
        elif isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
            yield from node.value
        else:
            self.fail(node, "'<<' (merge) needs a mapping or a list of mappings")


class _TooBig(Exception):
    def __init__(self, node: Node, message: str) -> None:
        super().__init__(message)
        self.node = node


def parse_documents(text: str, source: str) -> list[Document]:
    """Parse every YAML document in `text`; raise ConfigError listing every problem."""
    loader = _Loader(text)
    documents: list[Document] = []
    problems: list[Problem] = []
    try:
        while loader.check_node():
            root = loader.get_node()
            builder = _Builder(source, loader)
            try:
                builder.doc.data = builder.build(root, (), 0) if root is not None else None
            except _TooBig as exc:
                pos = _mark(exc.node)
                builder.problems.append(Problem(source, pos.line, pos.column, "", str(exc)))
            problems.extend(builder.problems)
            documents.append(builder.doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        problems.append(Problem(source, line, column, "", f"invalid YAML: {what}"))
    except yaml.YAMLError as exc:
        problems.append(Problem(source, 1, 1, "", f"invalid YAML: {exc}"))
    finally:
        loader.dispose()
    if problems:
        raise ConfigError(problems)
    return documents


def parse_document(text: str, source: str) -> Document:
    """Parse a single-document YAML text (an empty text is an empty document)."""
    documents = parse_documents(text, source)
    if len(documents) > 1:
        raise ConfigError([Problem(source, 1, 1, "", "expected one YAML document, found "
                                   f"{len(documents)} (remove the extra '---' separators)")])
    return documents[0] if documents else Document(source=source, data=None)


def read_document(path: Path, display: str | None = None,
                  limit: int = MAX_CONFIG_BYTES) -> Document:
    """Read and parse a YAML file; an unreadable, special or oversized file is a ConfigError."""
    source = display or str(path)
    try:
        text = read_text_file(path, limit)
    except UnreadableFile as exc:
        raise ConfigError([Problem(source, 1, 1, "", str(exc))]) from None
    return parse_document(text, source)


# ---------------------------------------------------------------------------------------------
# A merge patch from another document, positions kept (a transcript's `config:` overrides)


@dataclass(frozen=True)
class _PatchPosition(Position):
    """A position in the transcript (not the config file) of an overridden value."""


@dataclass
class _PatchedDocument(Document):
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
        if isinstance(pos, _PatchPosition):
            return Problem(self.overrides_source, pos.line, pos.column,
                           format_path((*self.overrides_prefix, *path)), message, level)
        note = (f" (with the config overrides of {self.overrides_source}:"
                f"{self.overrides_at.line}:{self.overrides_at.column})")
        return Problem(self.source, pos.line, pos.column, format_path(path), message + note,
                       level)


def _merged(base: Document, transcript: Document, prefix: PathKey) -> _PatchedDocument:
    """`base` with the mapping at `prefix` of `transcript` merged in (RFC 7396 merge patch)."""
    merged = _PatchedDocument(
        source=base.source, data=copy.deepcopy(base.data), values=dict(base.values),
        keys=dict(base.keys), plain_scalars=set(base.plain_scalars),
        containers=set(base.containers), interpolated=dict(base.interpolated),
        overrides_source=transcript.source, overrides_prefix=prefix,
        overrides_at=transcript.position(prefix, key=True))

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
                    target[(*path, *p[len(source):])] = _PatchPosition(pos.line, pos.column)
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
                merged.keys[at] = _PatchPosition(*_line_col(transcript, (*prefix, *at)))
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
