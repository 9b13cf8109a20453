"""`replay --cassettes`: model calls recorded against the loopback server, replayed without it."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner_testing.wire_server import Reply, Text, ToolCall, WireServer

from .conftest import write_config

SECRET = "sk-test-DO-NOT-RECORD-4242"
TRANSCRIPTS = """\
name: spanish
turns:
  - user: Hola, necesito ayuda.
    expect: {route: [triage, spanish], contains: te ayudo}
  - user: Gracias.
    expect: {agent: spanish}
---
name: french
turns:
  - user: Bonjour, j'ai besoin d'aide.
    expect: {route: [triage, french], contains: Bien sûr}
---
name: stays with triage
turns:
  - user: Hello there.
    expect: {agent: triage}
"""


def _answer(body: dict[str, Any]) -> Reply:
    """Triage hands off by the message's language; the others answer (stateless)."""
    instructions = body.get("instructions") or body["messages"][0]["content"]
    if instructions.startswith("Route"):
        text = json.dumps(body.get("input") or body.get("messages"), ensure_ascii=False)
        if "Hola" in text:
            return ToolCall("transfer_to_spanish")
        if "Bonjour" in text:
            return ToolCall("transfer_to_french")
        return Text("Which language do you speak?")
    if instructions.startswith("Réponds"):
        return Text("Bien sûr, je vous aide.", chunk_size=5)
    return Text("Claro, te ayudo con eso.", chunk_size=4)


def _config(folder: Path, base_url: str, *, api: str = "responses",
            spanish: str = "Responde.") -> Path:
    return write_config(folder, (
        f"entry: triage\nmodel: {{provider: openai, api: {api}, base_url: '{base_url}'}}\n"
        f"session: {{path: {folder / 'sessions.db'}}}\n"
        "agents:\n"
        "  triage: {instructions: Route., handoffs: [spanish, french]}\n"
        f"  spanish: {{language: es, instructions: {spanish}, handoffs: [triage]}}\n"
        "  french: {language: fr, instructions: Réponds., handoffs: [triage]}\n"))


@contextmanager
def _nothing_may_connect(port: int) -> Iterator[None]:
    """A listener on the stopped server's port that accepts nothing: any request the replay
    sent would wait in its backlog, and is looked for afterwards."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    listener.setblocking(False)
    try:
        yield
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected
    finally:
        listener.close()


def _comparable(report: dict[str, Any]) -> Any:
    """The report without timings and cassette counts (which differ by design)."""
    if isinstance(report, dict):
        return {k: _comparable(v) for k, v in report.items()
                if "seconds" not in k and k != "cassette"}
    if isinstance(report, list):
        return [_comparable(v) for v in report]
    return report


def _replay(cli: CliRunner, config: Path, folder: Path, *args: str) -> Any:
    return cli.invoke(app, ["replay", str(config), str(folder / "transcripts.yaml"),
                            "--cassettes", str(folder / "cassettes"), *args])


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_recorded_suite_replays_identically_with_no_server_and_no_key(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: str) -> None:
    (tmp_path / "transcripts.yaml").write_text(TRANSCRIPTS, encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with WireServer(responder=_answer, latency=0.02) as server:
        config = _config(tmp_path, server.base_url, api=api)
        recorded = _replay(cli, config, tmp_path, "-j", "3", "-w", "2", "--repeat", "2",
                           "--json", str(tmp_path / "recorded.json"))
        port, requests = server.port, len(server.requests)
    assert recorded.exit_code == 0, recorded.output
    assert requests == 2 * 6  # two runs of: handoff + answer, answer; handoff + answer; answer
    assert "spanish: 6 recorded, 0 replayed, 0 missed" in recorded.stdout

    monkeypatch.delenv("OPENAI_API_KEY")
    with _nothing_may_connect(port):
        replayed = _replay(cli, config, tmp_path, "-j", "3", "-w", "2", "--repeat", "2",
                           "--record-mode", "none", "--json", str(tmp_path / "replayed.json"))
    assert replayed.exit_code == 0, replayed.output
    assert "spanish: 0 recorded, 6 replayed, 0 missed" in replayed.stdout
    assert "replayed only, no model is called" in replayed.stderr
    first, second = (json.loads((tmp_path / f"{n}.json").read_text()) for n in
                     ("recorded", "replayed"))
    assert _comparable(first) == _comparable(second)
    assert first["conversations"][0]["cassette"] == {"recorded": 3, "replayed": 0, "missed": 0}

    cassettes = sorted((tmp_path / "cassettes").iterdir())
    assert [c.name.rsplit("-", 1)[0] for c in cassettes] == ["french", "spanish",
                                                            "stays-with-triage"]
    for cassette in cassettes:
        text = cassette.read_text(encoding="utf-8")
        assert SECRET not in text and "Bearer" not in text and "127.0.0.1" not in text
    episodes = yaml.safe_load(cassettes[1].read_text(encoding="utf-8"))["episodes"]
    assert sorted({e["sample"] for e in episodes}) == [1, 2]
    assert {e["agent"] for e in episodes} == {"triage", "spanish"}


def test_a_changed_agent_fails_its_turns_naming_it_and_new_episodes_records_only_those(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "transcripts.yaml").write_text(TRANSCRIPTS, encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with WireServer(responder=_answer, latency=0.01) as server:
        assert _replay(cli, _config(tmp_path, server.base_url), tmp_path).exit_code == 0
        base_url = server.base_url
    changed = _config(tmp_path, base_url, spanish="Responde con cariño.")
    before = {p.name: p.read_text() for p in (tmp_path / "cassettes").iterdir()}

    missed = _replay(cli, changed, tmp_path, "--record-mode", "none")
    assert missed.exit_code == 1, missed.output
    assert "+ cassette: agent spanish: instructions changed" in missed.stdout
    assert "replay: 2 passed, 1 failed, 0 errors" in missed.stdout
    assert "spanish: 0 recorded, 1 replayed, 2 missed" in missed.stdout

    with WireServer(responder=_answer, latency=0.01) as server:
        filled = _replay(cli, _config(tmp_path, server.base_url, spanish="Responde con cariño."),
                         tmp_path, "--record-mode", "new_episodes")
        asked = [r.body.get("instructions") for r in server.requests]
    assert filled.exit_code == 0, filled.output
    assert asked == ["Responde con cariño.", "Responde con cariño."]
    assert "spanish: 2 recorded, 1 replayed, 0 missed" in filled.stdout
    after = {p.name: p.read_text() for p in (tmp_path / "cassettes").iterdir()}
    assert [n for n in after if after[n] != before[n]] == \
        [n for n in after if n.startswith("spanish")]
    # The transcript's old recordings of spanish stay beside the new ones.
    assert after[next(n for n in after if n.startswith("spanish"))].count("Responde") == 4

    again = _replay(cli, changed, tmp_path, "--record-mode", "none")
    assert again.exit_code == 0, again.output


def test_record_mode_once_replays_a_transcript_that_has_a_cassette(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "transcripts.yaml").write_text(TRANSCRIPTS, encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with WireServer(responder=_answer) as server:
        config = _config(tmp_path, server.base_url)
        assert _replay(cli, config, tmp_path).exit_code == 0
        (next((tmp_path / "cassettes").glob("french-*"))).unlink()
        once = _replay(cli, config, tmp_path)
        asked = len(server.requests)
    assert once.exit_code == 0, once.output
    assert asked == 6 + 2  # the first run, then french alone
    assert "1 of 3 transcripts may call the model and record" in once.stderr
    assert "french: 2 recorded, 0 replayed, 0 missed" in once.stdout
    assert "spanish: 0 recorded, 3 replayed, 0 missed" in once.stdout


def test_each_repeat_replays_its_own_recording(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "transcripts.yaml").write_text(
        "name: flaky\nturns:\n  - user: Hola\n    expect: {contains: uno}\n", encoding="utf-8")
    replies = iter([Text("uno"), Text("dos")])
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with WireServer(responder=lambda body: next(replies)) as server:
        config = write_config(tmp_path, (
            f"entry: es\nmodel: {{provider: openai, base_url: '{server.base_url}'}}\n"
            f"session: {{path: {tmp_path / 'sessions.db'}}}\n"
            "agents: {es: {instructions: Responde.}}\n"))
        recorded = _replay(cli, config, tmp_path, "--repeat", "2", "-j", "1")
    assert recorded.exit_code == 1  # run 2 answered "dos"
    monkeypatch.delenv("OPENAI_API_KEY")
    replayed = _replay(cli, config, tmp_path, "--repeat", "2", "--record-mode", "none",
                       "--json", str(tmp_path / "report.json"))
    texts = [c["turns"][0]["observed"]["text"]
             for c in json.loads((tmp_path / "report.json").read_text())["conversations"]]
    assert texts == ["uno", "dos"]
    assert replayed.exit_code == 1
    assert "pass rate" in replayed.stdout.lower() or "1 of 2" in replayed.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--record-mode", "none"], "--record-mode needs --cassettes DIR"),
    (["--cassettes", "{tmp}/missing", "--record-mode", "none"],
     "the folder does not exist, and --record-mode none only replays"),
    (["--cassettes", "{tmp}", "--record-mode", "sometimes"],
     "--record-mode sometimes: choose one of once, new_episodes, none, all"),
])
def test_cassette_options_that_cannot_work_are_one_line(
        cli: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "transcripts.yaml").write_text(TRANSCRIPTS, encoding="utf-8")
    config = _config(tmp_path, "http://127.0.0.1:9/v1")
    result = cli.invoke(app, ["replay", str(config), str(tmp_path / "transcripts.yaml"),
                              *[a.format(tmp=tmp_path) for a in args]])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_damaged_cassette_fails_its_conversation_in_one_line(
        cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "transcripts.yaml").write_text(TRANSCRIPTS.split("---")[2], encoding="utf-8")
    folder = tmp_path / "cassettes"
    folder.mkdir()
    config = _config(tmp_path, "http://127.0.0.1:9/v1")
    digest = hashlib.sha256(b"stays with triage").hexdigest()[:8]
    (folder / f"stays-with-triage-{digest}.yaml").write_text("episodes: [{key: 1}]\n")
    result = _replay(cli, config, tmp_path, "--record-mode", "none")
    assert result.exit_code == 3, result.output
    assert "not a routing-runner cassette" in result.stdout
    assert "re-record it with --record-mode all" in result.stdout


def test_a_chat_recorded_with_cassettes_replays_as_its_transcript_without_the_server(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    transcript = tmp_path / "transcripts.yaml"
    with WireServer(responder=_answer, latency=0.01) as server:
        config = _config(tmp_path, server.base_url)
        chatted = cli.invoke(app, ["chat", str(config), "--record", str(transcript),
                                   "--cassettes", str(tmp_path / "cassettes"),
                                   "-m", "Hola, necesito ayuda.", "-m", "Gracias."])
        port = server.port
    assert chatted.exit_code == 0, chatted.output
    assert "3 recorded, 0 replayed, 0 missed" in chatted.stderr
    monkeypatch.delenv("OPENAI_API_KEY")
    with _nothing_may_connect(port):
        replayed = _replay(cli, config, tmp_path, "--record-mode", "none")
        again = cli.invoke(app, ["chat", str(config), "--cassettes", str(tmp_path / "cassettes"),
                                 "--record-mode", "none", "-m", "Hola, necesito ayuda."])
    assert replayed.exit_code == 0, replayed.output
    assert "transcripts: 0 recorded, 3 replayed, 0 missed" in replayed.stdout
    # A new chat has a cassette of its own, empty: only recordings may answer, so it fails.
    assert again.exit_code == 3
    assert "no cassette chat-" in again.stdout + again.stderr
