"""Model cassettes: a conversation's model calls recorded once, replayed without a network.

VCR.py's idea at the SDK's `Model` boundary: a `Tape` (one conversation's view of a cassette
file, `runtime.cassette_file`) wraps each agent's model (`Tape.wrap`, a `build_graph` model
hook). A call is known by the request that decides its reply - agent, model, instructions,
settings, tools and handoffs offered, input items - and its reply is kept as the stream of
events the model yielded, in the Responses format every SDK model streams in (Chat
Completions and LiteLLM included), so a replayed turn streams as the recorded one did.

    record    every call goes to the model and is recorded (`--record-mode all`, and `once`
              when the transcript has no cassette yet)
    fill      a recorded call is replayed, another goes to the model and is recorded
              (`new_episodes`)
    replay    only recordings answer; a call with none fails the turn with what changed
              against the nearest recording, and the model is never called (`none`)

Response objects inside the recorded stream leave out their `instructions` and `tools`: they
are the request's, written once above them, and the SDK reads neither from a stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from agents import Model, ModelResponse, ModelSettings, Usage
from agents.items import TResponseOutputItem, TResponseStreamEvent
from openai.types.responses import ResponseOutputItem, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from routing_runner.errors import RoutingRunnerError

from .cassette_file import (
    CassetteError,
    Episode,
    canonical_input,
    canonical_settings,
    difference,
    json_line,
    locked,
    read_episodes,
    render,
    request_key,
    write_atomically,
)
from .wrapped import WrappedModel

TapeMode = Literal["record", "fill", "replay"]
# The fields a response object in a stream leaves out (see the module's docstring).
_LEFT_OUT: dict[str, Any] = {"instructions": None, "tools": []}
_EVENTS: TypeAdapter[TResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)


def _event_classes() -> dict[str, type[BaseModel]]:
    """Each stream event's class by its `type`: pydantic validates the union by trying every
    member (30 times slower than the class itself; the union is not declared discriminated)."""
    (union, *_) = get_args(ResponseStreamEvent)
    return {value: member for member in get_args(union)
            for value in get_args(member.model_fields["type"].annotation)}


_EVENT_CLASSES = _event_classes()
_OUTPUT: TypeAdapter[TResponseOutputItem] = TypeAdapter(ResponseOutputItem)
_USAGE: TypeAdapter[Usage] = TypeAdapter(Usage)
# Built once: `ModelSettings.to_json_dict` builds a TypeAdapter, and its schema, on every call.
_SETTINGS: TypeAdapter[ModelSettings] = TypeAdapter(ModelSettings)


class CassetteMiss(RoutingRunnerError):
    """A model call with no recording, when only recordings may answer."""


class Tape:
    """One conversation's cassette: replays what it holds, records what its mode says.

    `sample` is the conversation's --repeat run: it replays the recordings of that run when
    the cassette holds several, so a flaky reply measured once stays measurable. `secrets`
    (the provider's keys) are replaced in the file should a provider have echoed one.
    """

    def __init__(self, path: Path, mode: TapeMode, models: Mapping[str, str], *,
                 sample: int = 1, samples: int = 1, secrets: Sequence[str] = ()) -> None:
        self.path = path
        self.mode = mode
        self.models = models
        self.sample = sample
        self.samples = samples
        self.secrets = tuple(secrets)
        self.known = [] if mode == "record" else read_episodes(path)
        self.index = _index(self.known)
        self.new: list[Episode] = []
        self.seen: dict[str, int] = {}
        self.replayed = 0
        self.missed = 0
        self._last_miss: str | None = None

    @property
    def recorded(self) -> int:
        """Model calls recorded so far."""
        return len(self.new)

    def wrap(self, agent: str, model: Model) -> Model:
        """`model` behind this tape (a `build_graph` model hook)."""
        return CassetteModel(model, self, agent)

    def take_miss(self) -> str | None:
        """What the last call without a recording missed, once (None if none did)."""
        miss, self._last_miss = self._last_miss, None
        return miss

    def request(self, agent: str, instructions: str | None, input: str | list[Any],
                settings: ModelSettings, tools: Sequence[Any], output_schema: Any,
                handoffs: Sequence[Any]) -> tuple[str, int, dict[str, Any]]:
        """The key, occurrence and recorded form of one model call's request."""
        items = [input] if isinstance(input, str) else input
        request = {
            "instructions": instructions,
            "settings": json.loads(json_line(canonical_settings(
                _SETTINGS.dump_python(settings, mode="json")))),
            "tools": [json_line(_tool(t)) for t in tools],
            "handoffs": [json_line({"tool": h.tool_name, "description": h.tool_description,
                                    "agent": h.agent_name, "parameters": h.input_json_schema})
                         for h in handoffs],
            "output_schema": None if output_schema is None or output_schema.is_plain_text()
            else json_line(output_schema.json_schema()),
            "input": [json_line(item) for item in canonical_input(items)],
        }
        request = {k: v for k, v in request.items() if v not in (None, [], {})}
        key = request_key(agent, self.models.get(agent, ""), request)
        self.seen[key] = self.seen.get(key, 0) + 1
        return key, self.seen[key], request

    def find(self, key: str, occurrence: int) -> Episode | None:
        """The recording that answers this call, when there is one to replay."""
        if self.mode == "record":
            return None
        by_sample = self.index.get(key)
        if not by_sample:
            return None
        samples = sorted(by_sample)
        chosen = self.sample if self.sample in by_sample else \
            samples[(self.sample - 1) % len(samples)]
        episodes = by_sample[chosen]
        return episodes[min(occurrence, len(episodes)) - 1]

    def miss(self, agent: str, request: Mapping[str, Any]) -> CassetteMiss:
        """The error for a call that has no recording, remembered for the turn's result."""
        if not self.path.exists():
            what = f"no cassette {self.path.name}; record it with --record-mode once"
        else:
            what = difference(agent, request, self.known)
        self.missed += 1
        self._last_miss = what
        return CassetteMiss(f"no recorded model call matches: {what}")

    def keep(self, episode: Episode) -> None:
        """Remember a recorded call, written by `save`."""
        self.new.append(episode)

    def save(self) -> None:
        """Merge what was recorded into the cassette file, under the folder's lock (the
        other runs of the transcript may be saving into it from other processes)."""
        if not self.new and self.mode != "record":
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path.parent):
            fresh = {(e.key, e.sample, e.occurrence) for e in self.new}
            kept = [e for e in self._existing()
                    if (e.key, e.sample, e.occurrence) not in fresh
                    and not (self.mode == "record"
                             and (e.sample == self.sample or e.sample > self.samples))]
            write_atomically(self.path, render([*kept, *self.new], self.secrets))


    def _existing(self) -> list[Episode]:
        try:
            return read_episodes(self.path)
        except CassetteError:
            if self.mode == "record":
                return []  # recorded again from scratch: what it held cannot be read anyway
            raise


def _index(episodes: Sequence[Episode]) -> dict[str, dict[int, list[Episode]]]:
    index: dict[str, dict[int, list[Episode]]] = {}
    for episode in sorted(episodes, key=lambda e: e.occurrence):
        index.setdefault(episode.key, {}).setdefault(episode.sample, []).append(episode)
    return index


def _tool(tool: Any) -> dict[str, Any]:
    described = {"name": getattr(tool, "name", type(tool).__name__),
                 "description": getattr(tool, "description", None),
                 "parameters": getattr(tool, "params_json_schema", None)}
    return {k: v for k, v in described.items() if v is not None}


def _event_record(event: Any) -> str:
    record: dict[str, Any] = event.model_dump(mode="json", exclude_unset=True)
    response = record.get("response")
    if isinstance(response, dict):
        for name in _LEFT_OUT:
            response.pop(name, None)
    return json_line(record)


def _event(line: str) -> TResponseStreamEvent:
    record = json.loads(line)
    response = record.get("response")
    if isinstance(response, dict):
        record = {**record, "response": {**_LEFT_OUT, **response}}
    known = _EVENT_CLASSES.get(record.get("type"))
    if known is None:
        return _EVENTS.validate_python(record)
    return known.model_validate(record)  # type: ignore[return-value]


class CassetteModel(WrappedModel):
    """An agent's model behind a tape: calls answered from it, or recorded into it."""

    def __init__(self, inner: Model, tape: Tape, agent: str) -> None:
        super().__init__(inner)
        self.tape = tape
        self.agent = agent

    def _lookup(self, args: tuple[Any, ...]) -> tuple[str, int, dict[str, Any], Episode | None]:
        key, occurrence, request = self.tape.request(self.agent, *args)
        found = self.tape.find(key, occurrence)
        if found is None and self.tape.mode == "replay":
            raise self.tape.miss(self.agent, request)
        return key, occurrence, request, found

    def _episode(self, key: str, occurrence: int, request: dict[str, Any],
                 stream: list[str]) -> Episode:
        return Episode(key, self.tape.sample, occurrence, self.agent,
                       self.tape.models.get(self.agent, ""), request, tuple(stream))

    async def stream_response(self, *args: Any,
                              **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        """The recorded stream, or the inner model's, recorded as it passes."""
        key, occurrence, request, found = self._lookup(_positional(args, kwargs))
        if found is not None:
            self.tape.replayed += 1
            for record in found.stream:
                # Yield to the event loop between events so an interrupt lands mid-reply.
                await asyncio.sleep(0)
                yield _event(record)
            return
        stream: list[str] = []
        async for event in self.inner.stream_response(*args, **kwargs):
            stream.append(_event_record(event))
            yield event
        self.tape.keep(self._episode(key, occurrence, request, stream))

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """The recorded response, or the inner model's, recorded as one completed event."""
        key, occurrence, request, found = self._lookup(_positional(args, kwargs))
        if found is not None:
            self.tape.replayed += 1
            done = json.loads(found.stream[-1])
            return ModelResponse(output=[_OUTPUT.validate_python(o) for o in done["output"]],
                                 usage=_USAGE.validate_python(done["usage"]),
                                 response_id=done.get("response_id"))
        response = await self.inner.get_response(*args, **kwargs)
        done = {"type": "model_response", "response_id": response.response_id,
                "usage": _USAGE.dump_python(response.usage, mode="json"),
                "output": [item.model_dump(mode="json", exclude_unset=True)
                           for item in response.output]}
        self.tape.keep(self._episode(key, occurrence, request, [json_line(done)]))
        return response


# The Model methods' parameters, in order: the SDK passes the first seven by position.
_PARAMETERS = ("system_instructions", "input", "model_settings", "tools", "output_schema",
               "handoffs")


def _positional(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    given = list(args[:len(_PARAMETERS)])
    given += [kwargs[name] for name in _PARAMETERS[len(given):]]
    return tuple(given)
