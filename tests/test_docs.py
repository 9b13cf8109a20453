"""Tests that keep the docs and examples honest."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from routing_runner.cli import app
from routing_runner.config import load_config

from .conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if not p.name.startswith("."))


def _commands() -> dict[str, Any]:
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_example_config_validates_and_declares_its_schema(config: Path) -> None:
    load_config(config, env={})
    assert config.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=../schemas/config.schema.json\n")


def test_every_command_has_help_and_is_in_the_readme() -> None:
    for name, command in _commands().items():
        assert command.help, name
        assert f"routing-runner {name}" in README, name


def test_readme_first_screen_gives_install_and_chat_then_tests() -> None:
    first_screen = "\n".join(README.splitlines()[:30])
    assert "pip install . && routing-runner chat configs/languages.yaml" in first_screen
    assert re.search(r"<!-- test-command -->\n```sh\n.*python -m pytest", first_screen)
