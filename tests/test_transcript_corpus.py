"""The transcript corpus: valid transcripts load, invalid ones fail with their exact messages.

Each `invalid/<case>.yaml` fails with the problems in `<case>.txt` (`{file}` is the transcript,
`{config}` the config it is checked against). A new regression is a new pair of files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing_runner.config import load_config
from routing_runner.config.model import Config
from routing_runner.config.schema import load_schema
from routing_runner.errors import ConfigError
from routing_runner.replay.load import find_transcript_files, load_transcripts
from routing_runner.replay.script import Count, HistorySeen, Restart, TextCheck, Turn

from .conftest import FIXTURES, REPO

CORPUS = FIXTURES / "transcripts"
VALID = sorted((CORPUS / "valid").glob("*.yaml"))
INVALID = sorted((CORPUS / "invalid").glob("*.yaml"))
LANGUAGES = REPO / "configs" / "languages.yaml"
EXAMPLES = sorted((REPO / "configs" / "transcripts").glob("*.yaml"))


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(LANGUAGES, env={}).config


def _expected(case: Path) -> str:
    text = case.with_suffix(".txt").read_text(encoding="utf-8")
    return text.replace("{file}", str(case)).replace("{config}", str(LANGUAGES))


@pytest.mark.parametrize("case", VALID, ids=[p.stem for p in VALID])
def test_valid_transcript_loads(case: Path, config: Config) -> None:
    assert load_transcripts([str(case)], config, env={})


@pytest.mark.parametrize("case", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_transcript_reports_every_problem_with_its_location(
        case: Path, config: Config) -> None:
    with pytest.raises(ConfigError) as raised:
        load_transcripts([str(case)], config, env={})
    assert "".join(f"{p}\n" for p in raised.value.problems) == _expected(case)


def test_every_invalid_case_has_an_expected_message_file() -> None:
    assert INVALID, "the corpus is empty"
    assert [p for p in INVALID if not p.with_suffix(".txt").exists()] == []


def test_problems_of_every_file_are_reported_together(config: Config) -> None:
    cases = [CORPUS / "invalid" / "bad_regex.yaml", CORPUS / "invalid" / "count_range.yaml"]
    with pytest.raises(ConfigError) as raised:
        load_transcripts([str(c) for c in cases], config, env={})
    assert [p.file for p in raised.value.problems] == [str(c) for c in cases]


def test_every_expectation_kind_is_read_into_typed_objects(config: Config) -> None:
    (transcript,) = load_transcripts([str(CORPUS / "valid" / "every_expectation.yaml")], config)
    (turn,) = transcript.steps
    assert isinstance(turn, Turn)
    expect = turn.expect
    assert (expect.agent, expect.route, expect.language) == (
        "spanish", ("triage", "spanish"), "es")
    assert expect.text == (
        TextCheck("contains", "Soy spanish", True), TextCheck("contains", "español", True),
        TextCheck("not_contains", "bonjour", True),
        TextCheck("matches", "mensaje de nuestra conversaci.n", True),
        TextCheck("matches", r"^\[offline model\]", True))
    assert (expect.model_calls, expect.tool_calls) == (Count(1, 2), Count(0, 0))
    assert expect.no_announced_handoff
    assert expect.history_seen == HistorySeen(Count(3, None), True)
    assert transcript.tags == ("corpus", "all-kinds")
    assert turn.location.line == 6


def test_a_restart_is_a_step_of_its_own(config: Config) -> None:
    transcripts = load_transcripts([str(CORPUS / "valid" / "multi_document.yaml")], config)
    assert [type(s).__name__ for s in transcripts[1].steps] == ["Turn", "Restart", "Turn"]
    assert isinstance(transcripts[1].steps[1], Restart)
    assert len(transcripts[1].turns) == 2


def test_overrides_change_only_that_transcripts_config(config: Config) -> None:
    (transcript,) = load_transcripts([str(CORPUS / "valid" / "overrides_anchors.yaml")], config)
    changed = transcript.config
    assert (changed.entry, changed.max_turns, changed.model.name) == ("spanish", 3, "gpt-4.1")
    assert changed.model.settings.temperature == 0
    assert [h.agent for h in changed.agents["spanish"].handoffs] == ["french"]
    assert (config.entry, config.max_turns) == ("triage", 6)
    assert transcript.overridden


def test_overrides_patch_the_loaded_document_without_reading_the_config_again(
        tmp_path: Path) -> None:
    copy = tmp_path / "languages.yaml"
    copy.write_text(LANGUAGES.read_text(encoding="utf-8"), encoding="utf-8")
    loaded = load_config(copy)
    copy.write_text("not: [a config", encoding="utf-8")  # a second read would fail here
    (transcript,) = load_transcripts([str(CORPUS / "valid" / "overrides_anchors.yaml")], loaded)
    assert (transcript.config.entry, transcript.config.max_turns) == ("spanish", 3)
    assert (loaded.config.entry, loaded.config.max_turns) == ("triage", 6)


def test_folders_are_searched_recursively_and_each_file_counted_once(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("b.yaml", "sub/a.yml", ".hidden/c.yaml", "notes.txt"):
        (tmp_path / name).write_text("x: 1\n")
    files, problems = find_transcript_files(
        [str(tmp_path), str(tmp_path / "b.yaml"), str(tmp_path / "*.yaml")])
    assert files == [tmp_path / "b.yaml", tmp_path / "sub" / "a.yml"]
    assert problems == []


def test_arguments_that_name_nothing_are_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _, problems = find_transcript_files(
        [str(tmp_path / "missing.yaml"), str(tmp_path / "empty"), str(tmp_path / "*.yml")])
    assert [p.message for p in problems] == [
        "file not found", "no transcript files (*.yaml, *.yml) in this folder",
        "no file matches this pattern"]


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_transcripts_validate_and_declare_their_schema(
        example: Path, config: Config) -> None:
    assert load_transcripts([str(example)], config, env={})
    assert example.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=../../schemas/transcript.schema.json\n")


def test_the_transcript_schema_is_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    schema = load_schema("transcript")
    Draft202012Validator.check_schema(schema)
    assert json.loads((REPO / "schemas" / "transcript.schema.json").read_text()) == schema
