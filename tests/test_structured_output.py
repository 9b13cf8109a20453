"""Structured output: an agent's `output_schema`, offline and over the wire, checked by replay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.runtime.offline.answers import example
from routing_runner_testing.wire_server import Text, ToolCall, WireServer

from .conftest import write_config

ORDER_SCHEMA = (
    "    output_schema:\n"
    "      type: object\n"
    "      properties:\n"
    "        order_id: {type: string, examples: [A1]}\n"
    "        status: {enum: [shipped, pending]}\n"
    "        items: {type: integer, minimum: 1}\n"
    "        note: {type: string, maxLength: 12}\n"
    "      required: [order_id, status]\n")


def _offline_config(folder: Path) -> Path:
    return write_config(folder, (
        "entry: triage\nsession: {backend: memory}\nagents:\n"
        "  triage: {instructions: Route., handoffs: [orders, spanish]}\n"
        "  spanish: {language: es, instructions: Responde., handoffs: [triage]}\n"
        "  orders:\n    language: en\n    instructions: Say the order status.\n"
        + ORDER_SCHEMA))


def test_replay_checks_the_offline_json_answer_as_a_subset_and_by_pointer(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _offline_config(tmp_path)
    transcript = tmp_path / "t.yaml"
    transcript.write_text(
        "name: structured\nturns:\n"
        "  - user: Where is my order A1, please?\n"
        "    expect:\n      route: [triage, orders]\n"
        "      json: {order_id: A1, status: shipped, /items: 1, /note: Where is my}\n"
        "  - user: And the one after?\n"
        "    expect:\n      json: {status: pending, /items: 2, /gift/wrap: true}\n",
        encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 1, result.output
    assert "  turn 2 (" in result.stdout and "  turn 1 (" not in result.stdout
    assert "\n".join([
        '  - json: {"status": "pending"}',
        '  + json: /status is "shipped"',
        "  - json: /items = 2",
        "  + json: /items is 1",
        "  - json: /gift/wrap = true",
        "  + json: /gift/wrap is missing",
        "    agent: orders"]) in result.stdout
    report = tmp_path / "r.json"
    assert cli.invoke(app, ["replay", str(config), str(transcript), "--json", str(report)]
                      ).exit_code == 1
    first = json.loads(report.read_text())["conversations"][0]["turns"][0]
    assert first["observed"]["output"] == {"order_id": "A1", "status": "shipped", "items": 1,
                                           "note": "Where is my"}


def test_a_json_expectation_on_a_text_answer_says_there_was_no_json(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _offline_config(tmp_path)
    transcript = tmp_path / "t.yaml"
    transcript.write_text("name: text\nturns:\n  - user: Hola, ¿qué tal?\n"
                          "    expect: {agent: spanish, json: {/status: shipped}}\n",
                          encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 1
    assert '  - json: /status = "shipped"\n  + json: no JSON answer (the agent answered ' \
           'text: "[offline model]' in result.stdout


def test_chat_prints_the_json_answer_pretty_not_streamed(cli: CliRunner, tmp_path: Path) -> None:
    config = _offline_config(tmp_path)
    result = cli.invoke(app, ["chat", str(config), "-m", "Where is my order?"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "  [handoff] triage -> orders", "orders:", "{", '  "order_id": "A1",',
        '  "status": "shipped",', '  "items": 1,', '  "note": "Where is my"', "}"]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[WireServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with WireServer() as wire:
        yield wire


def _wire_config(folder: Path, server: WireServer, api: str) -> Path:
    return write_config(folder, (
        f"entry: triage\nmodel: {{provider: openai, name: gpt-test, api: {api}, "
        f"base_url: '{server.base_url}'}}\nsession: {{path: {folder / 's.db'}}}\nagents:\n"
        "  triage: {instructions: Route., handoffs: [orders]}\n"
        "  orders:\n    instructions: Say the order status.\n" + ORDER_SCHEMA))


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_over_the_wire_the_schema_is_asked_for_and_the_answer_validated(
        cli: CliRunner, tmp_path: Path, server: WireServer, api: str) -> None:
    answer = {"order_id": "A1", "status": "pending", "items": 3}
    server.script(ToolCall("transfer_to_orders"), Text(json.dumps(answer), chunk_size=5))
    config = _wire_config(tmp_path, server, api)
    transcript = tmp_path / "t.yaml"
    transcript.write_text("name: wire\nturns:\n  - user: Where is A1?\n"
                          "    expect: {route: [triage, orders], json: {/status: pending, "
                          "items: 3}}\n", encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 0, result.output
    first, second = server.requests
    if api == "responses":
        assert "text" not in first.body or "format" not in first.body.get("text", {})
        asked = second.body["text"]["format"]
        assert (asked["type"], asked["strict"]) == ("json_schema", False)
    else:
        asked = second.body["response_format"]["json_schema"]
        assert asked["strict"] is False
    assert asked["schema"]["properties"]["status"] == {"enum": ["shipped", "pending"]}


def test_an_answer_that_breaks_the_schema_fails_the_turn_in_one_line(
        cli: CliRunner, tmp_path: Path, server: WireServer) -> None:
    server.script(ToolCall("transfer_to_orders"), Text('{"order_id": "A1", "status": "lost"}'))
    config = _wire_config(tmp_path, server, "responses")
    result = cli.invoke(app, ["chat", str(config), "-s", "bad", "-m", "Where is A1?"])
    assert result.exit_code == 3
    assert result.stdout.splitlines()[-1] == (
        "  [error] the model answered something the runner cannot use: the answer does not "
        "follow output_schema at /status: 'lost' is not one of ['shipped', 'pending']")


SCHEMAS = [
    {"type": "object", "properties": {"a": {"type": "string", "minLength": 40}}},
    {"type": "object", "properties": {
        "n": {"type": "number", "exclusiveMinimum": 2, "multipleOf": 3},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "kind": {"anyOf": [{"type": "null"}, {"const": "x"}]},
        "ref": {"$ref": "#/$defs/point"}},
     "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}},
                         "required": ["x"], "additionalProperties": False}}},
    {"type": "object", "allOf": [{"properties": {"a": {"type": "boolean"}}},
                                 {"properties": {"b": {"type": ["null", "integer"]}}}],
     "required": ["a", "b"]},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_offline_answer_follows_the_schema(schema: dict[str, object]) -> None:
    value = example(schema, "Where is my order?")
    assert list(Draft202012Validator(schema).iter_errors(value)) == []
    assert example(schema, "Where is my order?") == value  # deterministic


def test_an_output_schema_file_is_json_or_yaml_beside_the_config(
        cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "answer.yaml").write_text(
        "type: object\nproperties:\n  ok: {const: true}\n", encoding="utf-8")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    good = write_config(tmp_path, "entry: a\nsession: {backend: memory}\nagents:\n"
                        "  a: {instructions: Hi., output_schema_file: schemas/answer.yaml}\n")
    result = cli.invoke(app, ["chat", str(good), "-m", "Hello"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["a:", "{", '  "ok": true', "}"]
    bad = write_config(tmp_path, "entry: a\nagents:\n"
                       "  a: {instructions: Hi., output_schema_file: broken.json}\n", "bad.yaml")
    result = cli.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{bad}:3:46: agents.a.output_schema_file: file 'broken.json' is not valid JSON or "
        "YAML: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")
