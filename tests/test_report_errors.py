"""A replay report that cannot be written: one line and exit 3, after the run's own summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

LANGUAGES = str(REPO / "configs" / "languages.yaml")
TRANSCRIPT = """\
name: Spanish
turns:
  - user: Hola, ¿cómo estás?
    expect: {agent: spanish}
"""


def _replay(tmp_path: Path, *args: str, stdout: int | None = subprocess.PIPE
            ) -> subprocess.CompletedProcess[str]:
    transcript = tmp_path / "t.yaml"
    transcript.write_text(TRANSCRIPT, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "routing_runner", "replay", LANGUAGES, str(transcript), *args],
        stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")})


@pytest.mark.parametrize(("option", "target", "reason"), [
    ("--junit", "folder", "Is a directory"),
    ("--json", "folder", "Is a directory"),
    ("--junit", "/dev/full", "No space left on device"),
    ("--json", "/dev/full", "No space left on device"),
])
def test_a_report_that_cannot_be_written_is_one_line_and_exit_3_after_the_summary(
        tmp_path: Path, option: str, target: str, reason: str) -> None:
    if target == "folder":
        target = str(tmp_path / "reports")
        Path(target).mkdir()
    done = _replay(tmp_path, option, target)
    assert done.returncode == 3, done.stderr
    assert "replay: 1 passed, 0 failed, 0 errors" in done.stdout
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == \
        f"error: {option} {target}: cannot write the report: {reason}"


def test_a_json_report_on_a_full_stdout_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with open("/dev/full", "w", encoding="utf-8") as full:
        done = _replay(tmp_path, "--json", "-", stdout=full.fileno())
    assert done.returncode == 3, done.stderr
    assert "replay: 1 passed, 0 failed, 0 errors" in done.stderr  # the summary went there
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert done.stderr.splitlines()[-1] == \
        "error: --json -: cannot write the report: No space left on device"


def test_a_summary_that_cannot_be_printed_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with open("/dev/full", "w", encoding="utf-8") as full:
        done = _replay(tmp_path, stdout=full.fileno())
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert done.stderr.splitlines()[-1] == \
        "error: the summary on stdout: cannot write the report: No space left on device"
