"""What the runner prints is safe to print: no secrets from the environment or in URLs, no
escape sequences from configs or stores, valid XML; and the small things a new user reaches
for first (--version, completion, colour rules, validate's report, exported transcripts).
"""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from typer.testing import CliRunner

from routing_runner import __version__
from routing_runner.cli import app
from routing_runner_testing.wire_server import Fault, WireServer

from .conftest import REPO, write_config

LANGUAGES = REPO / "configs" / "languages.yaml"
ESCAPES = "\x1b]0;owned\x07\x1b[2J"  # set the window title, clear the screen


def _languages(tmp_path: Path, old: str = "", new: str = "") -> Path:
    """The languages config, its store beside it, with `old` replaced by `new`."""
    text = LANGUAGES.read_text(encoding="utf-8").replace(
        "  backend: sqlite          # the file defaults to ~/.local/share/routing-runner/"
        "sessions.db\n", "  backend: sqlite\n  path: s.db\n")
    return write_config(tmp_path, text.replace(old, new) if old else text)


# -- secrets (item 6) -------------------------------------------------------------------------


def test_a_value_from_the_environment_is_shown_as_its_variable_in_errors(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-live-0123456789")
    config = write_config(tmp_path, "version: 1\nentry: bot\nmodel:\n"
                                    "  provider: ${MY_KEY}\n  settings:\n"
                                    "    temperature: ${MY_KEY}\n"
                                    "agents:\n  bot: {instructions: hi}\n")
    result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "sk-live" not in result.output
    assert result.stderr.splitlines()[:2] == [
        f"{config}:4:13: model.provider: '${{MY_KEY}}' is not one of: auto, openai, "
        "openai-compatible, litellm, offline",
        f"{config}:6:18: model.settings.temperature: expected a number, got a string "
        "('${MY_KEY}')"]


def test_a_transcript_override_keeps_environment_values_hidden(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENTRY_AGENT", "bot")
    config = write_config(tmp_path, "version: 1\nentry: ${ENTRY_AGENT}\n"
                                    "session: {backend: memory}\n"
                                    "agents:\n  bot: {instructions: hi, handoffs: [other]}\n"
                                    "  other: {instructions: hi}\n")
    transcript = tmp_path / "t.yaml"
    transcript.write_text("name: t\nconfig: {agents: {bot: null}}\nturns:\n  - user: hi\n"
                          "    expect: {agent: other}\n", encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcript)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"{config}:2:8: entry: '${{ENTRY_AGENT}}' is not an agent (with the config overrides of "
        f"{transcript}:2:1)")


def test_credentials_in_base_url_are_never_shown(cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, (
        "version: 1\nentry: bot\nmodel:\n  provider: openai-compatible\n  name: local\n"
        "  base_url: http://me:hunter2@127.0.0.1:1/v1?api-key=sk-secret&team=a\n"
        "  retry: {max_retries: 0}\nsession: {backend: memory}\n"
        "agents:\n  bot: {instructions: hi}\n"))
    result = cli.invoke(app, ["chat", str(config), "-m", "hello"])
    assert result.exit_code == 3  # nothing listens on port 1
    assert "hunter2" not in result.output and "sk-secret" not in result.output
    assert "model: OpenAI-compatible Chat Completions, local at " \
           "http://me:***@127.0.0.1:1/v1?api-key=***&team=a - no key" in result.stderr


def test_a_url_quoted_in_a_provider_error_is_redacted(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with WireServer() as server:
        server.script(Fault.http_error(
            400, "upstream http://svc:tok3n@10.0.0.5/v1?api_key=sk-upstream refused the call"))
        config = write_config(tmp_path, (
            f"version: 1\nentry: bot\nmodel:\n  provider: openai\n  name: gpt-test\n"
            f"  base_url: {server.base_url}\nsession: {{backend: memory}}\n"
            "agents:\n  bot: {instructions: hi}\n"))
        result = cli.invoke(app, ["chat", str(config), "-m", "hello"])
    assert result.exit_code == 3
    assert "tok3n" not in result.output and "sk-upstream" not in result.output
    assert "upstream http://svc:***@10.0.0.5/v1?api_key=*** refused the call" in result.stdout


@pytest.mark.parametrize(("backend", "variable", "url", "shown"), [
    ("sqlalchemy", "DATABASE_URL", "postgresql://app:pw1@127.0.0.1:1/db?password=hunter2",
     "postgresql+asyncpg://app:***@127.0.0.1:1/db?password=***"),
    ("redis", "REDIS_URL", "redis://127.0.0.1:1/0?password=hunter2",
     "redis://127.0.0.1:1/0?password=***"),
])
def test_credentials_in_store_urls_are_never_shown(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        backend: str, variable: str, url: str, shown: str) -> None:
    monkeypatch.setenv(variable, url)
    config = write_config(tmp_path, f"version: 1\nentry: bot\nsession: {{backend: {backend}}}\n"
                                    "agents:\n  bot: {instructions: hi}\n")
    result = cli.invoke(app, ["sessions", "list", str(config)])
    assert result.exit_code == 3  # nothing listens on port 1
    assert "hunter2" not in result.output and "pw1" not in result.output
    assert shown in result.stderr


# -- escape sequences (item 12) ---------------------------------------------------------------


def test_escape_sequences_in_config_strings_never_reach_the_terminal(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _languages(tmp_path, "name: Multilingual support",
                        'name: "Bot\\e]0;owned\\a\\e[2J"\nx-unknown: 1\n"bad\\ekey": 2')
    checked = cli.invoke(app, ["validate", str(config)])
    assert checked.exit_code == 2
    assert "'bad\\x1bkey'" in checked.stderr
    config = _languages(tmp_path, "name: Multilingual support",
                        'name: "Bot\\e]0;owned\\a\\e[2J"')
    chatted = cli.invoke(app, ["chat", str(config), "-m", "Hola, ¿cómo estás?"])
    assert chatted.exit_code == 0, chatted.output
    assert "\x1b" not in chatted.output and "\x07" not in chatted.output
    assert chatted.stderr.startswith("Bot\\x1b]0;owned\\x07\\x1b[2J - ")


def test_the_junit_report_is_valid_xml_whatever_the_config_says(
        cli: CliRunner, tmp_path: Path) -> None:
    config = _languages(tmp_path, "name: Multilingual support",
                        'name: "Bot\\e]0;owned\\a\\e[2J"')
    transcript = tmp_path / "t.yaml"
    transcript.write_text("name: fails\nturns:\n  - user: Hola, ¿cómo estás?\n"
                          "    expect: {agent: french}\n", encoding="utf-8")
    report = tmp_path / "report.xml"
    result = cli.invoke(app, ["replay", str(config), str(transcript), "--junit", str(report)])
    assert result.exit_code == 1, result.output
    suite = ET.parse(report).getroot().find("testsuite")  # raises on invalid XML
    assert suite is not None
    assert suite.get("name") == "replay Bot\\x1b]0;owned\\x07\\x1b[2J"


def test_an_agent_name_read_from_the_store_is_shown_inert(
        cli: CliRunner, tmp_path: Path) -> None:
    from routing_runner.stores.sqlite import SQLiteStore

    config = _languages(tmp_path)

    async def store_odd_agent() -> None:
        # As another tool (or another config) may have written it.
        store = SQLiteStore(tmp_path / "s.db")
        await store.set_active_agent("odd", f"agent{ESCAPES}")
        await store.close()

    asyncio.run(store_odd_agent())
    for arguments in (["list", str(config)], ["show", str(config), "odd"]):
        result = cli.invoke(app, ["sessions", *arguments])
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output
        assert "agent\\x1b]0;owned\\x07\\x1b[2J" in result.output


# -- the first hour (item 21) -----------------------------------------------------------------


def test_version_prints_the_version_and_the_sdks(cli: CliRunner) -> None:
    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"routing-runner {__version__} (openai-agents 0.24")


def test_shell_completion_completes_commands() -> None:
    script = Path(sys.executable).parent / "routing-runner"
    shown = subprocess.run([script, "--show-completion", "bash"], capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "_ROUTING_RUNNER_COMPLETE=complete_bash" in shown.stdout
    env = {**os.environ, "_ROUTING_RUNNER_COMPLETE": "complete_bash",
           "COMP_WORDS": "routing-runner sessions l", "COMP_CWORD": "2"}
    completed = subprocess.run([script], capture_output=True, text=True, env=env, timeout=60)
    assert completed.stdout.split() == ["list"]


def _on_a_terminal(*args: str, term: str) -> bytes:
    """Everything `routing-runner ARGS` writes to stdout when stdout is a terminal."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": term}
    controller, terminal = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "routing_runner", *args], stdout=terminal,
                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env) as run:
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is done writing
                break
            if not chunk:
                break
            output += chunk
        assert run.wait(timeout=300) == 0
    os.close(controller)
    return output


def test_a_dumb_terminal_gets_no_colour(tmp_path: Path) -> None:
    config = _languages(tmp_path)
    args = ("chat", str(config), "-m", "Hola, ¿cómo estás?")
    assert b"\x1b[" in _on_a_terminal(*args, term="xterm-256color")
    dumb = _on_a_terminal(*args, term="dumb")
    assert b"spanish: [offline model]" in dumb
    assert b"\x1b[" not in dumb


def test_validate_says_when_the_meaning_checks_could_not_run(
        cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, "version: 1\nentry: nobody\nmodel: {timeout: soon}\n"
                                    "agents:\n  bot: {instructions: hi}\n")
    result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{config}:3:18: model.timeout: expected a number, got a string ('soon')",
        "1 error found; nothing was run.",
        "The meaning checks (handoff targets, the entry agent, instruction files) run once "
        "these are fixed."]


def test_an_exported_transcript_finds_its_schema_wherever_it_is_saved(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _languages(tmp_path)
    cli.invoke(app, ["chat", str(config), "-s", "t1", "-m", "Hola, ¿cómo estás?"])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    exported = cli.invoke(app, ["sessions", "export", str(config), "t1", "-f", "transcript"])
    assert exported.exit_code == 0, exported.output
    saved = tmp_path / "tests" / "regressions" / "t1.yaml"
    saved.parent.mkdir(parents=True)
    saved.write_text(exported.stdout, encoding="utf-8")
    reference = exported.stdout.splitlines()[0].removeprefix("# yaml-language-server: $schema=")
    # As an editor resolves it: a URL as it is, a relative path from the file's folder.
    parts = urlsplit(reference)
    schema = Path(unquote(parts.path)) if parts.scheme == "file" else saved.parent / reference
    assert schema.resolve() == (REPO / "schemas" / "transcript.schema.json")
