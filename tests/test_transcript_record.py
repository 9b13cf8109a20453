"""`chat --record FILE`: a manual session written as a transcript that `replay` passes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from routing_runner.cli import app

from .conftest import REPO, write_config

LANGUAGES = str(REPO / "configs" / "languages.yaml")
CHAT = ("Hola, ¿cómo estás?\nJe veux apprendre le français.\n"
        "Guten Tag, ich brauche Hilfe mit meiner Bestellung.\n")


def test_a_recorded_chat_expects_the_agent_and_route_of_every_turn(
        cli: CliRunner, tmp_path: Path) -> None:
    record = tmp_path / "good-session.yaml"
    result = cli.invoke(app, ["chat", LANGUAGES, "--record", str(record)], input=CHAT)
    assert result.exit_code == 0, result.output
    text = record.read_text(encoding="utf-8")
    schema = text.splitlines()[0].removeprefix("# yaml-language-server: $schema=")
    assert schema == (REPO / "schemas" / "transcript.schema.json").as_uri()
    assert yaml.safe_load(text) == {"name": "good-session", "turns": [
        {"user": "Hola, ¿cómo estás?",
         "expect": {"agent": "spanish", "route": ["triage", "spanish"]}},
        {"user": "Je veux apprendre le français.",
         "expect": {"agent": "french", "route": ["spanish", "french"]}},
        {"user": "Guten Tag, ich brauche Hilfe mit meiner Bestellung.",
         "expect": {"agent": "triage", "route": ["french", "triage"]}},
    ]}
    assert f"recorded 3 turns to {record}; check it with: routing-runner replay " \
           f"{LANGUAGES} {record}" in result.stderr


def test_the_recorded_transcript_passes_replay(cli: CliRunner, tmp_path: Path) -> None:
    record = tmp_path / "session.yaml"
    cli.invoke(app, ["chat", LANGUAGES, "--record", str(record)], input=CHAT)
    result = cli.invoke(app, ["replay", LANGUAGES, str(record)])
    assert result.exit_code == 0, result.output
    assert "replay: 1 passed, 0 failed, 0 errors (1 conversation, 3 turns)" in result.stdout


def test_only_completed_turns_are_recorded(cli: CliRunner, tmp_path: Path) -> None:
    # max_turns 1: triage's handoff uses the only model call, so a routed message fails;
    # German, which nobody speaks, triage answers itself in that one call.
    config = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
    path = write_config(tmp_path, config.replace("max_turns: 6", "max_turns: 1"))
    record = tmp_path / "partial.yaml"
    cli.invoke(app, ["chat", str(path), "--record", str(record)],
               input="Hola, ¿cómo estás?\nGuten Tag, ich brauche Hilfe.\n")
    turns = yaml.safe_load(record.read_text(encoding="utf-8"))["turns"]
    assert turns == [{"user": "Guten Tag, ich brauche Hilfe.",
                      "expect": {"agent": "triage", "route": ["triage"]}}]


def test_nothing_is_written_when_no_turn_completed(cli: CliRunner, tmp_path: Path) -> None:
    record = tmp_path / "empty.yaml"
    result = cli.invoke(app, ["chat", LANGUAGES, "--record", str(record)], input="/exit\n")
    assert result.exit_code == 0
    assert not record.exists()
    assert "nothing recorded: no turn completed" in result.stderr


def test_recording_never_overwrites_a_file(cli: CliRunner, tmp_path: Path) -> None:
    record = tmp_path / "kept.yaml"
    record.write_text("precious\n", encoding="utf-8")
    result = cli.invoke(app, ["chat", LANGUAGES, "--record", str(record)], input=CHAT)
    assert result.exit_code == 2
    assert "the file exists" in result.stderr
    assert record.read_text(encoding="utf-8") == "precious\n"


def test_recording_needs_a_new_conversation(cli: CliRunner, tmp_path: Path) -> None:
    first = cli.invoke(app, ["chat", LANGUAGES], input="Hola, ¿cómo estás?\n")
    match = re.search(r"^session: (\S+) ", first.stderr, re.MULTILINE)
    assert match
    record = tmp_path / "resumed.yaml"
    result = cli.invoke(app, ["chat", LANGUAGES, "--session-id", match.group(1),
                              "--record", str(record)], input="Muchas gracias.\n")
    assert result.exit_code == 2
    assert "--record needs a new conversation" in result.stderr
    assert not record.exists()


def test_recording_into_a_missing_folder_fails_before_the_chat(
        cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["chat", LANGUAGES, "--record", str(tmp_path / "no" / "t.yaml")],
                        input=CHAT)
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert result.stdout == ""
