"""Tools over the wire: the loopback server scripts the model's tool calls, the CLI runs them.

The real `openai` client and Agents SDK talk HTTP to the loopback server; the tool is a real
Python function (or a real MCP server process) declared in the config.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Text, ToolCall, WireServer

from .conftest import write_config

pytestmark = pytest.mark.usefixtures("api_key")

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


def tools_config(folder: Path, server: WireServer, api: str = "responses",
                 provider: str = "openai") -> Path:
    (folder / "tools").mkdir(exist_ok=True)
    # A module name of its own: the example config's `orders` may be imported in this process.
    (folder / "tools" / "wire_orders.py").write_text(ORDERS, encoding="utf-8")
    (folder / "tools" / "orders_mcp.py").write_text(MCP_SERVER, encoding="utf-8")
    return write_config(folder, f"""
entry: orders
model: {{provider: {provider}, name: gpt-test, base_url: "{server.base_url}", api: {api}}}
session: {{path: {folder / 'sessions.db'}}}
python_path: [tools]
tools:
  lookup_order:
    function: wire_orders:lookup_order
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
        return [_text(i["output"]) for i in body["input"]
                if i.get("type") == "function_call_output"]
    return [_text(m["content"]) for m in body["messages"] if m.get("role") == "tool"]


def _text(content: Any) -> str:
    return content if isinstance(content, str) else "".join(p["text"] for p in content)


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


HTTP_SERVER = '''
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("stock")


@server.tool()
def stock_level(sku: str) -> str:
    """How many of an article are in stock."""
    return f"{sku}: 7 in stock"


mcp_app = server.streamable_http_app()


async def app(scope, receive, send):
    # The config's header (with its ${VAR} filled in) must arrive with every request.
    if scope["type"] == "http" and (b"authorization", b"Bearer s3cret") not in scope["headers"]:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"no token"})
        return
    await mcp_app(scope, receive, send)


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
'''


@pytest.fixture
def http_mcp(tmp_path: Path) -> Iterator[str]:
    """A streamable HTTP MCP server on a loopback port; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = tmp_path / "stock_server.py"
    script.write_text(HTTP_SERVER, encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(script), str(port)])
    try:
        while True:  # until it listens (a server that dies fails the connection below)
            assert process.poll() is None, "the MCP server exited"
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_streamable_http_mcp_servers_tool_runs_with_the_configured_headers(
        cli: CliRunner, tmp_path: Path, server: WireServer, http_mcp: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCK_TOKEN", "s3cret")
    config = write_config(tmp_path, f"""
entry: bot
model: {{provider: openai, name: gpt-test, base_url: "{server.base_url}", api: chat_completions}}
session: {{path: {tmp_path / 'sessions.db'}}}
tools:
  stock:
    mcp:
      url: {http_mcp}
      headers: {{Authorization: "Bearer ${{STOCK_TOKEN}}"}}
agents:
  bot: {{instructions: Answer., tools: [stock]}}
""")
    server.script(ToolCall("stock_level", {"sku": "X9"}), Text("Seven left."))
    result = cli.invoke(app, ["chat", str(config), "-m", "Any X9 left?"])
    assert result.exit_code == 0, result.output
    assert '  [tool] stock_level {"sku":"X9"} -> X9: 7 in stock\n' in result.stdout
    assert _tool_outputs(server.requests[1].body) == ["X9: 7 in stock"]


def test_a_hosted_tool_is_sent_to_the_responses_api(cli: CliRunner, tmp_path: Path,
                                                    server: WireServer) -> None:
    config = write_config(tmp_path, f"""
entry: bot
model: {{provider: openai, name: gpt-test, base_url: "{server.base_url}"}}
session: {{path: {tmp_path / 'sessions.db'}}}
tools:
  web: {{hosted: web_search, search_context_size: low}}
  files: {{hosted: file_search, vector_store_ids: [vs_1], max_num_results: 3}}
agents:
  bot: {{instructions: Answer., tools: [web, files]}}
""")
    server.script(Text("Sunny."))
    result = cli.invoke(app, ["chat", str(config), "-m", "Weather?"])
    assert result.exit_code == 0, result.output
    tools = server.requests[0].body["tools"]
    assert {"type": "web_search", "search_context_size": "low"}.items() <= tools[0].items()
    assert tools[1]["type"] == "file_search" and tools[1]["vector_store_ids"] == ["vs_1"]
    assert tools[1]["max_num_results"] == 3


def test_sessions_show_includes_the_tool_calls_as_chat_showed_them(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    config = tools_config(tmp_path, server)
    server.script(ToolCall("lookup_order", {"order_id": "A1"}), Text("Shipped."))
    assert cli.invoke(app, ["chat", str(config), "-s", "shown", "-m", "A1?"]).exit_code == 0
    shown = cli.invoke(app, ["sessions", "show", str(config), "shown"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[1:] == [
        '  [tool] lookup_order {"order_id":"A1"} -> order A1: shipped on 2026-11-30',
        "orders: Shipped."]


DYING_SERVER = '''
import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("inventory")


@server.tool()
def stock_level(sku: str) -> str:
    """How many are in stock."""
    sys.stderr.write("fatal: inventory connection lost\\n")
    sys.stderr.flush()
    os._exit(1)


if __name__ == "__main__":
    server.run("stdio")
'''


def test_an_mcp_server_dying_mid_turn_fails_the_turn_in_one_line_and_rolls_it_back(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    (tmp_path / "inventory.py").write_text(DYING_SERVER, encoding="utf-8")
    config = write_config(tmp_path, f"""
entry: bot
model: {{provider: openai, name: gpt-test, base_url: "{server.base_url}"}}
session: {{path: {tmp_path / 'sessions.db'}}}
tools:
  inventory:
    mcp: {{command: [python, inventory.py]}}
agents:
  bot: {{instructions: Answer., tools: [inventory]}}
""")
    server.script(ToolCall("stock_level", {"sku": "X9"}))
    result = cli.invoke(app, ["chat", str(config), "-s", "dies", "-m", "X9?"])
    assert result.exit_code == 3
    assert f"  [error] {config}:6:3: tools.inventory: the MCP server stopped answering " \
        in result.stdout
    assert result.stdout.rstrip().endswith("its stderr ends: fatal: inventory connection lost")
    with sqlite3.connect(tmp_path / "sessions.db") as conn:
        stored = [json.loads(r[0]) for r in conn.execute(
            "SELECT message_data FROM agent_messages WHERE session_id = 'dies'")]
    assert stored == [{"role": "user", "content": "X9?"}]


ENV_SERVER = '''
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("env")


@server.tool()
def environment(name: str) -> str:
    """A variable of the server's environment."""
    return os.environ.get(name, "<unset>")


if __name__ == "__main__":
    server.run("stdio")
'''


def test_a_stdio_server_gets_its_env_but_not_the_runners_api_key(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    (tmp_path / "env_server.py").write_text(ENV_SERVER, encoding="utf-8")
    config = write_config(tmp_path, f"""
entry: bot
model: {{provider: openai, name: gpt-test, base_url: "{server.base_url}"}}
session: {{path: {tmp_path / 'sessions.db'}}}
tools:
  env:
    mcp: {{command: [python, env_server.py], env: {{REGION: eu-west}}}}
agents:
  bot: {{instructions: Answer., tools: [env]}}
""")
    server.script(ToolCall("environment", {"name": "OPENAI_API_KEY"}),
                  ToolCall("environment", {"name": "REGION"}), Text("Done."))
    result = cli.invoke(app, ["chat", str(config), "-m", "env?"])
    assert result.exit_code == 0, result.output
    assert _tool_outputs(server.requests[1].body) == ["<unset>"]
    assert _tool_outputs(server.requests[2].body)[-1] == "eu-west"
