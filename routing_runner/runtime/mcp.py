"""MCP servers of the config's `tools:`: built, started before the first turn, stopped on exit.

One server per tool entry and process, shared by every agent that lists it. `McpPool.start`
connects them all (a server that does not start is one line naming the tool entry and the tail
of what it wrote to stderr); `stop` ends them, and the graph's owner calls it however the run
ends - a normal exit, Ctrl-C, SIGTERM, a replay worker stopping - so no server process is left
behind. A transcript's `mocks:` answer in place of a server's tool (`runtime.tools.mocked_answer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from typing import IO, Any

from agents.mcp import (
    MCPServer,
    MCPServerStdio,
    MCPServerStreamableHttp,
    create_static_tool_filter,
)
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from routing_runner.config.model import Config
from routing_runner.config.tools import PYTHON_NAMES, McpToolConfig, ToolConfig
from routing_runner.errors import RunFailure

from .retries import error_chain
from .tools import mocked_answer

STDERR_TAIL = 300


class McpStartError(RunFailure):
    """An MCP server did not start or stopped answering."""


class _Mocked:
    """Answers a mocked tool's call itself; every other call goes to the server."""

    async def call_tool(self, tool_name: str, arguments: dict[str, Any] | None,
                        meta: dict[str, Any] | None = None) -> CallToolResult:
        from agents import RunContextWrapper

        canned = mocked_answer(tool_name, RunContextWrapper(context=None))
        if canned is not None:
            return CallToolResult(content=[TextContent(type="text", text=canned)])
        result: CallToolResult = await super().call_tool(  # type: ignore[misc]
            tool_name, arguments, meta)
        return result


class _Stdio(_Mocked, MCPServerStdio):
    """A stdio server whose stderr goes to a file, so a failure can show its tail."""

    errlog: IO[str] | None = None

    def create_streams(self) -> Any:
        self.errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        return stdio_client(self.params, errlog=self.errlog)

    def stderr_tail(self) -> str:
        if self.errlog is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self.errlog.seek(0)
            text = " ".join(self.errlog.read().split())
            return text[-STDERR_TAIL:]
        return ""


class _Http(_Mocked, MCPServerStreamableHttp):
    """A streamable HTTP server."""


def _server(entry: ToolConfig, spec: McpToolConfig) -> MCPServer:
    tool_filter = None
    if spec.allowed_tools is not None or spec.blocked_tools is not None:
        tool_filter = create_static_tool_filter(
            allowed_tool_names=list(spec.allowed_tools) if spec.allowed_tools else None,
            blocked_tool_names=list(spec.blocked_tools) if spec.blocked_tools else None)
    common: dict[str, Any] = {
        "name": entry.name, "cache_tools_list": spec.cache_tools_list,
        "client_session_timeout_seconds": spec.timeout, "tool_filter": tool_filter}
    if spec.url is not None:
        return _Http(params={"url": spec.url, "headers": dict(spec.headers),
                             "timeout": spec.timeout}, **common)
    # The mcp client adds only a few safe variables (PATH, HOME, ...) to these: the server
    # does not see the runner's environment, where the model's API key is.
    env = dict(spec.env)
    program = sys.executable if spec.command[0] in PYTHON_NAMES else spec.command[0]
    params: dict[str, Any] = {"command": program, "args": list(spec.command[1:]), "env": env}
    if spec.cwd is not None:
        params["cwd"] = str(spec.cwd)
    return _Stdio(params=params, **common)  # type: ignore[arg-type]


class McpPool:
    """MCP servers by what they run: one per distinct tool entry, shared by every graph built
    on this pool (a replay's conversations share the servers of their process)."""

    def __init__(self) -> None:
        self.entries: dict[str, ToolConfig] = {}
        self.servers: dict[str, MCPServer] = {}
        self.started: list[MCPServer] = []
        self._starting = asyncio.Lock()

    def add(self, config: Config) -> dict[str, MCPServer]:
        """The servers of `config`'s MCP entries by entry name, new ones added to the pool."""
        found = {}
        for name, entry in config.tools.items():
            if isinstance(entry.spec, McpToolConfig):
                key = f"{name}\0{entry.spec!r}"
                if key not in self.servers:
                    self.entries[key] = entry
                    self.servers[key] = _server(entry, entry.spec)
                found[name] = self.servers[key]
        return found

    def __bool__(self) -> bool:
        return bool(self.servers)

    async def start(self) -> None:
        """Connect every server not yet connected; McpStartError for the first that fails."""
        async with self._starting:  # conversations starting at once connect each server once
            for key, server in self.servers.items():
                if server in self.started:
                    continue
                spec = self.entries[key].spec
                assert isinstance(spec, McpToolConfig)
                self.started.append(server)  # stopped even when connecting fails half-way
                try:
                    await asyncio.wait_for(server.connect(),  # type: ignore[no-untyped-call]
                                           spec.timeout)
                except (Exception, TimeoutError) as exc:
                    failure = self._failure(self.entries[key], server, exc)
                    await self._drop(key, server)  # the next graph tries a new one
                    raise McpStartError(failure) from None

    async def _drop(self, key: str, server: MCPServer) -> None:
        self.started.remove(server)
        await _stop(server)
        del self.servers[key], self.entries[key]

    @staticmethod
    def _failure(entry: ToolConfig, server: MCPServer, exc: BaseException) -> str:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]  # the transport's task group wraps the real failure
        what = "did not start within its timeout" if isinstance(exc, TimeoutError) \
            else f"failed to start: {exc}"
        tail = server.stderr_tail() if isinstance(server, _Stdio) else ""
        stderr = f"; its stderr ends: {tail}" if tail else ""
        return f"{entry.where}: tools.{entry.name}: MCP server {what}{stderr}"

    def explain(self, error: BaseException) -> str | None:
        """One line for a turn that failed because an MCP server stopped answering, naming
        the tool entry (and the end of its stderr); None when `error` is not an MCP failure."""
        if not any(type(e).__module__.split(".")[0] == "mcp" for e in error_chain(error)):
            return None
        tails = {key: server.stderr_tail() if isinstance(server, _Stdio) else ""
                 for key, server in self.servers.items() if server in self.started}
        if not tails:
            return None
        # The server that wrote to its stderr is the likely one to have died.
        key = max(tails, key=lambda k: bool(tails[k]))
        entry, tail = self.entries[key], tails[key]
        stderr = f"; its stderr ends: {tail}" if tail else ""
        return (f"{entry.where}: tools.{entry.name}: the MCP server stopped answering "
                f"({error}){stderr}")

    async def stop(self) -> None:
        """Stop every started server (their processes end); never raises."""
        started, self.started = self.started, []
        for server in reversed(started):
            await _stop(server)
        # A stopped server cannot be connected again: the next start builds new ones.
        self.servers.clear()
        self.entries.clear()


async def _stop(server: MCPServer) -> None:
    """End a server (its process, for stdio); never raises."""
    with contextlib.suppress(Exception):
        await server.cleanup()  # type: ignore[no-untyped-call]
    if isinstance(server, _Stdio) and server.errlog is not None:
        server.errlog.close()
