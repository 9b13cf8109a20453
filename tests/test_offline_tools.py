"""The offline model's tool rule (runtime/offline/tool_use.py), through `chat` and `replay`.

It calls a tool the latest message names (`lookup_order` or `lookup order`), once per turn,
with arguments from `name=value` pairs or else the message's id-like words, then answers
quoting the tool's output. Routing by language comes first; hosted tools are never called.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from routing_runner.cli import app

from .conftest import REPO, write_config

TOOLS = '''
def lookup_order(order_id: str, carrier: str = "any") -> str:
    """Look up an order."""
    return f"order {order_id} via {carrier}: shipped"


def refund(order_id: str, amount: str) -> str:
    """Refund (part of) an order."""
    return f"refunded {amount} on {order_id}"
'''


def _config(folder: Path) -> Path:
    (folder / "offline_tools.py").write_text(TOOLS, encoding="utf-8")
    return write_config(folder, """
entry: desk
model: {provider: auto}  # no key in tests: the offline model
python_path: ["."]
tools:
  lookup_order: {function: "offline_tools:lookup_order"}
  refund: {function: "offline_tools:refund"}
  web: {hosted: web_search}
agents:
  desk:
    language: en
    instructions: Help with orders.
    tools: [lookup_order, refund, web]
    handoffs: [spanish]
  spanish:
    language: es
    instructions: Ayuda en español.
    handoffs: [desk]
""")


def _chat(cli: CliRunner, config: Path, *messages: str, record: Path | None = None) -> str:
    args = ["chat", str(config), *(["--record", str(record)] if record else [])]
    for message in messages:
        args += ["-m", message]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_tool_the_message_names_is_called_with_its_id_and_quoted(cli: CliRunner,
                                                                   tmp_path: Path) -> None:
    out = _chat(cli, _config(tmp_path), "Please lookup order A17 for me, thank you.")
    assert '  [tool] lookup_order {"order_id": "A17"} -> order A17 via any: shipped\n' in out
    assert out.rstrip().endswith("[lookup_order] order A17 via any: shipped")
    assert out.count("[tool]") == 1  # once per turn: then it answers


def test_name_value_pairs_fill_the_parameters_they_name(cli: CliRunner, tmp_path: Path) -> None:
    out = _chat(cli, _config(tmp_path),
                "I would like a refund of amount=12.50 on my order B2 please.")
    assert '  [tool] refund {"amount": "12.50", "order_id": "B2"} -> refunded 12.50 on B2\n' \
        in out


def test_a_message_that_names_no_tool_gets_a_plain_answer(cli: CliRunner,
                                                          tmp_path: Path) -> None:
    out = _chat(cli, _config(tmp_path), "What are your opening hours on Sunday?")
    assert "[tool]" not in out


def test_routing_by_language_comes_before_tools_and_hosted_tools_are_not_called(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = _chat(cli, config, "¿Puede hacer un lookup_order de mi pedido A1, por favor?",
                "Please use web_search to find the weather for me today.")
    assert "[handoff] desk -> spanish" in out and "[tool] lookup_order" not in out
    assert "[tool]" not in out.split("[handoff] spanish -> desk")[1]


def test_the_support_example_replays_offline_with_real_and_mocked_tools(
        cli: CliRunner) -> None:
    result = cli.invoke(app, ["replay", str(REPO / "configs" / "support.yaml"),
                              str(REPO / "configs" / "support-transcripts")])
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed, 0 errors" in result.stdout


def test_a_recorded_chat_expects_the_tools_it_called_and_replays(cli: CliRunner,
                                                                  tmp_path: Path) -> None:
    config = _config(tmp_path)
    record = tmp_path / "recorded.yaml"
    _chat(cli, config, "Please lookup order A17 for me, thank you.",
          "What are your opening hours on Sunday?", record=record)
    text = record.read_text(encoding="utf-8")
    assert "expect: {agent: desk, route: [desk], tools: [lookup_order]}" in text
    assert "expect: {agent: desk, route: [desk]}" in text
    replayed = cli.invoke(app, ["replay", str(config), str(record)])
    assert replayed.exit_code == 0, replayed.output
