"""The CLI's cheap paths: validate, schema, help - and that they never load the Agents SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from routing_runner.cli import app

from .conftest import FIXTURES, REPO

BROKEN = FIXTURES / "configs" / "invalid" / "many_shape_errors.yaml"


def test_validate_accepts_the_example_config(cli: CliRunner) -> None:
    result = cli.invoke(app, ["validate", str(REPO / "configs" / "languages.yaml")])
    assert result.exit_code == 0
    assert result.stdout.endswith("valid - 4 agents, 12 handoffs, entry 'triage'\n")


def test_validate_prints_every_problem_and_exits_2_without_traceback(cli: CliRunner) -> None:
    result = cli.invoke(app, ["validate", str(BROKEN)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 12
    assert lines[0] == f"{BROKEN}:1:10: version: must be 1, got 2"
    assert lines[-2] == "10 errors found; nothing was run."
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_validate_of_a_missing_file_is_one_line(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"{tmp_path / 'nope.yaml'}:1:1: file not found"


def test_validate_and_help_do_not_import_the_agents_sdk() -> None:
    probe = (
        "import sys\n"
        "from routing_runner.cli import app\n"
        "for args in (['--help'], ['validate', sys.argv[1]], ['schema']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, (args, exit.code)\n"
        "heavy = ('agents', 'openai', 'lingua')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(loaded, file=sys.stderr)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(REPO / "configs" / "languages.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_python_dash_m_runs_the_same_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "routing_runner", "validate",
                           str(REPO / "configs" / "languages.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "valid - 4 agents" in done.stdout


def test_schema_prints_the_config_schema(cli: CliRunner) -> None:
    result = cli.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "routing-runner config"
