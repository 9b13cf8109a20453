"""Loopback HTTP server that speaks the OpenAI wire format, for tests and benchmarks.

The server listens on ``127.0.0.1`` with an ephemeral port and serves the real ``openai``
client (and therefore the Agents SDK) over real HTTP, so tests exercise the same
transport, SSE decoding and typed parsing as production code, without any network access.

It implements ``POST /v1/responses`` and ``POST /v1/chat/completions``, each streamed
(Server-Sent Events, when the request body has ``"stream": true``) or as plain JSON.
Every request takes the next *reply* from a per-test script:

* :class:`Text` -- an assistant message, streamed in chunks;
* :class:`ToolCall` -- a function call (e.g. a handoff tool such as ``transfer_to_spanish``);
* :class:`Turn` -- several outputs in one model response (text and/or parallel tool calls);
* :class:`Fault` -- an injected failure: HTTP errors as OpenAI sends them, connection
  resets, stalls, malformed SSE, SSE ``error`` events, an EOF before the terminal event, an
  HTML page where an API answer was expected (a mistyped ``base_url``), or plain JSON where a
  stream was asked for.

When the script is empty, an optional *responder* callable computes the reply from the
request body. Without one the server answers HTTP 500 "no scripted reply left" and records
the mistake, so a test that makes more model calls than it scripted fails loudly.

Example::

    with WireServer() as server:
        server.script(Text("Hello there!"), ToolCall("transfer_to_spanish"), Fault.rate_limited())
        client = AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        ...
        assert server.requests[0].body["model"] == "gpt-test"

The implementation uses only the standard library: ``http.server.ThreadingHTTPServer``
parses HTTP/1.1 (keep-alive included) and every connection gets a daemon thread, so
blocking sleeps for latency or stalls are trivial and never block other connections.
Every wait is on one shared stop event, which is why :meth:`WireServer.close` never hangs,
even with a stream stalled "forever".
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
import socket
import struct
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self, TypeAlias
from urllib.parse import urlsplit

try:  # POSIX only; used to make "reset after N events" deterministic on Linux.
    import fcntl
    import termios
except ImportError:  # pragma: no cover - Windows
    fcntl = termios = None  # type: ignore[assignment]

__all__ = [
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Text",
    "ToolCall",
    "Turn",
    "WireServer",
]

RESPONSES_PATH: Final = "/v1/responses"
CHAT_COMPLETIONS_PATH: Final = "/v1/chat/completions"
_ROUTES: Final[Mapping[str, str]] = {
    RESPONSES_PATH: "responses",
    CHAT_COMPLETIONS_PATH: "chat",
}

# Words keep their leading whitespace, like real tokenizer output (" world"), and the chunks
# always concatenate back to the exact input.
_WORD_RE: Final = re.compile(r"\s*\S+|\s+")

# Bound on how long close() waits for connection threads after aborting their sockets; they
# only ever wait on the stop event or on socket I/O, so this is a safety net, not a delay.
_HANDLER_JOIN_TIMEOUT: Final = 5.0

# How long a mid-stream reset waits for the client to receive the events sent before it.
_DELIVERY_TIMEOUT: Final = 1.0

# TIOCOUTQ equals SIOCOUTQ on Linux; elsewhere the ioctl means something else for sockets.
_SIOCOUTQ: Final[int | None] = (
    termios.TIOCOUTQ if termios is not None and sys.platform.startswith("linux") else None
)


def _check_delay(name: str, value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_streaming(chunk_size: int | None, latency: float | None,
                     token_delay: float | None) -> None:
    """Validate the pacing fields Text and ToolCall share."""
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size!r}")
    _check_delay("latency", latency)
    _check_delay("token_delay", token_delay)


def _split_chunks(text: str, chunk_size: int | None) -> list[str]:
    """Split text into stream deltas: words by default, fixed-size pieces otherwise."""
    if not text:
        return []
    if chunk_size is None:
        return _WORD_RE.findall(text)
    return [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]


# --------------------------------------------------------------------------------------------
# Script vocabulary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """An assistant text message.

    Args:
        text: The full message text.
        chunk_size: Characters per streamed delta; ``None`` streams one word per delta.
        latency: Seconds before the first byte; ``None`` uses the server default.
        token_delay: Seconds between deltas; ``None`` uses the server default.
    """

    text: str
    chunk_size: int | None = None
    latency: float | None = None
    token_delay: float | None = None

    def __post_init__(self) -> None:
        _check_streaming(self.chunk_size, self.latency, self.token_delay)

    def chunks(self) -> list[str]:
        """The deltas this message is streamed as, in order."""
        return _split_chunks(self.text, self.chunk_size)


@dataclass(frozen=True)
class ToolCall:
    """A function call emitted by the model.

    Args:
        name: Function (or handoff tool) name, e.g. ``"transfer_to_spanish"``.
        arguments: JSON arguments, as a string or a mapping (serialized compactly).
        call_id: The ``call_id``; generated (``call_...``) when ``None``.
        chunk_size: Characters per streamed arguments delta; ``None`` sends one delta.
        latency: Seconds before the first byte; ``None`` uses the server default.
        token_delay: Seconds between deltas; ``None`` uses the server default.
    """

    name: str
    arguments: str | Mapping[str, Any] = "{}"
    call_id: str | None = None
    chunk_size: int | None = None
    latency: float | None = None
    token_delay: float | None = None

    def __post_init__(self) -> None:
        _check_streaming(self.chunk_size, self.latency, self.token_delay)

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON string sent on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), separators=(",", ":"), ensure_ascii=False)

    def chunks(self) -> list[str]:
        """The arguments deltas, in order."""
        arguments = self.arguments_json
        if self.chunk_size is None:
            return [arguments] if arguments else []
        return _split_chunks(arguments, self.chunk_size)


Output: TypeAlias = Text | ToolCall


@dataclass(frozen=True, init=False)
class Turn:
    """One model response with several outputs, e.g. text plus parallel tool calls.

    ``Turn(Text("Let me check."), ToolCall("a"), ToolCall("b"))``. Timing comes from the
    turn (``latency``/``token_delay`` keywords); those of the outputs are ignored.
    For Chat Completions all text outputs are concatenated into the one message.
    """

    outputs: tuple[Output, ...]
    latency: float | None
    token_delay: float | None

    def __init__(
        self,
        *outputs: Output,
        latency: float | None = None,
        token_delay: float | None = None,
    ) -> None:
        if not outputs:
            raise ValueError("Turn needs at least one output")
        for output in outputs:
            if not isinstance(output, Text | ToolCall):
                raise TypeError(f"Turn outputs must be Text or ToolCall, got {output!r}")
        _check_delay("latency", latency)
        _check_delay("token_delay", token_delay)
        # frozen dataclass: assign through object.__setattr__ like the generated __init__.
        object.__setattr__(self, "outputs", tuple(outputs))
        object.__setattr__(self, "latency", latency)
        object.__setattr__(self, "token_delay", token_delay)


class FaultKind(enum.StrEnum):
    """The failure modes :class:`Fault` can inject."""

    HTTP_ERROR = "http_error"
    RESET_BEFORE_HEADERS = "reset_before_headers"
    RESET_MID_STREAM = "reset_mid_stream"
    STALL = "stall"
    MALFORMED_SSE = "malformed_sse"
    SSE_ERROR = "sse_error"
    EOF_WITHOUT_COMPLETED = "eof_without_completed"
    HTML_PAGE = "html_page"
    JSON_FOR_STREAM = "json_for_stream"


_DEFAULT_FAULT_TEXT: Final = "This answer is interrupted by an injected fault."


@dataclass(frozen=True)
class Fault:
    """An injected failure. Build one with the classmethods rather than the constructor.

    Stream faults (``reset_mid_stream``, ``stall``, ``malformed_sse``, ``sse_error``,
    ``eof_without_completed``) first stream the opening events of a normal reply of
    ``text``, ``after_events`` SSE events in all (never the terminal event), then fail.
    For a non-streamed request they act on the JSON body instead: reset or stall after
    half of it, a truncated (malformed) body, HTTP 500 for ``sse_error``, or a clean close
    before the body is complete.
    """

    kind: FaultKind
    status: int = 500
    error: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    after_events: int | None = 5
    seconds: float | None = None
    text: str = _DEFAULT_FAULT_TEXT
    latency: float | None = None

    def __post_init__(self) -> None:
        if self.after_events is not None and self.after_events < 0:
            raise ValueError(f"after_events must be >= 0, got {self.after_events!r}")
        _check_delay("seconds", self.seconds)
        _check_delay("latency", self.latency)

    @classmethod
    def http_error(
        cls,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Any HTTP error with an OpenAI-shaped body ``{"error": {message, type, param, code}}``."""
        error = {"message": message, "type": type, "param": param, "code": code}
        return cls(FaultKind.HTTP_ERROR, status=status, error=error, headers=dict(headers or {}))

    @classmethod
    def unauthorized(cls) -> Fault:
        """HTTP 401 exactly as OpenAI answers an invalid API key."""
        return cls.http_error(
            401,
            "Incorrect API key provided: test. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> Fault:
        """HTTP 429 ``rate_limit_exceeded``; with ``retry_after`` also a ``Retry-After`` header."""
        headers = {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "120ms",
        }
        if retry_after is not None:
            # Integral values as "2", not "2.0": the HTTP header is delta-seconds.
            value = int(retry_after) if float(retry_after).is_integer() else retry_after
            headers["retry-after"] = str(value)
        return cls.http_error(
            429,
            "Rate limit reached for gpt-test in organization org-test on requests per min "
            "(RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms. Visit "
            "https://platform.openai.com/account/rate-limits to learn more.",
            type="requests",
            code="rate_limit_exceeded",
            headers=headers,
        )

    @classmethod
    def quota_exhausted(cls) -> Fault:
        """HTTP 429 ``insufficient_quota``: billing, not throttling, so retrying cannot help."""
        return cls.http_error(
            429,
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            type="insufficient_quota",
            code="insufficient_quota",
        )

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """HTTP 5xx ``server_error`` as OpenAI sends it."""
        return cls.http_error(
            status,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )

    @classmethod
    def reset_before_headers(cls) -> Fault:
        """Read the request, then reset the connection (RST) without sending anything."""
        return cls(FaultKind.RESET_BEFORE_HEADERS)

    @classmethod
    def reset_mid_stream(cls, after_events: int = 5, *, text: str = _DEFAULT_FAULT_TEXT) -> Fault:
        """Send ``after_events`` SSE events, then reset the connection (RST)."""
        return cls(FaultKind.RESET_MID_STREAM, after_events=after_events, text=text)

    @classmethod
    def stall(
        cls,
        after_events: int = 5,
        seconds: float | None = None,
        *,
        text: str = _DEFAULT_FAULT_TEXT,
    ) -> Fault:
        """Send headers and ``after_events`` events, then go silent.

        With ``seconds`` the stream resumes and completes normally afterwards; with
        ``None`` it stalls until the server stops (then the connection is reset).
        """
        return cls(FaultKind.STALL, after_events=after_events, seconds=seconds, text=text)

    @classmethod
    def malformed_sse(cls, after_events: int = 5, *, text: str = _DEFAULT_FAULT_TEXT) -> Fault:
        """Send ``after_events`` events, then a ``data:`` line that is not JSON, then EOF."""
        return cls(FaultKind.MALFORMED_SSE, after_events=after_events, text=text)

    @classmethod
    def sse_error(
        cls,
        code: str = "server_error",
        message: str = "The server had an error while processing your request.",
        after_events: int = 5,
        *,
        text: str = _DEFAULT_FAULT_TEXT,
    ) -> Fault:
        """Send ``after_events`` events, then an in-stream error, then EOF.

        Responses API: ``event: error`` with ``{"type": "error", "code", "message", ...}``.
        Chat Completions: ``data: {"error": {...}}``, which the client raises as ``APIError``.
        """
        error = {"message": message, "type": "server_error", "param": None, "code": code}
        return cls(FaultKind.SSE_ERROR, error=error, after_events=after_events, text=text)

    @classmethod
    def eof_without_completed(
        cls, after_events: int | None = None, *, text: str = _DEFAULT_FAULT_TEXT
    ) -> Fault:
        """End the stream cleanly but without the terminal event.

        Responses API: no ``response.completed``. Chat Completions: no ``finish_reason``
        chunk, usage chunk or ``[DONE]``. ``after_events=None`` sends every other event.
        """
        return cls(FaultKind.EOF_WITHOUT_COMPLETED, after_events=after_events, text=text)

    @classmethod
    def html_page(cls, status: int = 200) -> Fault:
        """An HTML page (``text/html``) instead of an API answer, streamed request or not.

        What a web server says when ``base_url`` points at it instead of at the API: a
        front page or a login form, usually with 200.
        """
        return cls(FaultKind.HTML_PAGE, status=status)

    @classmethod
    def json_for_stream(cls, *, text: str = _DEFAULT_FAULT_TEXT) -> Fault:
        """The plain JSON answer of ``text`` even when the request asked for a stream.

        What a server that cannot stream does with ``"stream": true``.
        """
        return cls(FaultKind.JSON_FOR_STREAM, text=text)


Reply: TypeAlias = Text | ToolCall | Turn | Fault
"""One scripted answer to one request."""

Responder: TypeAlias = Callable[[Any], Reply | None]
"""Computes a reply from the parsed JSON request body when the script is empty."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it.

    Attributes:
        index: Position in arrival order, from 0.
        method: HTTP method, e.g. ``"POST"``.
        path: URL path without the query string, e.g. ``"/v1/responses"``.
        headers: Header names lower-cased; repeated headers joined with ``", "``.
        body: The parsed JSON body (``None`` when empty or not JSON).
        request_id: The ``x-request-id`` the server answered with (``req_<n>``).
        received_at: ``time.monotonic()`` when the request was fully read.
    """

    index: int
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    request_id: str
    received_at: float

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed (SSE) answer."""
        return isinstance(self.body, dict) and self.body.get("stream") is True


# --------------------------------------------------------------------------------------------
# Wire payloads
# --------------------------------------------------------------------------------------------


class _Ids:
    """Thread-safe, deterministic ids so test failures are reproducible."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0

    def make(self, prefix: str, sep: str = "_") -> str:
        with self._lock:
            self._next += 1
            return f"{prefix}{sep}{self._next:032x}"


@dataclass(frozen=True)
class _Event:
    """One encoded SSE event.

    ``token`` marks content deltas (the only events paced by ``token_delay``); ``terminal``
    marks the events stream faults must never send (``response.completed``, the Chat
    Completions finish/usage chunks and ``[DONE]``).
    """

    raw: bytes
    token: bool = False
    terminal: bool = False


@dataclass(frozen=True)
class _Built:
    """A reply rendered for one endpoint: SSE events and the equivalent JSON body."""

    events: list[_Event]
    body: dict[str, Any]
    tokens: int
    # The usage the reply reports, in the Responses API's shape whatever the endpoint.
    usage: dict[str, int] = field(default_factory=dict)


def _dumps(payload: Any) -> str:
    # Compact separators and raw UTF-8, like the real API.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _sse(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


def _estimate_input_tokens(body: Mapping[str, Any]) -> int:
    # Deterministic stand-in for a tokenizer: ~4 characters per token.
    prompt = body.get("input", body.get("messages", ""))
    return max(1, len(_dumps(prompt)) // 4)


def _cached_tokens(input_tokens: int) -> int:
    # A deterministic prompt-cache hit (half the prompt), so cached counts are never all zero.
    return input_tokens // 2


def _reported(input_tokens: int, cached: int, output_tokens: int) -> dict[str, int]:
    return {"input_tokens": input_tokens, "cached_tokens": cached,
            "output_tokens": output_tokens, "reasoning_tokens": 0}


def _response_object(
    body: Mapping[str, Any],
    response_id: str,
    created_at: int,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    """A Responses API ``response`` object echoing the request's settings, as the API does."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": body.get("model") or "gpt-test",
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _build_responses(ids: _Ids, body: Mapping[str, Any], outputs: Sequence[Output]) -> _Built:
    """Render outputs as Responses API SSE events and the equivalent ``response`` JSON."""
    response_id = ids.make("resp")
    created_at = int(time.time())
    events: list[_Event] = []

    def add(
        type_: str, fields: Mapping[str, Any], *, token: bool = False, terminal: bool = False
    ) -> None:
        payload = {"type": type_, **fields, "sequence_number": len(events)}
        events.append(_Event(_sse(_dumps(payload), type_), token=token, terminal=terminal))

    in_progress = _response_object(
        body, response_id, created_at, status="in_progress", output=[], usage=None
    )
    add("response.created", {"response": in_progress})
    add("response.in_progress", {"response": in_progress})

    items: list[dict[str, Any]] = []
    output_tokens = 0
    for index, output in enumerate(outputs):
        chunks = output.chunks()
        output_tokens += len(chunks)
        if isinstance(output, Text):
            item_id = ids.make("msg")
            where = {"item_id": item_id, "output_index": index, "content_index": 0}
            message = {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
            }
            empty_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            part = {**empty_part, "text": output.text}
            item = {**message, "status": "completed", "content": [part]}
            add(
                "response.output_item.added",
                {"output_index": index, "item": {**message, "content": []}},
            )
            add("response.content_part.added", {**where, "part": empty_part})
            for chunk in chunks:
                add(
                    "response.output_text.delta",
                    {**where, "delta": chunk, "logprobs": []},
                    token=True,
                )
            add("response.output_text.done", {**where, "text": output.text, "logprobs": []})
            add("response.content_part.done", {**where, "part": part})
        else:
            item_id = ids.make("fc")
            call = {
                "id": item_id,
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": output.call_id or ids.make("call"),
                "name": output.name,
            }
            item = {**call, "status": "completed", "arguments": output.arguments_json}
            where = {"item_id": item_id, "output_index": index}
            add("response.output_item.added", {"output_index": index, "item": call})
            for chunk in chunks:
                add("response.function_call_arguments.delta", {**where, "delta": chunk}, token=True)
            add(
                "response.function_call_arguments.done",
                {**where, "arguments": output.arguments_json},
            )
        add("response.output_item.done", {"output_index": index, "item": item})
        items.append(item)

    input_tokens = _estimate_input_tokens(body)
    cached = _cached_tokens(input_tokens)
    usage = {
        "input_tokens": input_tokens,
        # This openai version requires both cache fields.
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
    completed = _response_object(
        body, response_id, created_at, status="completed", output=items, usage=usage
    )
    add("response.completed", {"response": completed}, terminal=True)
    return _Built(events=events, body=completed, tokens=output_tokens,
                  usage=_reported(input_tokens, cached, output_tokens))


def _build_chat(ids: _Ids, body: Mapping[str, Any], outputs: Sequence[Output]) -> _Built:
    """Render outputs as Chat Completions SSE chunks and the equivalent completion JSON."""
    completion_id = ids.make("chatcmpl", sep="-")
    created = int(time.time())
    model = body.get("model") or "gpt-test"
    stream_options = body.get("stream_options") or {}
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    base: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_wire_server",
    }
    events: list[_Event] = []

    def chunk(
        delta: dict[str, Any],
        finish: str | None = None,
        *,
        token: bool = False,
        terminal: bool = False,
    ) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        payload = {**base, "choices": [choice]}
        if include_usage:
            # With include_usage the API sends "usage": null on every chunk but the last.
            payload["usage"] = None
        events.append(_Event(_sse(_dumps(payload)), token=token, terminal=terminal))

    content = "".join(o.text for o in outputs if isinstance(o, Text))
    tool_calls: list[dict[str, Any]] = []
    output_tokens = 0
    # The real API folds the role into the first delta: an empty content string before text,
    # or content null plus the first tool call header.
    role: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    for output in outputs:
        chunks = output.chunks()
        output_tokens += len(chunks)
        if isinstance(output, Text):
            if role:
                chunk(role)
                role = {}
            for piece in chunks:
                chunk({"content": piece}, token=True)
            continue
        index = len(tool_calls)
        call_id = output.call_id or ids.make("call")
        header = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": output.name, "arguments": ""},
        }
        chunk({**role, **({"content": None} if role else {}), "tool_calls": [header]})
        role = {}
        for piece in chunks:
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, token=True)
        tool_calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": output.name, "arguments": output.arguments_json},
            }
        )

    finish_reason = "tool_calls" if tool_calls else "stop"
    chunk({}, finish_reason, terminal=True)
    input_tokens = _estimate_input_tokens(body)
    cached = _cached_tokens(input_tokens)
    usage = {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if include_usage:
        events.append(_Event(_sse(_dumps({**base, "choices": [], "usage": usage})), terminal=True))
    events.append(_Event(_sse("[DONE]"), terminal=True))

    message: dict[str, Any] = {
        "role": "assistant",
        "content": content if content or not tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    completion = {
        **base,
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": usage,
    }
    reported = _reported(input_tokens, cached, output_tokens) if include_usage else {}
    return _Built(events=events, body=completion, tokens=output_tokens, usage=reported)


def _build(endpoint: str, ids: _Ids, body: Mapping[str, Any], outputs: Sequence[Output]) -> _Built:
    builder = _build_responses if endpoint == "responses" else _build_chat
    return builder(ids, body, outputs)


_HTML_PAGE: Final = (
    "<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\n"
    "<body><h1>It works!</h1><p>This is the default web page for this server.</p></body>"
    "</html>\n"
)


def _error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _ScriptError(Exception):
    """The test script cannot answer this request (empty queue, bad responder...)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection; keep-alive, so possibly several requests in turn."""

    protocol_version = "HTTP/1.1"
    server_version = "wire-server/1.0"
    sys_version = ""
    server: _HTTPServer

    _request_id = "req_0"
    _headers_sent = False
    _tokens_sent = 0

    def setup(self) -> None:
        super().setup()
        # Small SSE writes must leave immediately, or Nagle + delayed ACK skew token timing.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log; requests are recorded instead."""

    def do_POST(self) -> None:
        """Entry point for POST requests."""
        self._dispatch()

    def do_GET(self) -> None:
        """Entry point for GET requests (none are served: recorded and answered 404)."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Entry point for DELETE requests (none are served: recorded and answered 404)."""
        self._dispatch()

    # -- request handling -----------------------------------------------------------------

    def _dispatch(self) -> None:
        wire = self.server.wire
        self._headers_sent = False
        self._tokens_sent = 0
        try:
            raw = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        path = urlsplit(self.path).path
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body: Any = None
        bad_json: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                bad_json = str(exc)
        record = wire._record(self.command, path, headers, body)
        self._request_id = record.request_id
        try:
            self._serve(record, bad_json)
        except OSError:
            # The client went away or close() aborted the socket: a transport event the
            # test provoked or no longer cares about, not a script error.
            self.close_connection = True
        except Exception:
            wire._record_error(
                f"internal error serving {record.method} {record.path} "
                f"({record.request_id}):\n{traceback.format_exc()}"
            )
            with contextlib.suppress(OSError):
                if self._headers_sent:
                    self._abort()
                else:
                    self._send_json(
                        500, _error_body("wire_server internal error", "server_error", None)
                    )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # Skip trailers up to the blank line that ends the chunked body.
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, record: RecordedRequest, bad_json: str | None) -> None:
        wire = self.server.wire
        endpoint = _ROUTES.get(record.path)
        if endpoint is None or record.method != "POST":
            message = f"wire_server: no route for {record.method} {record.path}"
            wire._record_error(message)
            self._send_json(404, _error_body(message, "invalid_request_error", "unknown_url"))
            return
        if bad_json is not None or not isinstance(record.body, dict):
            message = f"wire_server: request body is not a JSON object ({bad_json or 'empty'})"
            wire._record_error(message)
            self._send_json(400, _error_body(message, "invalid_request_error", "invalid_json"))
            return
        try:
            reply = wire._next_reply(record)
        except _ScriptError as exc:
            wire._record_error(str(exc))
            self._send_json(500, _error_body(str(exc), "wire_server_error", exc.code))
            return

        latency = reply.latency if reply.latency is not None else wire.latency
        if self._wait(latency):
            self._abort()
            return
        if isinstance(reply, Fault):
            self._serve_fault(endpoint, record, reply)
            return
        outputs = reply.outputs if isinstance(reply, Turn) else (reply,)
        token_delay = reply.token_delay if reply.token_delay is not None else wire.token_delay
        built = _build(endpoint, wire._ids, record.body, outputs)
        if built.usage:
            with wire._lock:
                wire._usage.append(built.usage)
        if record.stream:
            self._begin_sse()
            if not self._write_events(built.events, token_delay):
                self._abort()
                return
            self._end_chunks()
            return
        # Non-streamed answers still take as long as generating the tokens would.
        if self._wait(token_delay * max(0, built.tokens - 1)):
            self._abort()
            return
        self._send_json(200, built.body)

    def _serve_fault(self, endpoint: str, record: RecordedRequest, fault: Fault) -> None:
        wire = self.server.wire
        if fault.kind is FaultKind.HTTP_ERROR:
            self._send_json(fault.status, {"error": dict(fault.error or {})}, fault.headers)
            return
        if fault.kind is FaultKind.RESET_BEFORE_HEADERS:
            self._abort()
            return
        if fault.kind is FaultKind.HTML_PAGE:
            page = _HTML_PAGE.encode()
            self._begin(fault.status, {"Content-Type": "text/html; charset=utf-8",
                                       "Content-Length": str(len(page))})
            self.wfile.write(page)
            return
        built = _build(endpoint, wire._ids, record.body, (Text(fault.text),))
        if fault.kind is FaultKind.JSON_FOR_STREAM:
            self._send_json(200, built.body)
            return
        if not record.stream:
            self._serve_fault_as_json(fault, built)
            return

        # Terminal events sit at the end, so this is a prefix of built.events.
        head = [event for event in built.events if not event.terminal]
        if fault.after_events is not None:
            head = head[: fault.after_events]
        self._begin_sse()
        if not self._write_events(head, wire.token_delay):
            self._abort()
            return
        if fault.kind is FaultKind.RESET_MID_STREAM:
            self._wait_until_delivered()
            self._abort()
        elif fault.kind is FaultKind.STALL:
            if self._wait(fault.seconds, forever=fault.seconds is None):
                self._abort()
                return
            if not self._write_events(built.events[len(head) :], wire.token_delay):
                self._abort()
                return
            self._end_chunks()
        elif fault.kind is FaultKind.MALFORMED_SSE:
            if endpoint == "responses":
                bad = _sse(
                    '{"type":"response.output_text.delta","delta": <not json>',
                    "response.output_text.delta",
                )
            else:
                bad = _sse('{"id":"chatcmpl-broken","choices": <not json>')
            self._write_chunk(bad)
            self._end_chunks()
        elif fault.kind is FaultKind.SSE_ERROR:
            error = dict(fault.error or {})
            if endpoint == "responses":
                payload = {
                    "type": "error",
                    "code": error.get("code"),
                    "message": error.get("message"),
                    "param": error.get("param"),
                    "sequence_number": len(head),
                }
                self._write_chunk(_sse(_dumps(payload), "error"))
            else:
                self._write_chunk(_sse(_dumps({"error": error})))
            self._end_chunks()
        else:  # EOF_WITHOUT_COMPLETED: a clean end of the body, just too early.
            self._end_chunks()

    def _serve_fault_as_json(self, fault: Fault, built: _Built) -> None:
        data = _dumps(built.body).encode()
        half = data[: len(data) // 2]
        json_headers = {"Content-Type": "application/json"}
        if fault.kind is FaultKind.SSE_ERROR:
            self._send_json(500, {"error": dict(fault.error or {})})
        elif fault.kind is FaultKind.MALFORMED_SSE:
            self._begin(200, {**json_headers, "Content-Length": str(len(half))})
            self.wfile.write(half)
        else:
            # Promise the full body, deliver half of it, then fail as the kind says.
            self._begin(200, {**json_headers, "Content-Length": str(len(data))})
            self.wfile.write(half)
            if fault.kind is FaultKind.RESET_MID_STREAM:
                self._wait_until_delivered()
                self._abort()
            elif fault.kind is FaultKind.STALL:
                if self._wait(fault.seconds, forever=fault.seconds is None):
                    self._abort()
                    return
                self.wfile.write(data[len(half) :])
            else:  # EOF_WITHOUT_COMPLETED: orderly close (FIN) before the body is complete.
                self.close_connection = True

    # -- response writing -----------------------------------------------------------------

    def _begin(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("x-request-id", self._request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self._headers_sent = True

    def _send_json(
        self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        data = _dumps(payload).encode()
        self._begin(
            status,
            {
                "Content-Type": "application/json",
                "Content-Length": str(len(data)),
                **(headers or {}),
            },
        )
        self.wfile.write(data)

    def _begin_sse(self) -> None:
        self._begin(
            200,
            {
                "Content-Type": "text/event-stream; charset=utf-8",
                "Transfer-Encoding": "chunked",
                "Cache-Control": "no-cache",
            },
        )

    def _write_chunk(self, data: bytes) -> None:
        # One HTTP chunk per SSE event, written with a single send.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _write_events(self, events: Iterable[_Event], token_delay: float) -> bool:
        """Write events, pacing content deltas; False if the server began stopping."""
        for event in events:
            if event.token:
                if self._tokens_sent and self._wait(token_delay):
                    return False
                self._tokens_sent += 1
            self._write_chunk(event.raw)
        return True

    def _wait(self, seconds: float | None, *, forever: bool = False) -> bool:
        """Sleep, waking early when the server stops; True means "stopping, give up"."""
        stop = self.server.wire._stop
        if forever:
            stop.wait()
        elif seconds:
            stop.wait(seconds)
        return stop.is_set()

    def _wait_until_delivered(self, timeout: float = _DELIVERY_TIMEOUT) -> None:
        """Wait (bounded) until the client's kernel has acknowledged everything sent so far.

        A RST discards whatever still sits in our send buffer, so without this a "reset after
        N events" could silently drop some of those N events when the client reads slowly.
        """
        if _SIOCOUTQ is None:
            # No way to inspect the send queue on this platform: give loopback a moment.
            self._wait(0.05)
            return
        fd = self.connection.fileno()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # SIOCOUTQ: bytes sent but not yet acknowledged, plus bytes not yet sent.
                (unacknowledged,) = struct.unpack("i", fcntl.ioctl(fd, _SIOCOUTQ, bytes(4)))
            except OSError:
                return
            if unacknowledged == 0 or self._wait(0.002):
                return

    def _abort(self) -> None:
        """Close the connection with a TCP RST instead of an orderly FIN."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            # SO_LINGER on with a zero timeout makes close() discard buffers and send RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile holds a reference to the socket's fd; drop it so close() really closes now.
        self.rfile.close()
        sock.close()


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks live connections so close() can abort them."""

    daemon_threads = True
    # close() joins connection threads itself, with a timeout, instead of socketserver's
    # unbounded join.
    block_on_close = False

    def __init__(self, address: tuple[str, int], wire: WireServer) -> None:
        self.wire = wire
        self._connections_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a daemon thread, registered before it starts."""
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"wire-server-conn-{client_address[1]}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Run the handler, then unregister the connection."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record unexpected handler errors; connection-level OSErrors are normal here."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        self.wire._record_error(
            f"unhandled error on connection {client_address}:\n{traceback.format_exc()}"
        )

    def abort_connections(self, timeout: float) -> list[threading.Thread]:
        """Shut every live connection down and wait for its thread; returns stragglers."""
        with self._connections_lock:
            live = list(self._connections.items())
        for sock, _ in live:
            # Unblocks a handler idling in a keep-alive read or blocked in a send.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in live:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread for _, thread in live if thread.is_alive()]


# --------------------------------------------------------------------------------------------
# Public server
# --------------------------------------------------------------------------------------------


class WireServer:
    """A scriptable loopback OpenAI API server (Responses and Chat Completions).

    Args:
        *replies: Initial script, consumed one reply per request, in order.
        responder: Called with the parsed JSON body when the script is empty; returns a
            reply, or ``None`` for "no answer" (HTTP 500, recorded as an error). It runs on
            the connection's thread, so it may block without stalling other requests.
        latency: Default seconds before the first byte of every answer.
        token_delay: Default seconds between streamed content deltas.
        strict: When true, leaving the ``with`` block normally raises ``AssertionError``
            if the server recorded :attr:`errors` (e.g. "no scripted reply left").
        host: Interface to bind; loopback by default so tests never leave the machine.
        port: Port to bind; 0 picks a free ephemeral port.

    Use it as a context manager (``with WireServer() as server: ...``) or call
    :meth:`start` and :meth:`close` yourself. A stopped server cannot be restarted.
    """

    def __init__(
        self,
        *replies: Reply,
        responder: Responder | None = None,
        latency: float = 0.0,
        token_delay: float = 0.0,
        strict: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        _check_delay("latency", latency)
        _check_delay("token_delay", token_delay)
        self.responder = responder
        self.latency = latency
        self.token_delay = token_delay
        self.strict = strict
        self._address = (host, port)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._usage: list[dict[str, int]] = []
        self._ids = _Ids()
        self._stop = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.script(*replies)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and start serving in a background thread (idempotent); returns ``self``."""
        with self._lock:
            if self._closed:
                raise RuntimeError("WireServer was closed; create a new one")
            if self._httpd is not None:
                return self
            self._httpd = _HTTPServer(self._address, self)
            # A short poll interval keeps close() fast: shutdown() waits for one poll.
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="wire-server",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and abort open connections, stalled streams included (idempotent)."""
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
            self._closed = True
        if httpd is None or thread is None:
            return
        # Wake every latency/stall/token wait first so handlers finish promptly.
        self._stop.set()
        httpd.shutdown()
        thread.join()
        stragglers = httpd.abort_connections(_HANDLER_JOIN_TIMEOUT)
        if stragglers:
            self._record_error(
                f"{len(stragglers)} connection thread(s) still running after close()"
            )
        httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        # Don't mask the test's own exception with the (likely related) script errors.
        if self.strict and exc_type is None and self.errors:
            raise AssertionError("wire server recorded errors:\n" + "\n".join(self.errors))

    # -- addressing -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError("WireServer is not running; use start() or a with block")
        return int(httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """Base URL for ``OpenAI(base_url=...)``, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self._address[0]}:{self.port}/v1"

    # -- scripting --------------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Append replies to the script; each request consumes the next one."""
        for reply in replies:
            if not isinstance(reply, Text | ToolCall | Turn | Fault):
                raise TypeError(f"not a reply (Text, ToolCall, Turn or Fault): {reply!r}")
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies have not been consumed yet."""
        with self._lock:
            return len(self._queue)

    # -- observation ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def reported_usage(self) -> list[dict[str, int]]:
        """The usage each answer reported (input, cached, output, reasoning tokens), in order.

        Faults report none; a Chat Completions stream only with ``include_usage``.
        """
        with self._lock:
            return list(self._usage)

    @property
    def errors(self) -> list[str]:
        """Problems with the test script itself (empty script, unknown route, bad body...)."""
        with self._lock:
            return list(self._errors)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived; raise ``TimeoutError`` otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} request(s) within {timeout}s, got {len(self._requests)}"
                )
            return list(self._requests)

    # -- used by the handler ----------------------------------------------------------------

    def _record(
        self, method: str, path: str, headers: Mapping[str, str], body: Any
    ) -> RecordedRequest:
        with self._changed:
            index = len(self._requests)
            record = RecordedRequest(
                index=index,
                method=method,
                path=path,
                headers=MappingProxyType(dict(headers)),
                body=body,
                request_id=f"req_{index + 1}",
                received_at=time.monotonic(),
            )
            self._requests.append(record)
            self._changed.notify_all()
        return record

    def _record_error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    def _next_reply(self, record: RecordedRequest) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            responder = self.responder
        where = f"{record.method} {record.path} ({record.request_id})"
        if responder is None:
            raise _ScriptError(
                f"wire_server: no scripted reply left for {where}", "no_scripted_reply"
            )
        # Called outside the lock so a responder may inspect server.requests.
        try:
            reply = responder(record.body)
        except Exception as exc:
            raise _ScriptError(
                f"wire_server: responder raised {exc!r} for {where}", "responder_error"
            ) from exc
        if reply is None:
            raise _ScriptError(
                f"wire_server: responder returned no reply for {where}", "no_scripted_reply"
            )
        if not isinstance(reply, Text | ToolCall | Turn | Fault):
            raise _ScriptError(
                f"wire_server: responder returned {reply!r}, not a reply, for {where}",
                "responder_error",
            )
        return reply
