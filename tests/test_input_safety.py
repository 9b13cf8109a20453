"""What a user types or points the runner at is checked before it is stored or sent: text the
model request cannot encode, blank and NUL messages, special and oversized files, NUL in paths.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from routing_runner.cli import app

from .conftest import REPO, write_config

LANGUAGES = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")
NOTE = "note: your message held bytes that are not UTF-8; each was replaced by \ufffd\n"


def _config(tmp_path: Path) -> Path:
    """The languages config with its own SQLite file, s.db, beside it."""
    return write_config(tmp_path, LANGUAGES.replace(
        "  backend: sqlite          # the file defaults to ~/.local/share/routing-runner/"
        "sessions.db\n", "  backend: sqlite\n  path: s.db\n"))


def _routing_runner(*args: str | bytes, stdin: bytes = b"",
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """The real console entry point in a new process (real argv and stdin decoding)."""
    return subprocess.run([sys.executable, "-m", "routing_runner", *args], input=stdin,
                          capture_output=True, timeout=300, env=env)


def _user_messages(cli: CliRunner, config: Path, session_id: str) -> list[str]:
    """The user messages stored in a conversation, read through `sessions export`."""
    exported = cli.invoke(app, ["sessions", "export", str(config), session_id])
    assert exported.exit_code == 0, exported.output
    items = json.loads(exported.stdout)["items"]
    return [item["content"] for item in items if item.get("role") == "user"]


# -- undecodable input (item 3) -------------------------------------------------------------


def test_undecodable_bytes_on_stdin_are_replaced_and_the_user_is_told(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    # A strict stdin, as in most UTF-8 locales: one bad byte used to end the chat.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = _routing_runner("chat", str(config), "-s", "bytes",
                           stdin=b"Bonjour \xff mon ami, comment vas-tu?\n", env=env)
    assert done.returncode == 0, done.stderr.decode()
    stdout = done.stdout.decode()
    assert stdout.count(NOTE) == 1
    assert "you: Bonjour \ufffd mon ami, comment vas-tu?\n" in stdout
    assert "french: [offline model]" in stdout
    assert _user_messages(cli, config, "bytes") == ["Bonjour \ufffd mon ami, comment vas-tu?"]


def test_undecodable_bytes_in_a_message_argument_do_not_poison_the_conversation(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = _routing_runner("chat", str(config), "-s", "argv", "-m",
                            b"Hola \xff\xfe amigo, \xc2\xbfc\xc3\xb3mo est\xc3\xa1s?")
    assert first.returncode == 0, first.stderr.decode()
    assert NOTE in first.stdout.decode()
    second = cli.invoke(app, ["chat", str(config), "-s", "argv", "-m", "Hola otra vez, amigo"])
    assert second.exit_code == 0, second.output
    assert "el primero fue: «Hola \ufffd\ufffd amigo, ¿cómo estás?»" in second.stdout
    assert _user_messages(cli, config, "argv") == [
        "Hola \ufffd\ufffd amigo, ¿cómo estás?", "Hola otra vez, amigo"]


def test_a_conversation_already_holding_undecodable_text_is_usable_again(
        cli: CliRunner, tmp_path: Path) -> None:
    from routing_runner.stores.sqlite import SQLiteStore

    config = _config(tmp_path)

    async def poison() -> None:
        # What an earlier version stored for `-m $'Hola \xff amigo'`.
        store = SQLiteStore(tmp_path / "s.db")
        conversation = await store.open("poisoned")
        await conversation.session.add_items([{"role": "user", "content": "Hola \udcff amigo"}])
        await store.close()

    asyncio.run(poison())
    result = cli.invoke(app, ["chat", str(config), "-s", "poisoned", "-m", "Hola de nuevo, amigo"])
    assert result.exit_code == 0, result.output
    assert "el primero fue: «Hola \ufffd amigo»" in result.stdout
    shown = cli.invoke(app, ["sessions", "show", str(config), "poisoned"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("you: Hola \ufffd amigo\n")


# -- blank and NUL messages (item 15) -------------------------------------------------------


def test_a_blank_chat_line_is_ignored_and_a_line_with_nul_is_refused(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = cli.invoke(app, ["chat", str(config), "-s", "blank"],
                        input="   \n\t\nHola\x00amigo\nHola, ¿cómo estás?\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == \
        "not sent: the message contains a NUL character; remove it"
    assert result.stdout.count("you: ") == 1
    assert _user_messages(cli, config, "blank") == ["Hola, ¿cómo estás?"]


def test_a_blank_message_argument_is_refused_before_anything_runs(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = cli.invoke(app, ["chat", str(config), "-s", "none", "-m", "Hola", "-m", " \t "])
    assert result.exit_code == 2
    assert result.stderr == "error: --message: message 2 is empty (only whitespace)\n"
    assert result.stdout == ""
    assert not (tmp_path / "s.db").exists()


def test_a_blank_or_nul_transcript_message_is_an_error_at_its_line(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    transcript = tmp_path / "t.yaml"
    transcript.write_text('name: bad messages\nturns:\n  - user: "  "\n'
                          '    expect: {agent: triage}\n  - user: "Hola\\0amigo"\n',
                          encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[:2] == [
        f"{transcript}:3:11: turns[0].user: the message is empty (only whitespace)",
        f"{transcript}:5:11: turns[1].user: the message contains a NUL character; remove it"]


# -- special and oversized files (item 13) --------------------------------------------------


def test_validate_refuses_a_device_instead_of_reading_it_forever(cli: CliRunner) -> None:
    result = cli.invoke(app, ["validate", "/dev/zero"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == \
        "/dev/zero:1:1: is a character device, not a regular file"


def test_a_fifo_config_or_instructions_file_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    done = _routing_runner("validate", str(fifo))  # used to wait forever for a writer
    assert done.returncode == 2
    assert done.stderr.decode().splitlines()[0] == \
        f"{fifo}:1:1: is a named pipe (FIFO), not a regular file"

    os.mkfifo(tmp_path / "prompt.md")
    config = write_config(tmp_path, "version: 1\nentry: bot\nagents:\n"
                                    "  bot: {instructions_file: prompt.md}\n", "bot.yaml")
    done = _routing_runner("validate", str(config))
    assert done.returncode == 2
    assert done.stderr.decode().splitlines()[0] == (
        f"{config}:4:28: agents.bot.instructions_file: file 'prompt.md' is a named pipe "
        "(FIFO), not a regular file")


def test_a_config_over_1_mib_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, "version: 1\nentry: bot\nagents:\n  bot: {instructions: hi}\n"
                          + "# padding\n" * 110_000)
    result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == \
        f"{config}:1:1: is {config.stat().st_size:,} bytes; the limit is 1 MiB"


def test_an_instructions_file_over_1_mib_is_refused_at_its_line(
        cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "huge.md").write_text("Be helpful. " * 100_000, encoding="utf-8")
    config = write_config(tmp_path, "version: 1\nentry: bot\nagents:\n"
                                    "  bot: {instructions_file: huge.md}\n")
    result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"{config}:4:28: agents.bot.instructions_file: file 'huge.md' is 1,200,000 bytes; "
        "the limit is 1 MiB")


def test_a_transcript_file_over_10_mib_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    transcript = tmp_path / "huge.yaml"
    with transcript.open("wb") as file:
        file.truncate(11 * 1024 * 1024)  # sparse: the size is what counts
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == \
        f"{transcript}:1:1: is 11,534,336 bytes; the limit is 10 MiB"


def test_a_transcript_message_over_the_limit_is_refused_at_its_line(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    transcript = tmp_path / "long.yaml"
    transcript.write_text(f"name: long\nturns:\n  - user: {'word ' * 30_000}\n"
                          "    expect: {agent: triage}\n", encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"{transcript}:3:11: turns[0].user: the message is longer than the limit of "
        "100,000 characters")


def test_a_chat_line_over_the_limit_is_refused_and_the_chat_goes_on(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = cli.invoke(app, ["chat", str(config), "-s", "long"],
                        input="x" * 1_000_000 + "\nHola, ¿cómo estás?\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == \
        "not sent: the message is longer than the limit of 100,000 characters"
    assert _user_messages(cli, config, "long") == ["Hola, ¿cómo estás?"]


# -- NUL in paths (item 14) -----------------------------------------------------------------


def test_a_nul_in_a_path_is_a_config_error_at_its_line(cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, 'version: 1\nentry: bot\nagents:\n'
                                    '  bot: {instructions_file: "a\\0b.md"}\n'
                                    'session: {path: "s\\0.db"}\n')
    result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{config}:4:28: agents.bot.instructions_file: a path cannot contain a NUL character "
        "(is there a stray \\0 escape?)",
        f"{config}:5:17: session.path: a path cannot contain a NUL character "
        "(is there a stray \\0 escape?)",
        "2 errors found; nothing was run."]
