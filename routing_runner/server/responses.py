"""`POST /v1/responses`: a turn in the Responses API shape, whole or streamed.

The conversation is `conversation` (its id, or `{"id": ...}`) or the one a
`previous_response_id` belongs to: a response id carries its conversation's id after the
first '.', so any worker can continue from it without a lookup. The response's `metadata`
holds `agent`, `route` (agents joined by '>', since metadata values are strings) and
`session_id`. A streamed handoff is a `response.handoff` event, which clients may ignore.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from routing_runner.runtime.events import AgentChanged, TextDelta, TurnEnded, TurnFailed

from .problems import bad_request
from .requests import SESSION_HEADER, body_object, failure, flag, route, split_messages
from .service import Turn, TurnRequest
from .state import server_of, session_header
from .streams import SSE_HEADERS, read_json, sse


async def responses(request: Request) -> Response:
    """Answer the last user message of `input` in the request's conversation."""
    server = server_of(request)
    body = body_object(await read_json(request))
    first_agent = server.models.first_agent(body.get("model"))
    stream = flag(body, "stream")
    session_id = _conversation(body) or session_header(request)
    message, history = split_messages(_input(body.get("input")), "input",
                                      session_id is not None,
                                      server.config.serve.max_message_chars)
    turn = await server.service.begin(TurnRequest(message, session_id, history, first_agent))
    draft = _Draft(turn.session_id, str(body["model"]))
    headers = {SESSION_HEADER: turn.session_id}
    if stream:
        return StreamingResponse(_events(turn, draft), media_type="text/event-stream",
                                 headers={**headers, **SSE_HEADERS})
    ended = await turn.result()
    if isinstance(ended, TurnFailed):
        return failure(ended.message, ended.interrupted).response(headers)
    return JSONResponse(draft.response(ended), headers=headers)


def _conversation(body: Mapping[str, Any]) -> str | None:
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if conversation is not None:
        if not isinstance(conversation, str) or not conversation:
            raise bad_request("'conversation' must be a conversation id, or {\"id\": ...}",
                              "conversation")
        return conversation
    previous = body.get("previous_response_id")
    if previous is None:
        return None
    if not isinstance(previous, str) or "." not in previous:
        raise bad_request("'previous_response_id' must be the id of a response of this "
                          "server", "previous_response_id")
    return previous.split(".", 1)[1]


def _input(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if isinstance(raw, list):
        return raw
    raise bad_request("'input' must be a string or a list of messages", "input")


@dataclass
class _Draft:
    """One response as it is built: its ids, and the events' sequence numbers."""

    session_id: str
    model: str
    response_id: str = ""
    message_id: str = field(default_factory=lambda: f"msg_{secrets.token_hex(12)}")
    created: int = field(default_factory=lambda: int(time.time()))
    sequence: int = 0

    def __post_init__(self) -> None:
        self.response_id = f"resp_{secrets.token_hex(12)}.{self.session_id}"

    def response(self, ended: TurnEnded | None, status: str = "completed",
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
        output = [] if ended is None else [self.message(ended.text, "completed")]
        metadata = {"session_id": self.session_id}
        if ended is not None:
            metadata |= {"agent": ended.agent, "route": ">".join(route(ended))}
        return {"id": self.response_id, "object": "response", "created_at": self.created,
                "status": status, "model": self.model, "output": output, "error": error,
                "incomplete_details": None, "metadata": metadata, "tools": [],
                "tool_choice": "auto", "parallel_tool_calls": False,
                "conversation": {"id": self.session_id}}

    def message(self, text: str, status: str) -> dict[str, Any]:
        content = [{"type": "output_text", "text": text, "annotations": []}] if text else []
        return {"type": "message", "id": self.message_id, "status": status,
                "role": "assistant", "content": content}

    def event(self, kind: str, **fields: Any) -> str:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse(json.dumps(data, ensure_ascii=False), kind)


async def _events(turn: Turn, draft: _Draft) -> AsyncIterator[str]:
    where = {"item_id": draft.message_id, "output_index": 0, "content_index": 0}
    yield draft.event("response.created", response=draft.response(None, "in_progress"))
    yield draft.event("response.output_item.added", output_index=0,
                      item=draft.message("", "in_progress"))
    yield draft.event("response.content_part.added", **where,
                      part={"type": "output_text", "text": "", "annotations": []})
    async for event in turn.events():
        if isinstance(event, TextDelta):
            yield draft.event("response.output_text.delta", **where, delta=event.text,
                              logprobs=[])
        elif isinstance(event, AgentChanged):
            yield draft.event("response.handoff", source=event.source, target=event.target)
        elif isinstance(event, TurnEnded):
            yield draft.event("response.output_text.done", **where, text=event.text,
                              logprobs=[])
            yield draft.event("response.output_item.done", output_index=0,
                              item=draft.message(event.text, "completed"))
            yield draft.event("response.completed", response=draft.response(event))
        elif isinstance(event, TurnFailed):
            problem = failure(event.message, event.interrupted)
            yield draft.event("error", code=problem.code, message=event.message, param=None)
            yield draft.event("response.failed", response=draft.response(
                None, "failed", {"code": problem.code, "message": event.message}))
