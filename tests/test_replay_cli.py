"""`routing-runner replay` through the real entry point: output, reports, selection, exit codes."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner, Result

from routing_runner.cli import app

from .conftest import REPO, write_config

LANGUAGES = str(REPO / "configs" / "languages.yaml")
EXAMPLES = str(REPO / "configs" / "transcripts")

WRONG = """\
name: Wrong agent
tags: [wrong]
turns:
  - user: Hola, ¿cómo estás?
    expect: {agent: french, route: [triage, french], contains: Je suis}
"""
RIGHT = """\
name: Right agent
tags: [right, spanish]
turns:
  - user: Hola, ¿cómo estás?
    expect: {agent: spanish}
---
name: Also right
tags: [right]
turns:
  - user: Bonjour, comment allez-vous ?
    expect: {agent: french}
"""
SUMMARY = re.compile(r"^replay: (\d+) passed, (\d+) failed, (\d+) errors?(?:, (\d+) not run)? "
                     r"\((\d+) conversations?, (\d+) turns?\) in [\d.]+s$", re.MULTILINE)


def _transcripts(folder: Path, **files: str) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def _replay(cli: CliRunner, *args: str | Path) -> Result:
    return cli.invoke(app, ["replay", *map(str, args)])


def _counts(output: str) -> dict[str, int]:
    match = SUMMARY.search(output)
    assert match, output
    passed, failed, errors, not_run, conversations, turns = match.groups()
    return {"passed": int(passed), "failed": int(failed), "errors": int(errors),
            "not_run": int(not_run or 0), "conversations": int(conversations),
            "turns": int(turns)}


def test_the_example_transcripts_pass_offline(cli: CliRunner) -> None:
    result = _replay(cli, LANGUAGES, EXAMPLES)
    assert result.exit_code == 0, result.output
    counts = _counts(result.stdout)
    assert counts["passed"] == counts["conversations"] >= 9
    assert (counts["failed"], counts["errors"]) == (0, 0)
    assert "FAILED" not in result.stdout


def test_a_wrong_expectation_exits_1_with_a_diff_of_expected_and_got(
        cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", wrong=WRONG)
    result = _replay(cli, LANGUAGES, folder)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("FAILED Wrong agent")))
    assert lines[start].startswith(f"FAILED Wrong agent ({folder / 'wrong.yaml'}:1) session "
                                   "replay-wrong-agent-")
    assert lines[start + 1:start + 8] == [
        f"  turn 1 ({folder / 'wrong.yaml'}:4): you: \"Hola, ¿cómo estás?\"",
        "  - agent: french",
        "  + agent: spanish",
        "  - route: triage -> french",
        "  + route: triage -> spanish",
        "  - contains: 'Je suis'",
        "  + text: \"[offline model] Soy spanish y te respondo en español. Has escrito: "
        "«Hola, ¿cómo estás?». Este es el primer mensaje de nu…\"",
    ]
    assert _counts(result.stdout)["failed"] == 1


def test_context_lines_show_what_happened_beside_the_missed_check(
        cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", lang=WRONG.replace(
        "{agent: french, route: [triage, french], contains: Je suis}", "{language: fr}"))
    result = _replay(cli, LANGUAGES, folder)
    assert "  - language: fr\n  + language: es\n    agent: spanish\n" \
           "    route: triage -> spanish\n    text: \"[offline model] Soy spanish" in result.stdout


def test_junit_report_parses_and_lists_the_failure(cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", wrong=WRONG, right=RIGHT)
    junit = tmp_path / "report.xml"
    result = _replay(cli, LANGUAGES, folder, "--junit", junit)
    assert result.exit_code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"Wrong agent", "Right agent", "Also right"}
    failure = cases["Wrong agent"].find("failure")
    assert failure is not None
    assert failure.get("message") == ("turn 1: expected agent french, got spanish "
                                      "(and 2 more checks)")
    assert "  - agent: french\n  + agent: spanish" in (failure.text or "")
    assert cases["Right agent"].find("failure") is None
    assert cases["Wrong agent"].get("file") == str(folder / "wrong.yaml")


def test_json_report_matches_the_terminal_summary(cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", wrong=WRONG, right=RIGHT)
    report = tmp_path / "report.json"
    result = _replay(cli, LANGUAGES, folder, "--json", report)
    data = json.loads(report.read_text(encoding="utf-8"))
    counts = _counts(result.stdout)
    totals = data["totals"]
    assert {k: totals[k] for k in counts} == {**counts, "errors": totals["errors"]}
    assert totals["errors"] == counts["errors"]
    assert data["exit_code"] == result.exit_code == 1
    (failing,) = [c for c in data["conversations"] if c["status"] == "failed"]
    for failure in failing["turns"][0]["failures"]:
        if failure["check"] in ("agent", "route"):
            assert f"  - {failure['check']}: {failure['expected']}\n" \
                   f"  + {failure['check']}: {failure['got']}\n" in result.stdout
    turn = failing["turns"][0]
    assert turn["observed"]["route"] == ["triage", "spanish"]
    assert turn["seconds"] > 0 and failing["seconds"] >= turn["seconds"]
    taken = {tuple(edge) for edge in data["coverage"]["taken"]}
    assert taken == {("triage", "spanish"), ("triage", "french")}


def test_json_to_stdout_moves_the_summary_to_stderr(cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", right=RIGHT)
    result = _replay(cli, LANGUAGES, folder, "--json", "-")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["totals"]["passed"] == 2
    assert _counts(result.stderr)["passed"] == 2


def test_coverage_names_the_declared_handoffs_no_conversation_took(
        cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", right=RIGHT)
    result = _replay(cli, LANGUAGES, folder)
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("handoff coverage:")]
    assert line.startswith("handoff coverage: 2 of 12 edges taken; never taken: "
                           "triage -> english, french -> spanish, ")


def test_k_selects_by_name_ignoring_case(cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", wrong=WRONG, right=RIGHT)
    result = _replay(cli, LANGUAGES, folder, "-k", "ALSO")
    assert result.exit_code == 0
    assert _counts(result.stdout)["conversations"] == 1
    assert "ok Also right" in result.stderr


def test_tag_selects_transcripts_carrying_it(cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", wrong=WRONG, right=RIGHT)
    result = _replay(cli, LANGUAGES, folder, "--tag", "spanish", "--tag", "wrong")
    assert _counts(result.stdout)["conversations"] == 2
    assert result.exit_code == 1


def test_a_selection_of_nothing_is_exit_2_with_a_hint(cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", right=RIGHT)
    result = _replay(cli, LANGUAGES, folder, "--tag", "spanihs")
    assert result.exit_code == 2
    assert result.stderr == ("error: no transcript matches --tag 'spanihs' among the 2 loaded "
                             "(did you mean 'spanish'?)\n")


def test_fail_fast_stops_at_the_first_failing_conversation(
        cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", a_wrong=WRONG, b_right=RIGHT)
    result = _replay(cli, LANGUAGES, folder, "--fail-fast", "-j", "1")
    assert result.exit_code == 1
    counts = _counts(result.stdout)
    assert (counts["failed"], counts["passed"], counts["not_run"]) == (1, 0, 2)
    assert "stopped at the first failure (--fail-fast): 2 conversations not run" in result.stdout


def test_repeat_runs_every_transcript_n_times(cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", right=RIGHT)
    result = _replay(cli, LANGUAGES, folder, "--repeat", "3", "-j", "6")
    assert result.exit_code == 0
    assert _counts(result.stdout)["passed"] == 6
    assert "pass rate per turn (3 runs each):\n  2 other turns passed 3/3\n" in result.stdout


def test_every_transcript_is_checked_before_any_model_call(
        cli: CliRunner, tmp_path: Path, isolated_environment: Path) -> None:
    folder = _transcripts(tmp_path / "t", right=RIGHT, broken=RIGHT.replace(
        "name: Also right", "name: Also right\ntgas: [x]").replace("Right agent", "R"))
    result = _replay(cli, LANGUAGES, folder)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{folder / 'broken.yaml'}:8:1: tgas: unknown key 'tgas' (did you mean 'tags'?)",
        "1 error found in the transcripts; nothing was run."]
    assert result.stdout == ""
    assert not (isolated_environment / "routing-runner").exists()  # no session was opened


def test_a_bad_config_is_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, "entry: nobody\nagents: {a: {instructions: hi}}\n")
    result = _replay(cli, config, EXAMPLES)
    assert result.exit_code == 2
    assert "entry: 'nobody' is not an agent" in result.stderr


def test_a_run_failure_is_exit_3_and_said_clearly(cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", right=RIGHT, tight=WRONG.replace(
        "name: Wrong agent", "name: Tight\nconfig: {run: {max_turns: 1}}"))
    junit = tmp_path / "report.xml"
    result = _replay(cli, LANGUAGES, folder, "--junit", junit)
    assert result.exit_code == 3
    (error,) = ET.parse(junit).getroot().iter("error")
    assert error.get("type") == "RunFailure"
    assert (error.get("message") or "").startswith(
        "turn 1: run failed: no agent answered within run.max_turns=1")
    assert f"ERROR Tight ({folder / 'tight.yaml'}:1) session replay-tight-" in result.stdout
    assert "    run failed: no agent answered within run.max_turns=1 model calls" \
        in result.stdout
    counts = _counts(result.stdout)
    assert (counts["errors"], counts["passed"]) == (1, 2)


def test_a_provider_that_cannot_work_is_exit_3_before_any_run(
        cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", online=RIGHT.replace(
        "name: Right agent", "name: Online\nconfig: {model: {provider: openai}}"))
    result = _replay(cli, LANGUAGES, folder)
    assert result.exit_code == 3
    assert "OPENAI_API_KEY" in result.stderr
    assert "replay:" not in result.stdout


def test_a_store_that_cannot_open_is_exit_3_before_any_run(
        cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    config = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8").replace(
        "  backend: sqlite", f"  backend: sqlite\n  path: {tmp_path / 'file' / 'sessions.db'}")
    result = _replay(cli, write_config(tmp_path, config), EXAMPLES)
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1].startswith("error: ")
    assert "replay:" not in result.stdout


def test_a_report_into_a_missing_folder_is_exit_2_before_any_run(
        cli: CliRunner, tmp_path: Path) -> None:
    result = _replay(cli, LANGUAGES, EXAMPLES, "--junit", tmp_path / "no" / "r.xml")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_verbose_shows_each_conversation_as_chat_would(cli: CliRunner, tmp_path: Path) -> None:
    folder = _transcripts(tmp_path / "t", right=RIGHT)
    result = _replay(cli, LANGUAGES, folder, "-v", "-j", "1", "-k", "right agent")
    assert result.exit_code == 0
    assert "you: Hola, ¿cómo estás?\n  [handoff] triage -> spanish\nspanish: [offline model] " \
           "Soy spanish" in result.stdout


def test_replay_has_help_for_every_option(cli: CliRunner) -> None:
    result = cli.invoke(app, ["replay", "--help"])
    assert result.exit_code == 0
    for option in ("--concurrency", "-k", "--tag", "--fail-fast", "--repeat", "--json",
                   "--junit", "--verbose"):
        assert option in result.stdout
