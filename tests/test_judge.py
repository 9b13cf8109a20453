"""`expect.judge`: a judge model grades replies; not run without one; recorded in cassettes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Reply, Text, WireServer

from .conftest import write_config

TRANSCRIPTS = """\
name: kind
turns:
  - user: Hola, mi pedido no llegó.
    expect: {agent: es, judge: {rubric: Apologises and offers help, threshold: 0.7}}
---
name: rude
turns:
  - user: Hola, otra vez mi pedido no llegó.
    expect: {agent: es, judge: {rubric: Apologises and offers help}}
"""


def _answer(body: dict[str, Any]) -> Reply:
    """The agent answers kindly the first time, curtly the second; the judge grades that."""
    if body["instructions"].startswith("You grade"):
        question = body["input"][-1]["content"]
        assert body["text"]["format"]["type"] == "json_schema"  # a structured verdict
        if "Lo siento" in question:
            return Text(json.dumps({"score": 0.9, "reason": "It apologises and offers help."}))
        return Text(json.dumps({"score": 0.2, "reason": "It neither apologises nor helps."}))
    said = json.dumps(body["input"], ensure_ascii=False)
    return Text("Espere." if "otra vez" in said else "Lo siento mucho, ¿le ayudo a buscarlo?")


def _config(folder: Path, base_url: str, judge: str) -> Path:
    return write_config(folder, (
        f"entry: es\nmodel: {{provider: openai, base_url: '{base_url}'}}\n"
        f"session: {{backend: memory}}\n{judge}"
        "agents: {es: {language: es, instructions: Responde.}}\n"))


def _replay(cli: CliRunner, config: Path, tmp_path: Path, *args: str) -> Any:
    transcripts = tmp_path / "t.yaml"
    transcripts.write_text(TRANSCRIPTS, encoding="utf-8")
    return cli.invoke(app, ["replay", str(config), str(transcripts), *args],
                      env={"OPENAI_API_KEY": "sk-test"})


def test_the_judge_passes_a_good_reply_and_fails_a_poor_one_with_its_reason(
        cli: CliRunner, tmp_path: Path) -> None:
    with WireServer(responder=_answer) as server:
        judge = f"judge: {{provider: openai, base_url: '{server.base_url}'}}\n"
        done = _replay(cli, _config(tmp_path, server.base_url, judge), tmp_path)
        judged = [r for r in server.requests if r.body["instructions"].startswith("You grade")]
    assert done.exit_code == 1, done.output
    assert len(judged) == 2
    assert "FAILED rude" in done.stdout and "FAILED kind" not in done.stdout
    assert "- judge: score >= 0.7 for: Apologises and offers help" in done.stdout
    assert "+ judge: 0.20: It neither apologises nor helps." in done.stdout
    assert "replay: 1 passed, 1 failed" in done.stdout


def test_without_a_judge_model_the_check_is_not_run_and_require_judge_fails_it(
        cli: CliRunner, tmp_path: Path) -> None:
    with WireServer(responder=_answer) as server:
        config = _config(tmp_path, server.base_url,
                         "judge: {provider: openai, api_key_env: JUDGE_KEY}\n")
        lenient = _replay(cli, config, tmp_path, "--json", str(tmp_path / "r.json"))
        strict = _replay(cli, config, tmp_path, "--require-judge")
        asked = [r for r in server.requests if r.body["instructions"].startswith("You grade")]
    assert asked == []
    assert lenient.exit_code == 0, lenient.output
    assert "not run (not passed either):" in lenient.stdout
    assert "kind turn 1" in lenient.stdout and "judge not run:" in lenient.stdout
    assert "JUDGE_KEY, but it is not set" in lenient.stdout
    notes = [t["notes"] for c in json.loads((tmp_path / "r.json").read_text())["conversations"]
             for t in c["turns"]]
    assert all(n and n[0].startswith("judge not run") for n in notes)
    assert strict.exit_code == 1
    assert "- judge: a judge model (--require-judge)" in strict.stdout


def test_judge_calls_are_recorded_and_replayed_with_the_cassette(
        cli: CliRunner, tmp_path: Path) -> None:
    with WireServer(responder=_answer) as server:
        judge = f"judge: {{provider: openai, base_url: '{server.base_url}'}}\n"
        config = _config(tmp_path, server.base_url, judge)
        recorded = _replay(cli, config, tmp_path, "--cassettes", str(tmp_path / "c"))
    assert recorded.exit_code == 1
    replayed = _replay(cli, config, tmp_path, "--cassettes", str(tmp_path / "c"),
                       "--record-mode", "none")
    assert replayed.exit_code == 1, replayed.output
    assert "+ judge: 0.20: It neither apologises nor helps." in replayed.stdout
    assert "rude: 0 recorded, 2 replayed, 0 missed" in replayed.stdout
    cassette = next((tmp_path / "c").glob("rude-*.yaml"))
    agents = [e["agent"] for e in yaml.safe_load(cassette.read_text())["episodes"]]
    assert sorted(agents) == ["es", "judge"]
