"""`replay --baseline`: route drift, new failures, fixed turns and pass-rate drops between runs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.replay.baseline import compare, wilson

from .conftest import write_config

TRANSCRIPTS = """\
name: spanish
turns:
  - user: Hola, necesito ayuda con mi pedido.
    expect: {agent: spanish}
  - user: Muchas gracias por todo.
    expect: {agent: spanish}
---
name: french
turns:
  - user: Bonjour, j'ai besoin d'aide avec ma commande.
    expect: {route: [triage, french]}
---
name: always failing
turns:
  - user: Hello, I need help with my order.
    expect: {agent: french}
"""
CONFIG = """\
entry: triage
model: {provider: offline}
session: {backend: memory}
routing: {next_turn: last_agent}
agents:
  triage: {instructions: Route., handoffs: [spanish, french, english]}
  spanish: {language: es, instructions: Responde., handoffs: [triage]}
  french: {language: fr, instructions: Réponds., handoffs: [triage]}
  english: {language: en, instructions: Answer., handoffs: [triage]}
"""


@pytest.fixture
def suite(tmp_path: Path, cli: CliRunner) -> tuple[Path, Path]:
    """The transcripts, and the JSON report of a first run (one transcript always fails)."""
    transcripts = tmp_path / "t.yaml"
    transcripts.write_text(TRANSCRIPTS, encoding="utf-8")
    first = tmp_path / "first.json"
    done = cli.invoke(app, ["replay", str(write_config(tmp_path, CONFIG)), str(transcripts),
                            "--json", str(first)])
    assert done.exit_code == 1, done.output
    return transcripts, first


def test_a_dropped_handoff_is_named_as_exactly_its_drifted_turns(
        cli: CliRunner, tmp_path: Path, suite: tuple[Path, Path]) -> None:
    transcripts, first = suite
    dropped = write_config(tmp_path, CONFIG.replace("[spanish, french, english]",
                                                    "[french, english]"), "dropped.yaml")
    done = cli.invoke(app, ["replay", str(dropped), str(transcripts), "--baseline", str(first),
                            "--fail-on", "new"])
    assert done.exit_code == 1, done.output
    changes = [line.strip() for line in done.stdout.splitlines() if line.startswith("  ")
               and line.strip().split(":")[0] in ("route drift", "new failure", "fixed")]
    assert changes == [
        "route drift: spanish turn 1 (" + str(transcripts) + ":3): triage -> spanish, now triage",
        "new failure: spanish turn 1 (" + str(transcripts) + ":3): passed 1/1, now 0/1",
        "route drift: spanish turn 2 (" + str(transcripts) + ":5): spanish, now triage",
        "new failure: spanish turn 2 (" + str(transcripts) + ":5): passed 1/1, now 0/1",
    ]
    assert "baseline: 2 route drifts, 2 new failures, 0 fixed turns, 0 pass-rate drops" \
        in done.stdout


def test_fail_on_new_ignores_a_failure_the_baseline_had_and_any_does_not(
        cli: CliRunner, tmp_path: Path, suite: tuple[Path, Path]) -> None:
    transcripts, first = suite
    config = tmp_path / "bot.yaml"
    new = cli.invoke(app, ["replay", str(config), str(transcripts), "--baseline", str(first),
                           "--fail-on", "new"])
    assert new.exit_code == 0, new.output
    assert "FAILED always failing" in new.stdout  # still shown, no longer the verdict
    assert "baseline: 0 route drifts, 0 new failures" in new.stdout
    every = cli.invoke(app, ["replay", str(config), str(transcripts), "--baseline", str(first)])
    assert every.exit_code == 1


def test_only_failing_reruns_what_failed_and_nothing_when_nothing_did(
        cli: CliRunner, tmp_path: Path, suite: tuple[Path, Path]) -> None:
    transcripts, first = suite
    config = tmp_path / "bot.yaml"
    again = cli.invoke(app, ["replay", str(config), str(transcripts), "--only-failing",
                             str(first), "--junit", str(tmp_path / "junit.xml")])
    assert again.exit_code == 1
    assert "1 conversation from 1 transcript" in again.stderr
    passing = tmp_path / "passing.json"
    cli.invoke(app, ["replay", str(config), str(transcripts), "-k", "french", "--json",
                     str(passing)])
    nothing = cli.invoke(app, ["replay", str(config), str(transcripts), "-k", "french",
                               "--only-failing", str(passing)])
    assert nothing.exit_code == 0
    assert "no chosen transcript failed in" in nothing.stderr


def test_junit_carries_each_turns_pass_rate(
        cli: CliRunner, tmp_path: Path, suite: tuple[Path, Path]) -> None:
    transcripts, _ = suite
    report = tmp_path / "junit.xml"
    cli.invoke(app, ["replay", str(tmp_path / "bot.yaml"), str(transcripts), "-k", "spanish",
                     "--repeat", "2", "--junit", str(report)])
    cases = ET.parse(report).getroot().iter("testcase")
    properties = [{p.get("name"): p.get("value") for p in case.iter("property")}
                  for case in cases]
    assert [p["pass_rate.turn_1"] for p in properties] == ["2/2", "2/2"]
    assert all(p["pass_rate.turn_2"] == "2/2" for p in properties)


@pytest.mark.parametrize(("args", "message"), [
    (["--fail-on", "new"], "--fail-on needs --baseline FILE"),
    (["--baseline", "{tmp}/t.yaml"], "not a JSON report of replay --json"),
    (["--baseline", "{tmp}/none.json"], "cannot read it"),
    (["--baseline", "{tmp}/first.json", "--fail-on", "some"], "--fail-on some: choose any or new"),
    (["--only-failing", "{tmp}/bot.yaml"], "not a JSON report of replay --json"),
])
def test_baseline_options_that_cannot_work_are_one_line(
        cli: CliRunner, tmp_path: Path, suite: tuple[Path, Path], args: list[str],
        message: str) -> None:
    transcripts, _ = suite
    done = cli.invoke(app, ["replay", str(tmp_path / "bot.yaml"), str(transcripts),
                            *[a.format(tmp=tmp_path) for a in args]])
    assert done.exit_code == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _report(turns: dict[int, tuple[int, int]]) -> dict[str, Any]:
    """A --json report: per turn number, (passed, runs), every run on the route [a]."""
    runs = max(r for _, r in turns.values())
    return {"version": 1, "conversations": [
        {"name": "t", "file": "t.yaml", "status": "passed", "turns": [
            {"turn": n, "line": n, "status": "passed" if run < passed else "failed",
             "observed": {"route": ["a"]}}
            for n, (passed, _) in turns.items()]}
        for run in range(runs)]}


def test_a_pass_rate_drop_counts_only_when_the_wilson_intervals_do_not_overlap() -> None:
    before = _report({1: (10, 10), 2: (9, 10), 3: (10, 10), 4: (3, 10)})
    after = _report({1: (4, 10), 2: (2, 10), 3: (8, 10), 4: (10, 10)})
    changes = [(c.kind, c.turn) for c in compare(before, after, "before.json").changes]
    # 10/10 -> 8/10 is within what ten samples can tell apart: not reported.
    assert changes == [("new failure", 1), ("pass-rate drop", 2), ("fixed", 4)]
    low, high = wilson(8, 10)
    assert round(low, 3) == 0.49 and round(high, 3) == 0.943
    drop = next(c for c in compare(before, after, "b").changes if c.kind == "pass-rate drop")
    assert "95% Wilson intervals" in drop.detail and "9/10 -> 2/10" in drop.detail
