"""Shared fixtures: every test runs offline, with its own data folder and no API key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routing_runner_testing.wire_server import WireServer

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No key, no tracing export or telemetry, no colour, sessions under the test's own
    folder."""
    data_home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ROUTING_RUNNER_PROVIDER",
                 "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    yield data_home


@pytest.fixture
def cli() -> CliRunner:
    """Runs the real Typer app in-process, stdout and stderr kept apart."""
    return CliRunner()


@pytest.fixture
def server() -> Iterator[WireServer]:
    """The loopback OpenAI server; strict, so a reply left unscripted fails the test."""
    with WireServer() as wire:
        yield wire


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key for the openai provider (the loopback server takes any); a module that always
    wants one says `pytestmark = pytest.mark.usefixtures("api_key")`."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def run_cli_with_few_files(*args: str, env: dict[str, str] | None = None,
                           open_files: int = 256,
                           hard_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """`routing-runner ARGS` in a process that may hold at most `open_files` files.

    With `hard_limit`, `open_files` is the soft limit only, which the process may raise.
    """
    hard = open_files if hard_limit is None else hard_limit
    probe = ("import resource, sys\n"
             f"resource.setrlimit(resource.RLIMIT_NOFILE, ({open_files}, {hard}))\n"
             "from routing_runner.cli import main\n"
             "sys.argv = ['routing-runner', *sys.argv[1:]]\n"
             "main()\n")
    return subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                          timeout=300, env=env)


def write_config(folder: Path, text: str, name: str = "bot.yaml") -> Path:
    """Write a config file into `folder` and return its path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
