"""`routing-runner serve`: the bot over HTTP until SIGTERM or Ctrl-C.

Everything a user can get wrong - the config, the model provider, the store's URL or server -
is checked here first and said in one line; then uvicorn takes over (`server.run`).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from routing_runner.errors import UserInputError
from routing_runner.wording import count, inert

from .common import ConfigArg, load

if TYPE_CHECKING:
    from routing_runner.stores.base import SessionStore

Host = Annotated[str | None, typer.Option("--host", help="Address to listen on "
                                          "(serve.host; default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option("--port", "-p", min=1, max=65535,
                                          help="Port (serve.port; default 8000).")]
Workers = Annotated[int | None, typer.Option("--workers", "-w", min=1, max=256,
                                             help="Worker processes (serve.workers; default "
                                                  "1); any worker answers any conversation.")]
LogFormat = Annotated[str, typer.Option("--log-format", help="Access log lines on stderr: "
                                        "text or json.")]


def serve(config: ConfigArg, host: Host = None, port: Port = None, workers: Workers = None,
          log_format: LogFormat = "text") -> None:
    """Serve the bot over HTTP: OpenAI-compatible /v1 endpoints and a web chat page at /."""
    from routing_runner.runtime.providers import resolve_provider
    from routing_runner.server.app import Launch
    from routing_runner.server.run import Listen
    from routing_runner.server.run import serve as run_server
    from routing_runner.stores import open_store

    if log_format not in ("text", "json"):
        raise UserInputError(f"--log-format {log_format!r}: use text or json")
    cfg = load(config, imports=True).config
    provider = resolve_provider(cfg, os.environ)
    store = open_store(cfg.session)
    asyncio.run(_checked(store))
    token_env = cfg.serve.auth_token_env
    if token_env and not os.environ.get(token_env):
        raise UserInputError(f"serve.auth_token_env names {token_env}, which is not set; "
                             f"export {token_env}=<a long random token>")
    listen = Listen.of(cfg, host, port, workers)
    auth: Literal["bearer token", "no auth"] = "bearer token" if token_env else "no auth"
    typer.echo(inert(f"{cfg.title} - {config}"), err=True)
    typer.echo(f"model: {inert(provider.label)}", err=True)
    typer.echo(inert(f"store: {store.description}"), err=True)
    typer.echo(f"listening on {listen.url} ({count(listen.workers, 'worker')}, {auth}): "
               f"OpenAI API at {listen.url}/v1, web chat at {listen.url}/", err=True)
    run_server(cfg, Launch(str(config.resolve()), log_format == "json"), listen)


async def _checked(store: SessionStore) -> None:
    """Reach the store now: an unreachable server is one line before anything listens."""
    try:
        await store.check()
    finally:
        await store.close()
