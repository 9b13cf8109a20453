"""`replay --workers`: a batch spread over processes, each with its own event loop."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app

from .test_replay_batch import _batch

pytestmark = pytest.mark.slow  # processes or builds: `-m "not slow"` skips it


def test_two_workers_run_every_conversation_and_keep_the_database_whole(
        cli: CliRunner, tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 60, per_file=20)
    report = tmp_path / "report.json"
    result = cli.invoke(app, ["replay", str(config), str(transcripts), "-w", "2", "-j", "16",
                              "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "replay: 60 passed, 0 failed, 0 errors (60 conversations, 120 turns)" \
        in result.stdout
    names = sorted(c["name"] for c in json.loads(report.read_text())["conversations"])
    assert names == sorted(f"generated {i}" for i in range(60))
    with sqlite3.connect(tmp_path / "sessions.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        sessions = conn.execute("SELECT COUNT(DISTINCT session_id) FROM agent_messages")
        assert sessions.fetchone() == (60,)


def test_fail_fast_stops_the_other_workers(cli: CliRunner, tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 80, per_file=20)
    first = transcripts / "batch0000.yaml"
    first.write_text(first.read_text(encoding="utf-8").replace(
        "name: generated 0\n", "name: generated 0\nconfig: {run: {max_turns: 1}}\n"),
        encoding="utf-8")
    result = cli.invoke(app, ["replay", str(config), str(transcripts), "-w", "2", "-j", "2",
                              "--fail-fast"])
    assert result.exit_code == 3
    match = re.search(r"stopped at the first failure \(--fail-fast\): (\d+) conversations not run",
                      result.stdout)
    assert match, result.stdout
    assert int(match.group(1)) > 40  # the other worker stopped too, not just the failing one


def test_sigint_to_the_parent_stops_every_worker_and_reports(tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 240)
    process = subprocess.Popen(
        [sys.executable, "-m", "routing_runner", "replay", str(config), str(transcripts),
         "-w", "2", "-j", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if " ok generated " in line:
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted: " in stdout and "the rest were not run" in stdout
    with sqlite3.connect(tmp_path / "sessions.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_verbose_needs_a_single_worker(cli: CliRunner, tmp_path: Path) -> None:
    config, transcripts = _batch(tmp_path, 2)
    result = cli.invoke(app, ["replay", str(config), str(transcripts), "-w", "2", "-v"])
    assert result.exit_code == 2
    assert "--verbose shows conversations as they run, which needs --workers 1" in result.stderr
