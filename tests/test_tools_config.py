"""Tool declarations: `function:` paths resolved only when asked (`validate --check-imports`)
or before the first message of `chat` and `replay`, each failure one `file:line:col` line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.config import load_config
from routing_runner.config.imports import check_tool_imports
from routing_runner.errors import ConfigError

from .conftest import FIXTURES

CASES = sorted((FIXTURES / "configs" / "imports").glob("*.yaml"))
UNRESOLVABLE = FIXTURES / "configs" / "imports" / "unresolvable.yaml"


def _expected(case: Path) -> str:
    return case.with_suffix(".txt").read_text(encoding="utf-8").replace("{file}", str(case))


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_function_paths_that_do_not_resolve_are_reported_at_their_line(case: Path) -> None:
    loaded = load_config(case, env={})  # loading imports nothing: the config is valid
    with pytest.raises(ConfigError) as raised:
        check_tool_imports(loaded.config, loaded.document)
    assert "".join(f"{p}\n" for p in raised.value.problems) == _expected(case)


def test_validate_imports_nothing_unless_asked(cli: CliRunner) -> None:
    assert cli.invoke(app, ["validate", str(UNRESOLVABLE)]).exit_code == 0
    result = cli.invoke(app, ["validate", "--check-imports", str(UNRESOLVABLE)])
    assert result.exit_code == 2
    assert result.stderr == _expected(UNRESOLVABLE) + "4 errors found; nothing was run.\n"


@pytest.mark.parametrize("command", [["chat", "-m", "Hello"], ["replay"]])
def test_chat_and_replay_stop_before_the_first_message(cli: CliRunner, tmp_path: Path,
                                                       command: list[str]) -> None:
    transcript = tmp_path / "t.yaml"
    transcript.write_text("name: t\nturns: [{user: Hello, expect: {agent: triage}}]\n",
                          encoding="utf-8")
    args = [command[0], str(UNRESOLVABLE), *command[1:]]
    if command[0] == "replay":
        args.append(str(transcript))
    result = cli.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(_expected(UNRESOLVABLE))
    assert "you:" not in result.output and "session:" not in result.stderr
