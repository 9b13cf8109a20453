"""Request bodies in, server-sent events out: the wire details both API shapes share."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from .problems import bad_request

# Proxies must pass each event on as it comes rather than collect the whole reply.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def read_json(request: Request) -> Any:
    """The request's JSON body; 400 saying where it stops being JSON."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise bad_request("the request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise bad_request(f"the request body is not JSON: {exc.msg} at line {exc.lineno} "
                          f"column {exc.colno}") from None


def sse(data: str, event: str | None = None) -> str:
    """One server-sent event."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n"
