"""What every endpoint reaches through `request.app.state.server`."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from routing_runner.config.model import Config
from routing_runner.stores.base import SessionStore

from .metrics import Metrics
from .requests import SESSION_HEADER, Models
from .service import TurnService


@dataclass
class Server:
    """One worker's config, store, turn service and metrics."""

    config: Config
    store: SessionStore
    service: TurnService
    metrics: Metrics

    @property
    def models(self) -> Models:
        """The model ids this server answers to."""
        return Models(self.config)


def server_of(request: Request) -> Server:
    """The worker serving `request`."""
    server: Server = request.app.state.server
    return server


def session_header(request: Request) -> str | None:
    """The conversation a request names in X-Session-Id (None: a new one)."""
    value = request.headers.get(SESSION_HEADER)
    return value.strip() if value and value.strip() else None
