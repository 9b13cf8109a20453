"""`routing-runner graph` through the real entry point: golden drawings, coverage from a real
replay report, a stored conversation's path, errors, and no Agents SDK loaded."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from routing_runner.cli import app

from .conftest import REPO, write_config

LANGUAGES = REPO / "configs" / "languages.yaml"
GOLDEN = Path(__file__).resolve().parent / "data" / "graph"
README = REPO / "README.md"
REGENERATE = "regenerate with `routing-runner graph configs/languages.yaml ... > {}` if intended"


def _graph(cli: CliRunner, *args: str | Path) -> Result:
    return cli.invoke(app, ["graph", *map(str, args)])


def _report(cli: CliRunner, folder: Path) -> Path:
    """A real `replay --json` report of the example transcripts (offline model)."""
    report = folder / "report.json"
    result = cli.invoke(app, ["replay", str(LANGUAGES), str(REPO / "configs" / "transcripts"),
                              "--json", str(report)])
    assert result.exit_code == 0, result.output
    return report


@pytest.mark.parametrize(("fmt", "golden"), [("mermaid", "languages.mmd"),
                                             ("dot", "languages.dot")])
def test_the_graph_of_the_example_config_matches_its_golden_file(
        cli: CliRunner, fmt: str, golden: str) -> None:
    result = _graph(cli, LANGUAGES, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert result.stdout == (GOLDEN / golden).read_text(encoding="utf-8"), REGENERATE.format(golden)
    assert result.stderr == ""


def test_coverage_from_a_real_replay_report_matches_the_golden_files(
        cli: CliRunner, tmp_path: Path) -> None:
    report = _report(cli, tmp_path)
    for fmt, golden in (("mermaid", "languages.coverage.mmd"), ("dot", "languages.coverage.dot")):
        result = _graph(cli, LANGUAGES, "--format", fmt, "--coverage", report)
        assert result.exit_code == 0, result.output
        expected = (GOLDEN / golden).read_text(encoding="utf-8")
        assert result.stdout == expected, REGENERATE.format(golden)
    # The counts are the report's: every handoff step of every turn's route, and only those.
    data = json.loads(report.read_text(encoding="utf-8"))
    steps = [(a, b) for c in data["conversations"] for t in c["turns"]
             for a, b in zip(t["observed"]["route"], t["observed"]["route"][1:], strict=False)]
    text = _graph(cli, LANGUAGES, "--format", "text", "--coverage", report).stdout
    for source, target in set(steps):
        block = text.split(f"\n{source} (", 1)[1].split("\n\n", 1)[0]
        times = steps.count((source, target))
        assert re.search(rf"-> {target} +transfer_to_{target} +taken {times} times?\n", block)
    never = [f"{a} -> {b}" for a, b in data["coverage"]["never"]]
    assert text.count("never taken") == len(never) > 0


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed "
                    "(.ci/run installs it)")
def test_graphviz_reads_the_dot_output(cli: CliRunner, tmp_path: Path) -> None:
    for args in ((), ("--coverage", _report(cli, tmp_path))):
        source = _graph(cli, LANGUAGES, "--format", "dot", *args).stdout
        done = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert done.stdout.count('class="edge"') == 12


def test_the_readme_shows_the_graph_the_command_draws(cli: CliRunner) -> None:
    readme = README.read_text(encoding="utf-8")
    marker = "<!-- graph: routing-runner graph configs/languages.yaml -->\n```mermaid\n"
    assert marker in readme
    shown = readme.split(marker, 1)[1].split("```\n", 1)[0]
    assert shown == _graph(cli, LANGUAGES).stdout, "README.md: paste the command's output"


def test_a_stored_conversation_is_drawn_as_its_path(cli: CliRunner) -> None:
    chat = cli.invoke(app, ["chat", str(LANGUAGES), "--session-id", "graphpath",
                            "-m", "Hola, ¿cómo estás?", "-m", "Bonjour, comment allez-vous ?",
                            "-m", "Merci beaucoup pour votre aide"])
    assert chat.exit_code == 0, chat.output
    result = _graph(cli, LANGUAGES, "--session", "graphpath", "--format", "text")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == ("session graphpath: 3 turns, route triage > spanish; spanish > french; "
                        "french")
    assert "french (language fr, answered)" in lines
    assert "spanish (language es, answered)" in lines
    assert "english (language en)" in lines
    assert re.search(r"^  -> spanish +transfer_to_spanish +turn 1$", result.stdout, re.M)
    assert re.search(r"^  -> french +transfer_to_french +turn 2$", result.stdout, re.M)
    assert result.stdout.count("turn") == 3  # the two handoffs and the summary line
    mermaid = _graph(cli, LANGUAGES, "--session", "graphpath").stdout
    assert '  triage ==>|"transfer_to_spanish, turn 1"| spanish\n' in mermaid
    assert "  class french,spanish answered\n" in mermaid
    assert "  linkStyle 0,2,3,4,5,7,8,9,10,11 stroke:#999,color:#999\n" in mermaid


def test_graph_does_not_import_the_agents_sdk(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"version": 1, "conversations": [
        {"name": "one", "turns": [{"observed": {"route": ["triage", "french"]}}]}]}),
        encoding="utf-8")
    probe = (
        "import sys\n"
        "from routing_runner.cli import app\n"
        "for args in (['graph', sys.argv[1]], ['graph', sys.argv[1], '--format', 'dot',\n"
        "             '--coverage', sys.argv[2]], ['graph', sys.argv[1], '-f', 'text']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, (args, exit.code)\n"
        "heavy = ('agents', 'openai', 'lingua')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(loaded, file=sys.stderr)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(LANGUAGES), str(report)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "transfer_to_french\\ntaken 1 time" in done.stdout


@pytest.mark.parametrize(("content", "message"), [
    (None, "{report}: file not found"),
    ('{"version": 1,\n  "conversations": [}', "{report}:2:21: not JSON: Expecting value; "
     "--coverage takes the file `replay --json` writes"),
    ('{"version": 2, "conversations": []}', "{report}: not a `replay --json` report "
     "(version 1); --coverage takes the file it writes"),
    ('{"version": 1, "conversations": [{"name": "x", "turns": [{"observed": '
     '{"route": ["triage", "german"]}}]}]}',
     "{report}: conversation 'x' handed off triage -> german, which {config} does not "
     "declare: was it made with another config?"),
])
def test_a_bad_report_is_one_line_and_exit_2(cli: CliRunner, tmp_path: Path,
                                              content: str | None, message: str) -> None:
    report = tmp_path / "report.json"
    if content is not None:
        report.write_text(content, encoding="utf-8")
    result = _graph(cli, LANGUAGES, "--coverage", report)
    assert result.exit_code == 2
    assert result.stderr == "error: " + message.format(report=report, config=LANGUAGES) + "\n"
    assert result.stdout == ""


def test_coverage_and_session_together_or_an_unknown_session_are_exit_2(
        cli: CliRunner, tmp_path: Path) -> None:
    both = _graph(cli, LANGUAGES, "--coverage", tmp_path / "r.json", "--session", "abc")
    assert (both.exit_code, both.stderr) == (2, "error: --coverage and --session draw different "
                                                "things over the graph: give one\n")
    unknown = _graph(cli, LANGUAGES, "--session", "abc")
    assert unknown.exit_code == 2
    assert re.fullmatch(r"error: no conversation 'abc' in sqlite .*sessions\.db\n",
                        unknown.stderr)


def test_names_mermaid_reads_as_syntax_get_other_ids(cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
version: 1
name: 'Quotes "and" <b>tags</b>'
entry: end
agents:
  end:
    instructions: Route.
    handoffs: [{agent: a-b, tool_name: go-on}]
  a-b:
    instructions: Answer.
    language: pt-BR
""")
    result = _graph(cli, config)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "  %% Quotes #quot;and#quot; <b>tags</b>: 2 agents, 1 handoff, entry end",
        '  agent_0(["end · entry"])',
        '  a_b["a-b · language pt-BR"]',
        '  agent_0 -->|"go-on"| a_b',
        "  classDef entry stroke-width:3px",
        "  class agent_0 entry",
    ]
    dot = _graph(cli, config, "--format", "dot").stdout
    assert 'label="Quotes \\"and\\" <b>tags</b>: 2 agents, 1 handoff, entry end";' in dot
    assert '  "end" -> "a-b" [label="go-on"];' in dot


def test_a_handoff_history_policy_is_shown_on_its_edge(cli: CliRunner) -> None:
    config = REPO / "tests" / "fixtures" / "configs" / "valid" / "handoff_history.yaml"
    result = _graph(cli, config, "--format", "text")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:5] == [
        "triage (entry)",
        "  -> french   transfer_to_french",
        "  -> spanish  transfer_to_spanish (nested history, no tools)",
        "  -> english  transfer_to_english (last 3 turns)",
    ]
    assert "  -> triage   transfer_to_triage (this turn only)" in result.stdout
    assert '"transfer_to_english (last 3 turns)"' in _graph(cli, config).stdout
