"""The ASGI app of one worker: routes, middleware, and the store and graph it lives with.

The agent graph is built and the store checked when the worker starts (the lifespan), and
closed when it stops, after running turns were given `serve.shutdown_grace` to finish.
`from_environment` is the factory each uvicorn worker process calls: the `serve` command puts
the config and the command's overrides in the environment, as worker processes inherit it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from routing_runner.config import load_config
from routing_runner.config.model import Config
from routing_runner.runtime.providers import ResolvedProvider, resolve_provider
from routing_runner.stores import open_store

from . import native
from .chat_completions import chat_completions
from .metrics import Metrics
from .middleware import AccessLog, Gate
from .problems import HttpProblem
from .requests import SESSION_HEADER
from .responses import responses
from .service import TurnService
from .state import Server

ENVIRONMENT_VARIABLE = "ROUTING_RUNNER_SERVE"


@dataclass(frozen=True)
class Launch:
    """What a worker needs besides its config: the options the command line gave."""

    config_path: str
    json_log: bool = False

    def to_environment(self) -> str:
        """The value of ROUTING_RUNNER_SERVE a worker reads back with `from_environment`."""
        return json.dumps({"config_path": self.config_path, "json_log": self.json_log})


def from_environment() -> Starlette:
    """The app of a uvicorn worker, from the launch the `serve` command left in the
    environment."""
    launch = Launch(**json.loads(os.environ[ENVIRONMENT_VARIABLE]))
    return create_app(load_config(Path(launch.config_path)).config, json_log=launch.json_log)


def create_app(config: Config, *, json_log: bool = False,
               provider: ResolvedProvider | None = None,
               token: str | None = None) -> Starlette:
    """The app serving `config` (its `serve:` block with the command's overrides applied).

    The bearer token is read from the variable `serve.auth_token_env` names unless given.
    """
    if token is None and config.serve.auth_token_env:
        token = os.environ.get(config.serve.auth_token_env) or None
    metrics = Metrics()
    app = Starlette(routes=[
        Route("/", native.page),
        Route("/healthz", native.healthz),
        Route("/metrics", native.metrics),
        Route("/v1/models", native.models),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/sessions/{session_id}", native.show_session, methods=["GET"]),
        Route("/v1/sessions/{session_id}", native.delete_session, methods=["DELETE"]),
    ], middleware=_middleware(config, metrics, json_log, token),
        exception_handlers={HttpProblem: _problem},
        lifespan=_lifespan(config, metrics, provider))
    return app


def _middleware(config: Config, metrics: Metrics, json_log: bool,
                token: str | None) -> list[Middleware]:
    layers = [Middleware(AccessLog, metrics=metrics, as_json=json_log)]
    if config.serve.cors_origins:
        layers.append(Middleware(
            CORSMiddleware, allow_origins=list(config.serve.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", SESSION_HEADER],
            expose_headers=[SESSION_HEADER]))
    layers.append(Middleware(Gate, token=token, max_body_bytes=config.serve.max_body_bytes))
    return layers


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpProblem)
    server = getattr(request.app.state, "server", None)
    if server is not None and exc.code is not None:
        server.metrics.error(exc.code)
    return exc.response()


def _lifespan(config: Config, metrics: Metrics, provider: ResolvedProvider | None
              ) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from routing_runner.runtime.graph import build_graph
        from routing_runner.runtime.turns import TurnRunner

        graph = build_graph(config, provider or resolve_provider(config, os.environ))
        store = open_store(config.session)
        try:
            await graph.start()  # its MCP servers, once per worker
            await store.check()
            service = TurnService(config, TurnRunner(graph), store, metrics)
            app.state.server = Server(config, store, service, metrics)
            yield
            await service.drain(config.serve.shutdown_grace)
        finally:
            await _closing(store.close(), graph.aclose())

    return lifespan


async def _closing(*closes: Awaitable[Any]) -> None:
    """Await every close, even when an earlier one fails."""
    errors = []
    for close in closes:
        try:
            await close
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
