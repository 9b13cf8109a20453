"""`replay --cassettes DIR --rerecord-failing`: only the failing transcripts' cassettes are
recorded again, against the loopback server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Reply, Text, WireServer

from .test_cassettes import SECRET, _answer, _config

SUITE = """\
name: spanish
turns:
  - user: Hola, necesito ayuda.
    expect: {{route: [triage, spanish], contains: te ayudo}}
---
name: french
turns:
  - user: Bonjour, j'ai besoin d'aide.
    expect: {{route: [triage, french], contains: {french}}}
"""


def _replay(cli: CliRunner, config: Path, folder: Path, *args: str) -> Any:
    return cli.invoke(app, ["replay", str(config), str(folder / "transcripts.yaml"), *args])


def test_only_the_failing_transcript_is_recorded_again(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite, folder = tmp_path / "transcripts.yaml", tmp_path / "cassettes"
    suite.write_text(SUITE.format(french="Bien sûr"), encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    french = {"reply": "Bien sûr, je vous aide."}

    def answer(body: dict[str, Any]) -> Reply:
        reply = _answer(body)
        is_french = isinstance(reply, Text) and reply.text.startswith("Bien")
        return Text(french["reply"], chunk_size=5) if is_french else reply

    with WireServer(responder=answer) as server:
        config = _config(tmp_path, server.base_url)
        assert _replay(cli, config, tmp_path, "--cassettes", str(folder)).exit_code == 0
        recorded = len(server.requests)
        files = {p.name.split("-")[0]: p for p in folder.iterdir()}
        before = {name: (p.read_bytes(), p.stat().st_mtime_ns) for name, p in files.items()}
        # The model now answers otherwise, and the transcript expects the new answer: the
        # cassette of french is stale, the one of spanish is not.
        french["reply"] = "Avec plaisir, je vous aide."
        suite.write_text(SUITE.format(french="Avec plaisir"), encoding="utf-8")
        stale = _replay(cli, config, tmp_path, "--cassettes", str(folder),
                        "--record-mode", "none")
        assert stale.exit_code == 1, stale.output
        assert len(server.requests) == recorded  # none only replays
        result = _replay(cli, config, tmp_path, "--cassettes", str(folder),
                         "--rerecord-failing")
        asked = len(server.requests) - recorded
    assert result.exit_code == 0, result.output
    assert "re-recording 1 failing transcript: french" in result.stderr
    assert "french: 2 recorded, 0 replayed, 0 missed" in result.stdout
    assert "spanish: 0 recorded, 2 replayed, 0 missed" in result.stdout
    assert asked == 2  # french's handoff and answer, nothing for spanish
    assert files["spanish"].read_bytes() == before["spanish"][0]
    assert files["spanish"].stat().st_mtime_ns == before["spanish"][1]
    assert files["french"].read_bytes() != before["french"][0]
    assert "Avec plaisir" in files["french"].read_text(encoding="utf-8")
    assert "Bien sûr, je vous aide" not in files["french"].read_text(encoding="utf-8")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in files.values())


def test_a_transcript_failing_after_recording_again_fails_the_run(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite, folder = tmp_path / "transcripts.yaml", tmp_path / "cassettes"
    suite.write_text(SUITE.format(french="Bien sûr"), encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with WireServer(responder=_answer) as server:
        config = _config(tmp_path, server.base_url)
        assert _replay(cli, config, tmp_path, "--cassettes", str(folder)).exit_code == 0
        suite.write_text(SUITE.format(french="Avec plaisir"), encoding="utf-8")
        result = _replay(cli, config, tmp_path, "--cassettes", str(folder),
                         "--record-mode", "once", "--rerecord-failing")
    assert result.exit_code == 1, result.output
    assert "re-recording 1 failing transcript: french" in result.stderr
    assert "french: 2 recorded, 0 replayed, 0 missed" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--rerecord-failing"], "--rerecord-failing needs --cassettes DIR"),
    (["--cassettes", "{tmp}", "--record-mode", "all", "--rerecord-failing"],
     "--rerecord-failing with --record-mode all: all records every transcript again"),
])
def test_rerecord_failing_options_that_cannot_work_are_one_line(
        cli: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "transcripts.yaml").write_text(SUITE.format(french="x"), encoding="utf-8")
    config = _config(tmp_path, "http://127.0.0.1:9/v1")
    result = _replay(cli, config, tmp_path, *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
