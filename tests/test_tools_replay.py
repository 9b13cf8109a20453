"""Tools in transcripts: `mocks:` answer in place of the real tool, `expect.tools` checks the
calls, and the JSON and JUnit reports list each turn's tool calls - through `replay`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Text, ToolCall, WireServer

from .test_tools_wire import _tool_outputs, tools_config

pytestmark = pytest.mark.usefixtures("api_key")


def _transcript(folder: Path, text: str) -> Path:
    path = folder / "orders.yaml"
    path.write_text(text, encoding="utf-8")
    return path


MOCKED = """
name: mocked order
mocks:
  lookup_order: {results: [{status: lost}, second]}
  track_parcel: {error: depot closed}
turns:
  - user: Where is A1?
    expect:
      tools: [{name: lookup_order, args: {order_id: A1}}]
  - user: And the parcel?
    mocks:
      lookup_order: {result: turn only}
    expect:
      tools: {calls: [track_parcel, lookup_order, lookup_order], order: exact}
      contains: depot
"""


def test_mocks_answer_in_place_of_the_tools_in_order_and_per_turn(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    (tmp_path / "tools").mkdir()
    config = tools_config(tmp_path, server)
    # The real function would say "shipped": every answer the model gets is canned.
    server.script(ToolCall("lookup_order", {"order_id": "A1"}), Text("It is lost."),
                  ToolCall("track_parcel", {"order_id": "A1"}),
                  ToolCall("lookup_order", {"order_id": "A1"}),
                  ToolCall("lookup_order", {"order_id": "A2"}), Text("The depot is closed."))
    report = tmp_path / "report.json"
    junit = tmp_path / "report.xml"
    result = cli.invoke(app, ["replay", str(config), str(_transcript(tmp_path, MOCKED)),
                              "--json", str(report), "--junit", str(junit)])
    assert result.exit_code == 0, result.output
    outputs = [_tool_outputs(r.body) for r in server.requests]
    assert outputs[1] == ['{"status": "lost"}']
    assert "error occurred" in outputs[3][-1]
    # The turn's own mock answers its lookups; the transcript's list is not advanced.
    assert outputs[5][-2:] == ["turn only", "turn only"]
    turns = json.loads(report.read_text())["conversations"][0]["turns"]
    assert [c["name"] for c in turns[1]["observed"]["tools"]] == \
        ["track_parcel", "lookup_order", "lookup_order"]
    assert turns[0]["observed"]["tools"][0] == {
        "agent": "orders", "name": "lookup_order", "arguments": '{"order_id":"A1"}',
        "output": '{"status": "lost"}'}
    out = ET.parse(junit).getroot().find("testsuite/testcase/system-out")
    assert out is not None and out.text is not None
    assert out.text.splitlines()[0] == \
        'turn 1:  [tool] lookup_order {"order_id":"A1"} -> {"status": "lost"}'


def test_a_tool_expectation_that_fails_shows_expected_and_observed_calls(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    config = tools_config(tmp_path, server)
    server.script(ToolCall("lookup_order", {"order_id": "B2"}), Text("Shipped."))
    transcript = _transcript(tmp_path, """
name: wrong order
mocks: {lookup_order: {result: shipped}}
turns:
  - user: Where is A1?
    expect:
      tools: {calls: [{name: lookup_order, args: {order_id: A1}}], not_called: [track_parcel]}
""")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 1, result.output
    assert 'lookup_order {"order_id": "A1"}' in result.stdout
    assert 'lookup_order {"order_id":"B2"}' in result.stdout


def test_mocks_and_expected_tools_must_name_tools_of_the_config(
        cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "typo_orders.py").write_text(
        "def lookup_order(order_id: str) -> str:\n    return order_id\n", encoding="utf-8")
    config = tmp_path / "bot.yaml"
    config.write_text("entry: a\npython_path: [tools]\n"
                      "tools: {lookup_order: {function: 'typo_orders:lookup_order'}}\n"
                      "agents: {a: {instructions: x, tools: [lookup_order]}}\n", encoding="utf-8")
    transcript = _transcript(tmp_path, """
name: typo
mocks: {lookup_ordr: {result: x}}
turns:
  - user: hi
    expect: {tools: [refund]}
""")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 2
    assert f"{transcript}:3:9: mocks.lookup_ordr: 'lookup_ordr' is not a tool of {config} " \
           "(did you mean 'lookup_order'?)" in result.stderr
    assert f"{transcript}:6:14: turns[0].expect.tools: 'refund' is not a tool of {config} " \
           "(its tools: lookup_order)" in result.stderr


def test_a_transcript_override_naming_a_missing_function_fails_that_conversation(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    config = tools_config(tmp_path, server)
    transcript = _transcript(tmp_path, """
name: override
config: {tools: {lookup_order: {function: "wire_orders:no_such_function"}}}
turns:
  - user: A1?
    expect: {agent: orders}
""")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 3, result.output
    assert f"{transcript}:3:18: tools.lookup_order.function: module 'wire_orders' has no " \
        "attribute 'no_such_function'" in result.stdout
    assert server.requests == []
