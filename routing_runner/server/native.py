"""The endpoints of our own: models, stored conversations, health, metrics and the chat page."""

from __future__ import annotations

import time
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from routing_runner.errors import SessionIdError, SessionInUseError
from routing_runner.session_admin import export_document, stored_turns

from .metrics import CONTENT_TYPE
from .problems import busy, not_found
from .requests import route
from .state import server_of

_STARTED = int(time.time())


async def models(request: Request) -> Response:
    """`GET /v1/models`: the routed id first, then one per agent."""
    server = server_of(request)
    return JSONResponse({"object": "list", "data": [
        {"id": model, "object": "model", "created": _STARTED, "owned_by": "routing-runner"}
        for model in server.models.ids()]})


async def show_session(request: Request) -> Response:
    """`GET /v1/sessions/{id}`: the conversation as `sessions export` writes it, and its
    `turns` (user message, answering agent, route, reply)."""
    server = server_of(request)
    session_id = request.path_params["session_id"]
    try:
        summary = await server.store.summary(session_id)
        if summary is None:
            raise SessionIdError(f"no conversation {session_id!r} in this server's store")
        items = await server.store.read_items(session_id)
    except SessionIdError as exc:
        raise not_found(str(exc), "session_not_found") from None
    finally:
        await server.store.release(session_id)
    document = export_document(summary, items, server.store.description)
    # The turns as the chat showed them (stored items carry no agent names): the page's history.
    document["turns"] = [
        {"user": user, "agent": ended.agent if ended else None,
         "route": route(ended) if ended else [], "text": ended.text if ended else None}
        for user, ended in stored_turns(items, server.config)]
    return JSONResponse(document)


async def delete_session(request: Request) -> Response:
    """`DELETE /v1/sessions/{id}`: once no turn of it runs (409 if one keeps it busy)."""
    server = server_of(request)
    session_id = request.path_params["session_id"]
    try:
        async with server.store.turn_lock(session_id, wait=server.config.serve.lock_wait):
            deleted = await server.store.delete(session_id)
    except SessionIdError as exc:
        raise not_found(str(exc), "session_not_found") from None
    except SessionInUseError:
        raise busy(session_id, server.config.serve.lock_wait) from None
    if not deleted:
        raise not_found(f"no conversation {session_id!r} in this server's store",
                        "session_not_found")
    return JSONResponse({"id": session_id, "object": "session.deleted", "deleted": True})


async def healthz(request: Request) -> Response:
    """`GET /healthz`: the worker is up (its store answered when it started)."""
    server = server_of(request)
    return JSONResponse({"status": "ok", "store": server.store.description})


async def metrics(request: Request) -> Response:
    """`GET /metrics` in the Prometheus text format."""
    return Response(server_of(request).metrics.text(), media_type=CONTENT_TYPE)


async def page(_request: Request) -> Response:
    """`GET /`: the chat page (one static file of the package, no CDN)."""
    return HTMLResponse(files(__package__).joinpath("static/index.html").read_text("utf-8"))
