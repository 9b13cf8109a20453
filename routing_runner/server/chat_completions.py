"""`POST /v1/chat/completions`: a turn as a chat completion, whole or streamed.

The stock format, plus what a routed bot adds and stock clients ignore: a top-level `routing`
object (`agent`, `route`, `session_id`) in the completion and in the last stream chunk, the
answering `agent` in the first chunk, and a chunk with no choices and a `handoff` object
(`from`, `to`) where the conversation changes hands.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from routing_runner.runtime.events import (
    AgentChanged,
    TextDelta,
    TurnEnded,
    TurnFailed,
    TurnStarted,
)

from .problems import bad_request
from .requests import SESSION_HEADER, body_object, failure, flag, routing, split_messages
from .service import Turn, TurnRequest
from .state import server_of, session_header
from .streams import SSE_HEADERS, read_json, sse


async def chat_completions(request: Request) -> Response:
    """Answer the last user message of the request's conversation."""
    server = server_of(request)
    body = body_object(await read_json(request))
    first_agent = server.models.first_agent(body.get("model"))
    stream = flag(body, "stream")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise bad_request("'messages' must be a list of messages", "messages")
    session_id = session_header(request)
    message, history = split_messages(messages, "messages", session_id is not None,
                                      server.config.serve.max_message_chars)
    turn = await server.service.begin(TurnRequest(message, session_id, history, first_agent))
    headers = {SESSION_HEADER: turn.session_id}
    head = _Head(f"chatcmpl-{secrets.token_hex(12)}", int(time.time()), str(body["model"]))
    if stream:
        return StreamingResponse(_chunks(turn, head), media_type="text/event-stream",
                                 headers={**headers, **SSE_HEADERS})
    ended = await turn.result()
    if isinstance(ended, TurnFailed):
        return failure(ended.message, ended.interrupted).response(headers)
    return JSONResponse({
        **head.fields("chat.completion"),
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": ended.text}}],
        "routing": routing(turn.session_id, ended),
    }, headers=headers)


class _Head:
    """The fields every chunk of one completion repeats."""

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self.completion_id = completion_id
        self.created = created
        self.model = model

    def fields(self, kind: str) -> dict[str, Any]:
        return {"id": self.completion_id, "object": kind, "created": self.created,
                "model": self.model}

    def chunk(self, delta: dict[str, Any] | None, finish: str | None = None,
              **extra: Any) -> str:
        choices = [] if delta is None else [
            {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        return sse(json.dumps({**self.fields("chat.completion.chunk"), "choices": choices,
                               **extra}, ensure_ascii=False))


async def _chunks(turn: Turn, head: _Head) -> AsyncIterator[str]:
    async for event in turn.events():
        if isinstance(event, TurnStarted):
            yield head.chunk({"role": "assistant", "content": ""}, agent=event.agent)
        elif isinstance(event, TextDelta):
            yield head.chunk({"content": event.text})
        elif isinstance(event, AgentChanged):
            yield head.chunk(None, handoff={"from": event.source, "to": event.target})
        elif isinstance(event, TurnEnded):
            yield head.chunk({}, "stop", routing=routing(turn.session_id, event))
        elif isinstance(event, TurnFailed):
            # The openai client raises an APIError for a chunk carrying `error`.
            yield sse(json.dumps(failure(event.message, event.interrupted).body()))
    yield sse("[DONE]")
