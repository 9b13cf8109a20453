"""Environment interpolation in config values."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing_runner.config import load_config
from routing_runner.errors import ConfigError

from .conftest import FIXTURES, write_config

ENV_CONFIG = FIXTURES / "configs" / "valid" / "env_interpolation.yaml"


def test_defaults_apply_when_variables_are_unset() -> None:
    config = load_config(ENV_CONFIG, env={}).config
    assert config.model.provider == "offline"
    assert config.model.name == "gpt-4.1-mini"
    assert config.model.settings.temperature == 0.25


def test_set_variables_replace_defaults_and_unquoted_numbers_stay_numbers() -> None:
    env = {"RR_TEST_PROVIDER": "openai", "RR_TEST_MODEL": "gpt-5", "RR_TEST_TEMPERATURE": "1.5"}
    config = load_config(ENV_CONFIG, env=env).config
    assert (config.model.provider, config.model.name) == ("openai", "gpt-5")
    assert config.model.settings.temperature == 1.5


def test_colon_dash_default_also_covers_an_empty_variable() -> None:
    config = load_config(ENV_CONFIG, env={"RR_TEST_PROVIDER": ""}).config
    assert config.model.provider == "offline"


def test_plain_dash_default_keeps_an_empty_variable_empty() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(ENV_CONFIG, env={"RR_TEST_MODEL": ""})
    assert [str(p) for p in raised.value.problems] == [
        f"{ENV_CONFIG}:4:9: model.name: must not be empty"]


def test_double_dollar_is_a_literal_dollar() -> None:
    config = load_config(ENV_CONFIG, env={}).config
    assert config.agents["bot"].instructions == "Prices are in $ (US dollars)."


def test_notes_and_keys_are_never_interpolated(tmp_path: Path) -> None:
    path = write_config(tmp_path, "entry: bot\nx-note: uses ${UNSET_VARIABLE}\n"
                                  "agents:\n  bot:\n    instructions: hi\n")
    assert load_config(path, env={}).config.entry == "bot"


def test_an_interpolated_value_is_checked_by_the_schema_and_shown_as_written(
        tmp_path: Path) -> None:
    path = write_config(tmp_path, "entry: bot\nmodel:\n  settings:\n    temperature: ${T}\n"
                                  "agents:\n  bot:\n    instructions: hi\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"T": "9"})
    assert [str(p) for p in raised.value.problems] == [
        f"{path}:4:18: model.settings.temperature: must be at most 2, got '${{T}}'"]
