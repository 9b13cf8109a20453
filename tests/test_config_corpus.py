"""The golden corpus: every valid config loads, every invalid one fails with its exact message."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing_runner.config import load_config
from routing_runner.errors import ConfigError

from .conftest import FIXTURES

VALID = sorted((FIXTURES / "configs" / "valid").glob("*.yaml"))
INVALID = sorted((FIXTURES / "configs" / "invalid").glob("*.yaml"))


def _expected(case: Path) -> str:
    return case.with_suffix(".txt").read_text(encoding="utf-8").replace("{file}", str(case))


@pytest.mark.parametrize("case", VALID, ids=[p.stem for p in VALID])
def test_valid_config_loads_with_only_its_expected_warnings(case: Path) -> None:
    loaded = load_config(case, env={})
    warnings = "".join(f"{w}\n" for w in loaded.warnings)
    expected = _expected(case) if case.with_suffix(".txt").exists() else ""
    assert warnings == expected


@pytest.mark.parametrize("case", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_reports_every_problem_with_its_location(case: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(case, env={})
    assert "".join(f"{p}\n" for p in raised.value.problems) == _expected(case)


def test_every_invalid_case_has_an_expected_message_file() -> None:
    assert INVALID, "the corpus is empty"
    assert [p for p in INVALID if not p.with_suffix(".txt").exists()] == []
