"""YAML text → a parsed document: plain Python values plus the line and column of each.

Only YAML's safe types are accepted (no Python tags). Duplicate keys are an error naming both
lines, and anchors/aliases are allowed but their expansion is bounded, so a "billion laughs"
document or absurd nesting fails with a clear message instead of eating the machine.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import ConfigError, Problem
from .render import redact_url

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


KIB = 1024
MIB = 1024 * KIB
# Size limits of the files routing-runner reads, far above any real one: a config of a few
# hundred agents is well under 100 KiB, and instructions above 1 MiB (~250k tokens) fit no
# model's context. A transcript file may hold a whole test suite. Without limits a mistyped
# argument (/dev/zero, a log file) would be read until memory runs out.
MAX_CONFIG_BYTES = 1 * MIB
MAX_INSTRUCTIONS_BYTES = 1 * MIB
MAX_TRANSCRIPT_BYTES = 10 * MIB


class UnreadableFile(Exception):
    """A file that cannot be used as text: why, in words for the user (no file name)."""


class MissingFile(UnreadableFile):
    """There is no file at the path."""


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n // KIB} KiB"


def read_text_file(path: Path, limit: int) -> str:
    """The UTF-8 text of the regular file at `path`, at most `limit` bytes; else UnreadableFile.

    The file is opened non-blocking and checked after opening (no race with a swap), so a
    FIFO cannot hang the open and a device or folder is refused before anything is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise MissingFile("file not found") from None
    except IsADirectoryError:
        raise UnreadableFile("is a folder, not a file") from None
    except ValueError:  # a NUL byte in the path
        raise UnreadableFile("the path contains a NUL character") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadableFile("is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"is {_file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise UnreadableFile(f"is {info.st_size:,} bytes; the limit is {_size(limit)}")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)  # the file may have grown since fstat
    except OSError as exc:
        raise UnreadableFile(f"cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnreadableFile(f"is more than {_size(limit)}, the limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"is not UTF-8 text ({exc.reason} at byte {exc.start:,})") from None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def read_document(path: Path, display: str | None = None,
                  limit: int = MAX_CONFIG_BYTES) -> Document:
    """Read and parse a YAML file; an unreadable, special or oversized file is a ConfigError."""
    source = display or str(path)
    try:
        text = read_text_file(path, limit)
    except UnreadableFile as exc:
        raise ConfigError([Problem(source, 1, 1, "", str(exc))]) from None
    return parse_document(text, source)
