"""A cassette file: the model calls of one transcript, recorded for replay without a network.

One YAML file per transcript, written sorted and stable so that a re-recording that changes
nothing changes no line, and a pull request shows a changed model call as a small diff::

    # routing-runner cassette ...
    episodes:
    - agent: spanish
      key: 5f0c9e2a41b7d3e8          # hash of the request below (agent, model, request)
      model: gpt-4.1-mini
      occurrence: 1                  # the same request again in one conversation: 2, 3, ...
      request:
        instructions: |
          You only speak Spanish. ...
        settings: {temperature: 0.3}
        handoffs: ['{"agent":"triage","description":...}']
        input:                       # one JSON line per item
        - '{"content":"Hola","role":"user"}'
      sample: 1                      # the --repeat run that recorded it
      stream:                        # the response's stream events, in the Responses format
      - '{"sequence_number":0,"type":"response.created",...}'

Tools, handoffs, input items and stream events are JSON lines: a diff shows the one that
changed, and reading a cassette back decodes only the events it replays (a YAML node per field
of every event would cost more than the offline model answering).

The request is what decides the reply: ids the provider made up (item ids, tool call ids) are
renumbered in order of appearance, so recording the same conversation twice gives the same
key. Nothing else is written: no key, no header, no endpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from routing_runner.errors import UserInputError

HEADER = ("# routing-runner cassette: the model calls of one transcript, replayed by\n"
          "# `routing-runner replay --cassettes`. Generated; review its diff, do not edit.\n")
# The parts of a request the key covers, in the order a difference is reported.
REQUEST_FIELDS = ("instructions", "settings", "tools", "handoffs", "output_schema", "input")
# Wide enough that no JSON line is folded: one event or item, one line of the file.
_WIDTH = 1 << 20
# Settings that carry transport or retry policy, not what the model is asked.
_TRANSPORT_SETTINGS = ("retry", "extra_headers", "extra_query", "extra_body")
_RETRY_ARGS = ("num_retries", "max_retries")
# Fields of an input item whose value a provider makes up; renumbered for the key.
_MADE_UP_IDS = ("id", "call_id")


class CassetteError(UserInputError):
    """A cassette file cannot be read or written."""


@dataclass(frozen=True)
class Episode:
    """One recorded model call: the request that decides it and the response as streamed."""

    key: str
    sample: int
    occurrence: int
    agent: str
    model: str
    request: Mapping[str, Any]
    stream: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The episode as written in the file."""
        return {"key": self.key, "sample": self.sample, "occurrence": self.occurrence,
                "agent": self.agent, "model": self.model, "request": dict(self.request),
                "stream": list(self.stream)}


def json_line(value: Any) -> str:
    """`value` as one line of canonical JSON (sorted keys, text kept readable)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def canonical_input(items: Sequence[Any]) -> list[Any]:
    """Input items with made-up ids renumbered in order of appearance (`id-1`, `call-2`, ...)."""
    names: dict[str, str] = {}

    def renamed(value: Any, field: str) -> Any:
        if not isinstance(value, str) or not value:
            return value
        if value not in names:
            names[value] = f"{field.replace('_id', '')}-{len(names) + 1}"
        return names[value]

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: renamed(v, k) if k in _MADE_UP_IDS else walk(v) for k, v in value.items()
                    if v is not None}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return [walk(item) for item in items]


def canonical_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The model settings that change a reply: no retry policy, headers or empty values."""
    kept = {k: v for k, v in settings.items()
            if k not in _TRANSPORT_SETTINGS and v not in (None, {}, [])}
    extra = {k: v for k, v in (kept.pop("extra_args", None) or {}).items()
             if k not in _RETRY_ARGS}
    if extra:
        kept["extra_args"] = extra
    return kept


def request_key(agent: str, model: str, request: Mapping[str, Any]) -> str:
    """A stable hash of what decides a reply."""
    return hashlib.sha256(json_line([agent, model, request]).encode()).hexdigest()[:16]


def difference(agent: str, request: Mapping[str, Any],
               recorded: Iterable[Episode]) -> str:
    """What changed against the nearest recording: "agent spanish: instructions changed"."""
    ours = [e for e in recorded if e.agent == agent]
    if not ours:
        others = sorted({e.agent for e in recorded})
        known = f" (recorded: {', '.join(others)})" if others else ""
        return f"agent {agent}: no recorded model call of this agent{known}"
    nearest = min(ours, key=lambda e: (len(_changed(request, e.request)),
                                       _input_distance(request, e.request)))
    changed = _changed(request, nearest.request)
    if not changed:  # the same request, recorded for another model name
        return f"agent {agent}: model changed ({nearest.model} recorded)"
    detail = _input_detail(request, nearest.request) if changed == ["input"] else ""
    return f"agent {agent}: {', '.join(changed)} changed{detail}"


def _changed(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    return [f for f in REQUEST_FIELDS if ours.get(f) != theirs.get(f)]


def _input_distance(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> int:
    a, b = ours.get("input") or [], theirs.get("input") or []
    same = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))
    return len(a) + len(b) - 2 * same


def _input_detail(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> str:
    a, b = ours.get("input") or [], theirs.get("input") or []
    if len(a) != len(b):
        return f" ({len(a)} items, {len(b)} recorded)"
    first = next(n for n, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return f" (item {first + 1} of {len(a)})"


# ---------------------------------------------------------------------------------------------
# The file


def read_episodes(path: Path) -> list[Episode]:
    """The episodes of the cassette at `path` ([] when there is none); CassetteError if it is
    not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise CassetteError(f"{path}: cannot read the cassette: {error}") from None
    try:
        document = _parse(text)
        return [Episode(e["key"], int(e["sample"]), int(e["occurrence"]), e["agent"],
                        e["model"], e["request"], tuple(e["stream"]))
                for e in document["episodes"]]
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        where = f":{line + 1}" if line is not None else ""
        raise CassetteError(f"{path}{where}: not a routing-runner cassette ({error}); "
                            "re-record it with --record-mode all") from None


def _parse(text: str) -> Any:
    # libyaml's safe loader: a cassette is large, and read by every conversation replaying it.
    loader = yaml.CSafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _Dumper(yaml.CSafeDumper):
    """Multi-line strings (instructions, long replies) as literal blocks, one line each."""


def _string(dumper: yaml.CSafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def render(episodes: Iterable[Episode], secrets: Iterable[str] = ()) -> str:
    """The file's text: episodes sorted by agent, key, sample and occurrence; every secret
    replaced, should a provider have echoed one."""
    ordered = sorted(episodes, key=lambda e: (e.agent, e.key, e.sample, e.occurrence))
    body = yaml.dump({"episodes": [e.as_dict() for e in ordered]}, Dumper=_Dumper,
                     sort_keys=True, allow_unicode=True, width=_WIDTH, default_flow_style=False)
    for secret in secrets:
        if secret:
            body = body.replace(secret, "[redacted]")
    return HEADER + body


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """The cassette folder locked against other processes writing cassettes into it."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` at once: a reader sees the old file or the new one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
