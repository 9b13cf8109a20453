"""`routing-runner chat`: the real entry point, fed on stdin, offline model, stored sessions."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from routing_runner.cli import app

from .conftest import REPO, write_config

LANGUAGES = str(REPO / "configs" / "languages.yaml")
SPANISH_THEN_FRENCH = "Hola, ¿cómo estás?\nJe veux apprendre le français.\n"


def _session_id(stderr: str) -> str:
    match = re.search(r"^session: (\S+) ", stderr, re.MULTILINE)
    assert match, stderr
    return match.group(1)


def _speakers(stdout: str) -> list[str]:
    """The agent name at the start of each reply line."""
    return re.findall(r"^(\w+): \[offline model", stdout, re.MULTILINE)


def test_spanish_then_french_are_answered_by_the_spanish_then_the_french_agent(
        cli: CliRunner) -> None:
    result = cli.invoke(app, ["chat", LANGUAGES], input=SPANISH_THEN_FRENCH)
    assert result.exit_code == 0, result.output
    assert _speakers(result.stdout) == ["spanish", "french"]
    assert "  [handoff] triage -> spanish\n" in result.stdout
    assert "  [handoff] spanish -> french\n" in result.stdout
    assert "Soy spanish y te respondo en español." in result.stdout
    assert "Je suis french et je vous réponds en français." in result.stdout


def test_banner_names_the_offline_model_and_the_session(cli: CliRunner) -> None:
    result = cli.invoke(app, ["chat", LANGUAGES], input="")
    assert result.exit_code == 0
    assert "model: OFFLINE model" in result.stderr
    assert "auto: OPENAI_API_KEY is not set" in result.stderr
    session_id = _session_id(result.stderr)
    assert f"resume with: routing-runner chat {LANGUAGES} --session-id {session_id}" \
        in result.stderr


def test_resumed_chat_continues_with_the_last_agent_and_its_history(
        cli: CliRunner, isolated_environment: Path) -> None:
    first = cli.invoke(app, ["chat", LANGUAGES], input=SPANISH_THEN_FRENCH)
    session_id = _session_id(first.stderr)

    second = cli.invoke(app, ["chat", LANGUAGES, "--session-id", session_id],
                        input="Et maintenant, une autre question.\n")

    assert second.exit_code == 0, second.output
    assert f"session: {session_id} (resumed, last agent french)" in second.stderr
    assert "[handoff]" not in second.stdout  # french answers directly
    assert _speakers(second.stdout) == ["french"]
    # The model saw the whole conversation: the third user message, the first one quoted.
    assert "C'est le message n° 3 de notre conversation ; le premier était : " \
           "« Hola, ¿cómo estás? »." in second.stdout
    db = isolated_environment / "routing-runner" / "sessions.db"
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM agent_messages WHERE session_id = ?",
                              (session_id,)).fetchone()[0]
    # 3 user messages, 3 replies, 2 handoffs of a call and an output each.
    assert stored == 10


def test_a_german_agent_is_a_yaml_only_change(cli: CliRunner) -> None:
    config = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
    config = config.replace("handoffs: [french, spanish, english]",
                            "handoffs: [french, spanish, english, german]")
    config += ("\n  german:\n    language: de\n    instructions: Antworte auf Deutsch.\n"
               "    handoffs: [triage]\n")
    path = write_config(Path(LANGUAGES).parent, config, name=".test-german.yaml")
    try:
        result = cli.invoke(app, ["chat", str(path)],
                            input="Guten Tag, ich brauche Hilfe mit meiner Bestellung.\n")
    finally:
        path.unlink()
    assert result.exit_code == 0, result.output
    assert "  [handoff] triage -> german\n" in result.stdout
    assert "german: [offline model] Ich bin german und antworte auf Deutsch." in result.stdout


def test_routing_entry_sends_every_message_through_triage(cli: CliRunner, tmp_path: Path) -> None:
    config = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
    path = write_config(tmp_path, config.replace("next_turn: last_agent", "next_turn: entry"))
    result = cli.invoke(app, ["chat", str(path)],
                        input="Hola, ¿cómo estás?\nMuchas gracias por tu ayuda.\n")
    assert result.stdout.count("[handoff] triage -> spanish") == 2


def test_escape_sequences_in_model_output_are_shown_inert(cli: CliRunner) -> None:
    # The offline model quotes the user's message, so it echoes these bytes back.
    result = cli.invoke(app, ["chat", LANGUAGES],
                        input="Bonjour \x1b[2J\x1b]0;pwned\x07 et \u202e merci beaucoup\n")
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "\\x1b[2J\\x1b]0;pwned\\x07" in result.stdout
    assert "\\u202e" in result.stdout


def test_a_failed_turn_is_one_line_and_the_chat_goes_on(cli: CliRunner, tmp_path: Path,
                                                        isolated_environment: Path) -> None:
    # With max_turns 1 the triage agent's handoff uses the only model call: the turn fails.
    # "Hallo" (German, which nobody speaks) is one triage answers itself.
    config = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
    path = write_config(tmp_path, config.replace("max_turns: 6", "max_turns: 1"))
    result = cli.invoke(app, ["chat", str(path), "--session-id", "failing"],
                        input="Hola, ¿cómo estás?\nHallo\n")
    assert result.exit_code == 0
    errors = [line for line in result.stdout.splitlines() if "[error]" in line]
    assert errors == ["  [error] no agent answered within run.max_turns=1 model calls "
                      "(a handoff loop?); raise run.max_turns or check the handoffs"]
    assert "triage: [offline model]" in result.stdout  # the second message was answered
    db = isolated_environment / "routing-runner" / "sessions.db"
    with sqlite3.connect(db) as conn:
        rows = [r[0] for r in conn.execute(
            "SELECT message_data FROM agent_messages WHERE session_id = 'failing' ORDER BY id")]
    # The failed turn kept the user's message and nothing else.
    assert '"Hola, ¿cómo estás?"' in rows[0] or "Hola" in rows[0]
    assert '"role": "user"' in rows[1] and "Hallo" in rows[1]
    assert len(rows) == 3


def test_exit_command_ends_the_chat_before_later_lines(cli: CliRunner) -> None:
    result = cli.invoke(app, ["chat", LANGUAGES], input="/exit\nHola, ¿cómo estás?\n")
    assert result.exit_code == 0
    assert "spanish" not in result.stdout


def test_a_bad_session_id_is_a_clear_error(cli: CliRunner) -> None:
    result = cli.invoke(app, ["chat", LANGUAGES, "--session-id", "../../etc/passwd"], input="")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid session id '../../etc/passwd'")
    assert "Traceback" not in result.output


def test_provider_openai_without_a_key_fails_before_the_first_prompt(
        cli: CliRunner, tmp_path: Path) -> None:
    path = write_config(tmp_path, "entry: a\nmodel: {provider: openai}\n"
                                  "agents: {a: {instructions: hi}}\n")
    result = cli.invoke(app, ["chat", str(path)], input="Hello\n")
    assert result.exit_code == 3
    assert "needs the API key in OPENAI_API_KEY, but it is not set" in result.stderr
    assert result.stdout == ""
