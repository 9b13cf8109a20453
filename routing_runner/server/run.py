"""Running the app under uvicorn: one process, or a supervisor and `workers` processes.

Every worker builds the app from the environment (`app.from_environment`), so one and many
workers start the same way. uvicorn handles SIGTERM: it stops accepting connections, lets
running requests finish for `serve.shutdown_grace` seconds and then cancels them (their turns
roll back); the app's lifespan then waits for those rollbacks before closing the store.
"""

from __future__ import annotations

import math
import os
import signal
from dataclasses import dataclass
from typing import Any

from routing_runner.config.model import Config

from .app import ENVIRONMENT_VARIABLE, Launch


@dataclass(frozen=True)
class Listen:
    """Where and how many: the `serve:` block with the command's flags applied."""

    host: str
    port: int
    workers: int

    @classmethod
    def of(cls, config: Config, host: str | None, port: int | None,
           workers: int | None) -> Listen:
        """The block's values, each overridden by its flag when given."""
        serve = config.serve
        return cls(host or serve.host, port or serve.port, workers or serve.workers)

    @property
    def url(self) -> str:
        """The base URL clients use."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _logging(json_log: bool) -> dict[str, Any]:
    """uvicorn's logging: our access lines as they are, its own warnings and errors only."""
    plain = {"format": "%(message)s"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": plain,
                       "server": {"format": "serve: %(levelname)s: %(message)s"}},
        "handlers": {
            "access": {"class": "logging.StreamHandler", "formatter": "plain",
                       "stream": "ext://sys.stderr"},
            "server": {"class": "logging.StreamHandler", "formatter": "server",
                       "stream": "ext://sys.stderr"}},
        "loggers": {
            "routing_runner.server.access": {"handlers": ["access"], "level": "INFO",
                                             "propagate": False},
            "uvicorn": {"handlers": ["server"], "level": "WARNING", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False}},
    }


def serve(config: Config, launch: Launch, listen: Listen) -> None:
    """Serve until SIGTERM or SIGINT; returns once every worker has stopped."""
    import uvicorn

    os.environ[ENVIRONMENT_VARIABLE] = launch.to_environment()
    # uvicorn raises the signal that stopped it again once it has shut down, to die of it;
    # after a clean shutdown on SIGTERM, `serve` exits 0 instead (Ctrl-C still ends it 130).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    uvicorn.run("routing_runner.server.app:from_environment", factory=True,
                host=listen.host, port=listen.port, workers=listen.workers,
                timeout_graceful_shutdown=math.ceil(config.serve.shutdown_grace),
                log_config=_logging(launch.json_log), access_log=False, lifespan="on",
                server_header=False, proxy_headers=False)
