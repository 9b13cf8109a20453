"""Shared fixtures: every test runs offline, with its own data folder and no API key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No key, no tracing export, no colour, sessions under the test's own folder."""
    data_home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ROUTING_RUNNER_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    yield data_home


@pytest.fixture
def cli() -> CliRunner:
    """Runs the real Typer app in-process, stdout and stderr kept apart."""
    return CliRunner()


def write_config(folder: Path, text: str, name: str = "bot.yaml") -> Path:
    """Write a config file into `folder` and return its path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
