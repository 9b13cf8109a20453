"""Tools over the wire: the loopback server scripts the model's tool calls, the CLI runs them.

The real `openai` client and Agents SDK talk HTTP to the loopback server; the tool is a real
Python function (or a real MCP server process) declared in the config.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Text, ToolCall, WireServer

from .conftest import write_config

ORDERS = '''
def lookup_order(order_id: str) -> str:
    """Look up an order by its id."""
    if order_id == "BAD":
        raise ValueError("no such order")
    return f"order {order_id}: shipped on 2026-11-30"
'''

MCP_SERVER = '''
from mcp.server.mcpserver import MCPServer

server = MCPServer("orders")


@server.tool()
def track_parcel(order_id: str) -> str:
    """Where the parcel of an order is."""
    return f"parcel of {order_id}: at the depot"


if __name__ == "__main__":
    server.run("stdio")
'''


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as wire:
        yield wire


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def tools_config(folder: Path, server: WireServer, api: str = "responses",
                 provider: str = "openai") -> Path:
    (folder / "tools").mkdir(exist_ok=True)
    (folder / "tools" / "orders.py").write_text(ORDERS, encoding="utf-8")
    (folder / "tools" / "orders_mcp.py").write_text(MCP_SERVER, encoding="utf-8")
    return write_config(folder, f"""
entry: orders
model: {{provider: {provider}, name: gpt-test, base_url: "{server.base_url}", api: {api}}}
session: {{path: {folder / 'sessions.db'}}}
python_path: [tools]
tools:
  lookup_order:
    function: orders:lookup_order
  parcels:
    mcp:
      command: [{sys.executable}, tools/orders_mcp.py]
agents:
  orders:
    instructions: Answer questions about orders.
    tools: [lookup_order, parcels]
""")


def _tool_outputs(body: dict[str, Any]) -> list[str]:
    """The tool results a request sends back to the model (either API's shape)."""
    if "input" in body:
        return [str(i["output"]) for i in body["input"] if i.get("type") == "function_call_output"]
    return [str(m["content"]) for m in body["messages"] if m.get("role") == "tool"]


def _tool_names(body: dict[str, Any]) -> set[str]:
    return {t.get("name") or t["function"]["name"] for t in body.get("tools", [])}


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_a_function_tool_runs_and_its_result_goes_back_to_the_model(
        cli: CliRunner, tmp_path: Path, server: WireServer, api: str) -> None:
    server.script(ToolCall("lookup_order", {"order_id": "A1"}),
                  Text("Your order A1 shipped on 30 November."))
    result = cli.invoke(app, ["chat", str(tools_config(tmp_path, server, api)), "-m",
                              "Where is my order A1?"])
    assert result.exit_code == 0, result.output
    assert '  [tool] lookup_order {"order_id":"A1"} -> order A1: shipped on 2026-11-30\n' \
        in result.stdout
    assert "orders: Your order A1 shipped on 30 November.\n" in result.stdout
    first, second = server.requests
    assert {"lookup_order", "track_parcel"} <= _tool_names(first.body)
    assert _tool_outputs(second.body) == ["order A1: shipped on 2026-11-30"]
    assert first.path.endswith("/responses" if api == "responses" else "/chat/completions")


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_a_stdio_mcp_servers_tool_runs_and_its_result_goes_back(
        cli: CliRunner, tmp_path: Path, server: WireServer, api: str) -> None:
    server.script(ToolCall("track_parcel", {"order_id": "A1"}), Text("It is at the depot."))
    result = cli.invoke(app, ["chat", str(tools_config(tmp_path, server, api)), "-m",
                              "Where is parcel A1?"])
    assert result.exit_code == 0, result.output
    assert '  [tool] track_parcel {"order_id":"A1"} -> ' in result.stdout
    assert "parcel of A1: at the depot" in _tool_outputs(server.requests[1].body)[0]
    assert "orders: It is at the depot.\n" in result.stdout


def test_a_failing_tool_reaches_the_model_as_an_error_and_the_turn_goes_on(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    server.script(ToolCall("lookup_order", {"order_id": "BAD"}), Text("Sorry, I cannot find it."))
    result = cli.invoke(app, ["chat", str(tools_config(tmp_path, server)), "-m", "order BAD?"])
    assert result.exit_code == 0, result.output
    assert "  [tool] lookup_order" in result.stdout
    assert "error occurred" in _tool_outputs(server.requests[1].body)[0]
    assert "orders: Sorry, I cannot find it.\n" in result.stdout


def test_tool_calls_are_stored_and_go_back_to_the_model_after_a_resume(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    config = tools_config(tmp_path, server)
    server.script(ToolCall("lookup_order", {"order_id": "A1"}), Text("Shipped."), Text("Yes."))
    assert cli.invoke(app, ["chat", str(config), "-s", "t1", "-m", "A1?"]).exit_code == 0
    assert cli.invoke(app, ["chat", str(config), "-s", "t1", "-m", "Sure?"]).exit_code == 0
    assert _tool_outputs(server.requests[2].body) == ["order A1: shipped on 2026-11-30"]
    assert json.dumps("Sure?") in json.dumps(server.requests[2].body)


def test_an_mcp_server_that_dies_at_start_is_one_line_with_its_stderr(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    config = write_config(tmp_path, f"""
entry: bot
model: {{provider: openai, name: gpt-test, base_url: "{server.base_url}"}}
session: {{path: {tmp_path / 'sessions.db'}}}
tools:
  inventory:
    mcp: {{command: [python, -c, "import sys; sys.exit('inventory database unreachable')"]}}
agents:
  bot: {{instructions: Answer., tools: [inventory]}}
""")
    result = cli.invoke(app, ["chat", str(config), "-m", "Is it in stock?"])
    assert result.exit_code == 3
    line = next(x for x in result.stderr.splitlines() if x.startswith("error: "))
    assert line.startswith(f"error: {config}:6:3: tools.inventory: MCP server failed to start: ")
    assert line.endswith("its stderr ends: inventory database unreachable")
    assert server.requests == []  # nothing reached the model
    assert "Traceback" not in result.output
