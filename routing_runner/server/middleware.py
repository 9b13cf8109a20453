"""Around every request: the access log, the bearer token and the body size limit.

Plain ASGI middleware, so a streamed reply passes through untouched. The access log says who
asked what and how it went - method, path, status, time, conversation - and never a message's
text, a header's value or a token.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .metrics import Metrics
from .problems import HttpProblem, too_large

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

ACCESS_LOG = logging.getLogger("routing_runner.server.access")
# Open without a token: the page itself (it asks for the token) and the health check.
_OPEN_PATHS = {"/", "/healthz"}


class _BodyTooLarge(Exception):
    pass


class AccessLog:
    """One line per request, JSON or text: method, path, status, milliseconds, session."""

    def __init__(self, app: App, metrics: Metrics, as_json: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.as_json = as_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "session_id": None}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"x-session-id":
                        seen["session_id"] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.metrics.requests.labels(str(seen["status"])).inc()
            self._write(scope, seen, (time.perf_counter() - started) * 1000)

    def _write(self, scope: Scope, seen: dict[str, Any], milliseconds: float) -> None:
        record = {"time": round(time.time(), 3), "method": scope["method"],
                  "path": scope["path"], "status": seen["status"],
                  "ms": round(milliseconds, 1), "session_id": seen["session_id"]}
        if self.as_json:
            ACCESS_LOG.info(json.dumps(record))
        else:
            ACCESS_LOG.info("%s %s %s %.1f ms%s", record["method"], record["path"],
                            record["status"], milliseconds,
                            f" session {seen['session_id']}" if seen["session_id"] else "")


class Gate:
    """Refuses requests without the bearer token (401) and bodies over the limit (413)."""

    def __init__(self, app: App, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.token is not None and scope["path"] not in _OPEN_PATHS and \
                not self._authorised(headers.get(b"authorization", b"")):
            await _refuse(HttpProblem(
                401, "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                "with the token the server's serve.auth_token_env variable holds",
                code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}), scope, send)
            return
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(self._too_large(), scope, send)
            return
        started = False

        async def started_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._counted(receive), started_send)
        except _BodyTooLarge:
            if not started:
                await _refuse(self._too_large(), scope, send)

    def _authorised(self, header: bytes) -> bool:
        assert self.token is not None
        scheme, _, given = header.partition(b" ")
        # Constant time: how long the comparison takes says nothing about the token.
        return hmac.compare_digest(given.strip(), self.token) and scheme.lower() == b"bearer"

    def _too_large(self) -> HttpProblem:
        return too_large(f"the request body is over {self.max_body_bytes:,} bytes "
                         "(serve.max_body_bytes)")

    def _counted(self, receive: Receive) -> Receive:
        """`receive`, raising once a body without a declared length grows over the limit."""
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        return counted


async def _refuse(problem: HttpProblem, scope: Scope, send: Send) -> None:
    await problem.response()(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
