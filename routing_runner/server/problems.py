"""Refused or failed requests, sent the way the OpenAI API sends errors.

`{"error": {"message", "type", "param", "code"}}` with the status a stock client maps to its
exception (404 NotFoundError, 409 ConflictError, ...). Refusals that waiting cannot fix say
`x-should-retry: false`, which the `openai` client honours instead of retrying them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

# Statuses the openai client would otherwise retry (409, 5xx) although the same request fails
# the same way (a conversation stayed busy for the whole wait, the model provider refused).
_FINAL = {409, 502, 504}


class HttpProblem(Exception):
    """One request refused or failed: its status, a one-line message and the error's type."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        if status in _FINAL:
            self.headers.setdefault("x-should-retry", "false")

    def body(self) -> dict[str, Any]:
        """The OpenAI error object."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}

    def response(self, headers: Mapping[str, str] | None = None) -> JSONResponse:
        """The error as an HTTP response, with `headers` added (the session id)."""
        return JSONResponse(self.body(), self.status, headers={**self.headers, **(headers or {})})


def bad_request(message: str, param: str | None = None) -> HttpProblem:
    """400: the body is not what the endpoint takes."""
    return HttpProblem(400, message, param=param)


def too_large(message: str) -> HttpProblem:
    """413: the body or a message is over the configured limit."""
    return HttpProblem(413, message, code="request_too_large")


def not_found(message: str, code: str) -> HttpProblem:
    """404: an unknown model or conversation."""
    return HttpProblem(404, message, code=code)


def busy(session_id: str, wait: float) -> HttpProblem:
    """409 for a conversation another request (or a chat) keeps past `wait` seconds. Said
    without the store's own words, which name its file or address: not for HTTP clients."""
    return HttpProblem(409, f"conversation {session_id!r} is busy with another request, still "
                            f"after {wait:g} s; try again when it ends", code="session_busy")
