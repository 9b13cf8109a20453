"""The config's `tools:` as SDK tools: function tools, hosted tools, and canned (mocked) results.

A function tool is the SDK's own (`function_tool`: name, docstring, JSON schema from the
signature); it is wrapped once more so that a transcript's `mocks:` can answer in its place
(`mocking`). A failing function reaches the model as the SDK's error output, not as a crash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from agents import (
    CodeInterpreterTool,
    FileSearchTool,
    FunctionTool,
    RunContextWrapper,
    Tool,
    WebSearchTool,
    function_tool,
)
from agents.tool import default_tool_error_function
from agents.tool_context import ToolContext

from routing_runner.config.imports import ImportFailed, import_callable
from routing_runner.config.model import Config
from routing_runner.config.tools import FunctionToolConfig, HostedToolConfig, ToolMock
from routing_runner.errors import UserInputError


@dataclass
class ToolMocks:
    """Canned tool results (a transcript's or a turn's), and how many of each were used."""

    mocks: Mapping[str, ToolMock]
    used: dict[str, int] = field(default_factory=dict)

    def answer(self, tool: str, context: RunContextWrapper[Any]) -> str | None:
        """The next canned result of `tool` (its error output for an error), None if unmocked."""
        mock = self.mocks.get(tool)
        if mock is None:
            return None
        index = self.used.get(tool, 0)
        self.used[tool] = index + 1
        if mock.error is not None:
            return default_tool_error_function(context, RuntimeError(mock.error))
        # The last result answers every call after the list runs out.
        return mock.results[min(index, len(mock.results) - 1)]


_active: ContextVar[tuple[ToolMocks, ...]] = ContextVar("routing_runner_tool_mocks", default=())


@contextlib.contextmanager
def mocking(*layers: ToolMocks) -> Iterator[None]:
    """Within this block, runs answer a mocked tool's calls from the first layer mocking it.

    The SDK copies the context into the tasks of a run, so the run must start in the block.
    """
    token = _active.set(tuple(layer for layer in layers if layer.mocks))
    try:
        yield
    finally:
        _active.reset(token)


def mocked_answer(tool: str, context: RunContextWrapper[Any]) -> str | None:
    """The canned result for a call of `tool`, when a transcript mocks it; else None."""
    for layer in _active.get():
        if tool in layer.mocks:
            return layer.answer(tool, context)
    return None


def _function_tool(spec: FunctionToolConfig, config: Config) -> FunctionTool:
    real = function_tool(import_callable(spec, config),
                         name_override=spec.tool_name, description_override=spec.description)

    async def invoke(context: ToolContext[Any], arguments: str) -> Any:
        canned = mocked_answer(real.name, context)
        if canned is not None:
            return canned
        return await real.on_invoke_tool(context, arguments)

    return FunctionTool(name=real.name, description=real.description,
                        params_json_schema=real.params_json_schema, on_invoke_tool=invoke,
                        strict_json_schema=real.strict_json_schema,
                        timeout_seconds=spec.timeout)


def _hosted_tool(spec: HostedToolConfig) -> Tool:
    options = dict(spec.options)
    if spec.kind == "web_search":
        return WebSearchTool(**options)
    if spec.kind == "file_search":
        return FileSearchTool(**options)
    container = options.get("container", "auto")
    return CodeInterpreterTool(tool_config={
        "type": "code_interpreter",
        "container": {"type": "auto"} if container == "auto" else container})


def build_tools(config: Config) -> dict[str, Tool]:
    """The SDK tool of every function and hosted entry of `config.tools`, by entry name."""
    built: dict[str, Tool] = {}
    for name, entry in config.tools.items():
        if isinstance(entry.spec, FunctionToolConfig):
            try:
                built[name] = _function_tool(entry.spec, config)
            except ImportFailed as exc:
                # Checked before the first message already; a transcript's `config:` override
                # can still name a path that does not resolve.
                raise UserInputError(f"{entry.where}: tools.{name}.function: {exc}") from None
        elif isinstance(entry.spec, HostedToolConfig):
            built[name] = _hosted_tool(entry.spec)
    return built


