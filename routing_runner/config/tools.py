"""The `tools:` map and `python_path:`: typed tool entries and the checks of their meaning.

Nothing is imported or started here: `validate` stays fast and safe. A `function:` path is
resolved by `config.imports` (`validate --check-imports`, and `chat`/`replay` before the first
message); an MCP server is started by the runtime. What can be checked without running
anything is checked here: an agent listing an unknown tool, a `python_path` folder outside
the config's folder, an MCP command that is not installed, a hosted tool on an agent whose
model does not speak OpenAI's Responses API.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from routing_runner.errors import Problem
from routing_runner.wording import did_you_mean

from .document import Document

HostedKind = Literal["web_search", "file_search", "code_interpreter"]
DEFAULT_MCP_TIMEOUT = 10.0


@dataclass(frozen=True)
class FunctionToolConfig:
    """A Python callable made into a function tool: `module:attribute`."""

    function: str
    name: str | None = None
    description: str | None = None
    timeout: float | None = None

    @property
    def module(self) -> str:
        """The module to import."""
        return self.function.split(":", 1)[0]

    @property
    def attribute(self) -> str:
        """The (dotted) attribute of the module that is the callable."""
        return self.function.split(":", 1)[1]

    @property
    def tool_name(self) -> str:
        """The name the model calls it by: the configured one, else the attribute's."""
        return self.name or self.attribute.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class McpToolConfig:
    """An MCP server: a command over stdio, or a streamable HTTP URL."""

    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    cwd: Path | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    allowed_tools: tuple[str, ...] | None = None
    blocked_tools: tuple[str, ...] | None = None
    cache_tools_list: bool = False
    timeout: float = DEFAULT_MCP_TIMEOUT


@dataclass(frozen=True)
class HostedToolConfig:
    """A tool OpenAI's servers run (Responses API only), with its options."""

    kind: HostedKind
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ToolConfig:
    """One entry of the `tools:` map; `where` is its `file:line:col`, for errors at run time."""

    name: str
    spec: FunctionToolConfig | McpToolConfig | HostedToolConfig
    where: str = ""


@dataclass(frozen=True)
class ToolMock:
    """Canned results of a tool in a transcript: in order (the last repeats), or an error."""

    results: tuple[str, ...] = ()
    error: str | None = None

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> ToolMock:
        """A schema-valid mock: {result: x}, {results: [x, ...]} or {error: message}."""
        if "error" in raw:
            return cls(error=str(raw["error"]))
        values = raw["results"] if "results" in raw else [raw["result"]]
        return cls(results=tuple(_as_text(v) for v in values))


def _as_text(value: Any) -> str:
    # What the model sees: text as written, anything else (a mapping, a number) as JSON.
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _notes_free(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if not str(k).startswith("x-")}


def build_tools(document: Document, base: Path,
                problems: list[Problem]) -> dict[str, ToolConfig]:
    """The typed `tools:` map of a schema-valid document; its problems go to `problems`."""
    tools: dict[str, ToolConfig] = {}
    for name, raw in _notes_free(document.data.get("tools", {})).items():
        # Through `problem`, which knows a transcript's override from the config's own lines.
        at = document.problem(("tools", name), "", key=True)
        where = f"{at.file}:{at.line}:{at.column}"
        if "function" in raw:
            spec: FunctionToolConfig | McpToolConfig | HostedToolConfig = FunctionToolConfig(
                raw["function"], raw.get("name"), raw.get("description"), raw.get("timeout"))
        elif "mcp" in raw:
            spec = _mcp_config(document, base, name, raw["mcp"], problems)
        else:
            options = {k: v for k, v in _notes_free(raw).items() if k != "hosted"}
            spec = HostedToolConfig(raw["hosted"], MappingProxyType(options))
        tools[name] = ToolConfig(name, spec, where)
    _check_function_names(document, tools, problems)
    return tools


def _mcp_config(document: Document, base: Path, name: str, raw: Mapping[str, Any],
                problems: list[Problem]) -> McpToolConfig:
    where = ("tools", name, "mcp")
    # A server runs in the config's folder unless told otherwise, so `command: [python,
    # tools/server.py]` means the file beside the config wherever the runner is started.
    cwd = (base / raw.get("cwd", ".")).resolve() if "command" in raw else None
    command = tuple(raw.get("command", ()))
    if cwd is not None and not cwd.is_dir():
        problems.append(document.problem((*where, "cwd"), f"folder {str(cwd)!r} not found"))
    if command and not _runnable(command[0], cwd or base):
        problems.append(document.problem(
            (*where, "command", 0),
            f"{document.quote((*where, 'command', 0), command[0])} is not an installed "
            "program (not found on PATH, or not executable); install it or fix the command"))
    allowed, blocked = raw.get("allowed_tools"), raw.get("blocked_tools")
    return McpToolConfig(
        command=command, env=MappingProxyType(dict(raw.get("env", {}))), cwd=cwd,
        url=raw.get("url"), headers=MappingProxyType(dict(raw.get("headers", {}))),
        allowed_tools=None if allowed is None else tuple(allowed),
        blocked_tools=None if blocked is None else tuple(blocked),
        cache_tools_list=raw.get("cache_tools_list", False),
        timeout=raw.get("timeout", DEFAULT_MCP_TIMEOUT))


# `python` in an MCP command means the interpreter running routing-runner: a server written in
# Python finds the `mcp` package there, whether or not a virtual environment is activated.
PYTHON_NAMES = ("python", "python3")


def _runnable(program: str, folder: Path) -> bool:
    if program in PYTHON_NAMES:
        return True
    if os.sep in program:
        candidate = folder / program
        return candidate.is_file() and os.access(candidate, os.X_OK)
    return shutil.which(program) is not None


def _check_function_names(document: Document, tools: Mapping[str, ToolConfig],
                          problems: list[Problem]) -> None:
    seen: dict[str, str] = {}
    for entry in tools.values():
        if not isinstance(entry.spec, FunctionToolConfig):
            continue
        tool_name = entry.spec.tool_name
        if tool_name in seen:
            problems.append(document.problem(
                ("tools", entry.name), f"tools {seen[tool_name]!r} and {entry.name!r} would "
                                       f"both be called {tool_name!r} by the model; give one "
                                       "a 'name'", key=True))
        seen.setdefault(tool_name, entry.name)


def python_path(document: Document, base: Path, problems: list[Problem]) -> tuple[Path, ...]:
    """The `python_path:` folders, absolute; one outside the config's folder is an error."""
    folders = []
    for index, value in enumerate(document.data.get("python_path", [])):
        where = ("python_path", index)
        folder = (base / Path(value).expanduser()).resolve()
        if not Path(value).is_absolute() and not folder.is_relative_to(base):
            problems.append(document.problem(
                where, f"{document.quote(where, value)} is outside the config's folder; a "
                       "relative python_path must stay in it (write an absolute path to "
                       "mean another place)"))
        elif not folder.is_dir():
            problems.append(document.problem(where, f"folder {document.quote(where, value)} "
                                                    "not found next to the config"))
        folders.append(folder)
    return tuple(folders)


def check_agent_tools(document: Document, agent: str, listed: list[str],
                      tools: Mapping[str, ToolConfig], off_responses: str | None,
                      problems: list[Problem]) -> None:
    """An agent's `tools:` list: every name declared, hosted tools only on the Responses API.

    `off_responses` says what the agent's model is when it is not OpenAI's Responses API.
    """
    for index, name in enumerate(listed):
        where = ("agents", agent, "tools", index)
        entry = tools.get(name)
        if entry is None:
            declared = f" (declared: {', '.join(tools)})" if tools else \
                " (the config declares no tools: add a top-level 'tools:' map)"
            problems.append(document.problem(
                where, f"{document.quote(where, name)} is not a tool"
                       f"{did_you_mean(name, tools) or declared}"))
        elif isinstance(entry.spec, HostedToolConfig) and off_responses is not None:
            problems.append(document.problem(
                where, f"hosted tool {entry.spec.kind!r} runs on OpenAI's servers, through the "
                       f"Responses API, but {agent!r} runs on {off_responses}; give the agent "
                       "provider openai (api: responses) or remove the tool from it"))
