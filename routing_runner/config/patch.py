"""A config document with a merge patch applied, every value keeping the position it came from."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from routing_runner.config.document import (
    Document,
    PathKey,
    Position,
    format_path,
)
from routing_runner.errors import Problem


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
        containers=set(base.containers), overrides_source=transcript.source,
        overrides_prefix=prefix, overrides_at=transcript.position(prefix, key=True))

    def forget(path: PathKey) -> None:
        for table in (merged.values, merged.keys):
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
