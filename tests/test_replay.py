"""Replaying transcripts through the real turn runner: expectations, restarts, sessions, repeats.

Every conversation here runs on the offline model through the Agents SDK, in-process, with
the sessions in the test's own data folder.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from agents import Model

from routing_runner.config import load_config
from routing_runner.config.model import Config
from routing_runner.replay.expect import check
from routing_runner.replay.load import load_transcripts
from routing_runner.replay.plan import plan, session_id_for
from routing_runner.replay.report import summary
from routing_runner.replay.results import BatchResult, Mismatch
from routing_runner.replay.runner import Replayer, run_replay
from routing_runner.replay.stats import pass_rates
from routing_runner.runtime.graph import AgentGraph, ModelHook, build_graph
from routing_runner.runtime.providers import ResolvedProvider

from .conftest import REPO

LANGUAGES = REPO / "configs" / "languages.yaml"
HOLA = "Hola, ¿cómo estás?"


def replay_text(folder: Path, text: str, *, config: Path = LANGUAGES, repeat: int = 1,
                **options: Any) -> BatchResult:
    """Write `text` as a transcript file and replay it in-process."""
    path = folder / "transcript.yaml"
    path.write_text(text, encoding="utf-8")
    cfg = load_config(config, env={}).config
    transcripts = load_transcripts([str(path)], cfg, env={})
    options.setdefault("concurrency", 1)
    return run_replay(Replayer(plan(transcripts, repeat, env={}), cfg, **options),
                      handle_signals=False)


def one_turn(expect: str, user: str = HOLA) -> str:
    return f"name: One turn\nturns:\n  - user: {user!r}\n    expect: {expect}\n"


def mismatches(result: BatchResult) -> list[Mismatch]:
    return [m for c in result.conversations for t in c.turns for m in t.mismatches]


# -- each kind of expectation, passing and failing on the same reply --------------------------
# The reply to HOLA: triage hands off to spanish (2 model calls), which answers in Spanish:
# "[offline model] Soy spanish y te respondo en español. Has escrito: «Hola, ¿cómo estás?». ..."

PASSING = {
    "agent": "{agent: spanish}",
    "route": "{route: [triage, spanish]}",
    "contains": "{contains: [Soy spanish, primer mensaje]}",
    "contains, ignoring case": "{contains: SOY SPANISH, ignore_case: true}",
    "not_contains": "{not_contains: [français, triage]}",
    "matches": r"{matches: '^\[offline model\] Soy \w+'}",
    "matches, ignoring case": "{matches: '^\\[OFFLINE', ignore_case: true}",
    "language": "{language: es}",
    "language, region subtag": "{language: es-MX}",
    "model_calls": "{model_calls: 2}",
    "model_calls range": "{model_calls: {min: 1, max: 2}}",
    "tool_calls": "{tool_calls: 0}",
}

FAILING = {
    "agent": ("{agent: french}", Mismatch("agent", "french", "spanish")),
    "route": ("{route: [triage, french]}",
              Mismatch("route", "triage -> french", "triage -> spanish")),
    "contains": ("{contains: Je suis}", "contains"),
    "contains is case-sensitive": ("{contains: SOY SPANISH}", "contains"),
    "not_contains": ("{not_contains: Has escrito}", "not_contains"),
    "matches": ("{matches: '^Soy'}", "matches"),
    "language": ("{language: fr}", Mismatch("language", "fr", "es")),
    "model_calls": ("{model_calls: 1}", Mismatch("model_calls", "1", "2")),
    "model_calls range": ("{model_calls: {min: 3}}", Mismatch("model_calls", "at least 3", "2")),
    "tool_calls": ("{tool_calls: {min: 1}}", Mismatch("tool_calls", "at least 1", "0")),
}


@pytest.mark.parametrize("expect", PASSING.values(), ids=PASSING.keys())
def test_a_met_expectation_passes(tmp_path: Path, expect: str) -> None:
    result = replay_text(tmp_path, one_turn(expect))
    assert mismatches(result) == []
    assert result.exit_code == 0


@pytest.mark.parametrize(("expect", "missed"), FAILING.values(), ids=FAILING.keys())
def test_a_missed_expectation_fails_saying_what_happened(
        tmp_path: Path, expect: str, missed: Mismatch | str) -> None:
    result = replay_text(tmp_path, one_turn(expect))
    (found,) = mismatches(result)
    if isinstance(missed, Mismatch):
        assert found == missed
    else:
        assert found.check == missed
        assert "Soy spanish y te respondo en español." in found.got  # an excerpt of the reply
    assert result.exit_code == 1


def test_not_contains_shows_the_text_around_what_it_found() -> None:
    from routing_runner.replay.results import Observed
    from routing_runner.replay.script import Expectations, TextCheck

    text = "word " * 60 + "FORBIDDEN" + " tail" * 60
    observed = Observed("a", ("a",), text, 1, 0)
    (missed,) = check(Expectations(text=(TextCheck("not_contains", "forbidden", True),)),
                      observed)
    assert missed.got.startswith("…word") and "FORBIDDEN" in missed.got
    assert missed.got.endswith("…")


def test_every_missed_expectation_of_a_turn_is_reported(tmp_path: Path) -> None:
    result = replay_text(tmp_path, one_turn("{agent: french, language: fr, model_calls: 1}"))
    assert [m.check for m in mismatches(result)] == ["agent", "language", "model_calls"]


def test_later_turns_still_run_after_a_failed_expectation(tmp_path: Path) -> None:
    text = ("name: Two turns\nturns:\n  - user: Hola, ¿cómo estás?\n    expect: {agent: french}\n"
            "  - user: Muchas gracias por la ayuda.\n    expect: {agent: spanish}\n")
    (conversation,) = replay_text(tmp_path, text).conversations
    assert [t.status for t in conversation.turns] == ["failed", "passed"]
    assert conversation.status == "failed"


def test_a_turn_that_fails_to_run_stops_the_conversation_as_a_run_failure(
        tmp_path: Path) -> None:
    # With one model call per message, triage's handoff leaves none for the answer.
    text = ("name: No room\nconfig: {run: {max_turns: 1}}\nturns:\n"
            "  - user: Hola, ¿cómo estás?\n    expect: {agent: spanish}\n"
            "  - user: Muchas gracias.\n    expect: {agent: spanish}\n")
    result = replay_text(tmp_path, text)
    (conversation,) = result.conversations
    assert conversation.status == "error"
    assert [t.status for t in conversation.turns] == ["error"]
    assert conversation.error is not None
    assert "no agent answered within run.max_turns=1" in conversation.error
    assert result.exit_code == 3
    assert "run failed: no agent answered within run.max_turns=1" in summary(result)


# -- restarts and sessions ---------------------------------------------------------------------

RESTART = """\
name: Restart
turns:
  - user: Hola, quiero cambiar la dirección de entrega.
    expect: {agent: spanish}
  - restart
  - user: La nueva dirección es Calle Mayor 5, Madrid.
    expect: {agent: spanish}
"""


def test_memory_and_the_active_agent_survive_a_restart(tmp_path: Path) -> None:
    (conversation,) = replay_text(tmp_path, RESTART).conversations
    before, after = conversation.turns
    assert after.after_restart and not before.after_restart
    assert after.observed is not None
    assert after.observed.route == ("spanish",)  # no trip through triage: the agent was kept
    assert "Este es el mensaje n.º 2 de nuestra conversación" in after.observed.text


def test_a_restart_really_reopens_the_store(tmp_path: Path) -> None:
    # A memory store dies with its process, so after a restart the conversation starts over.
    text = RESTART.replace("turns:", "config: {session: {backend: memory}}\nturns:", 1)
    (conversation,) = replay_text(tmp_path, text).conversations
    after = conversation.turns[1].observed
    assert after is not None
    assert after.route == ("triage", "spanish")
    assert "Este es el primer mensaje" in after.text


def test_session_ids_are_derived_from_the_name(tmp_path: Path) -> None:
    config = load_config(LANGUAGES, env={}).config
    path = tmp_path / "t.yaml"
    path.write_text(RESTART.replace("name: Restart", "name: Ça marche, ¡olé!"), encoding="utf-8")
    (transcript,) = load_transcripts([str(path)], config)
    assert session_id_for(transcript) == "replay-ca-marche-ole-" + _hash("Ça marche, ¡olé!")
    assert session_id_for(transcript, 2, 3).endswith("-r2")
    assert session_id_for(transcript) == session_id_for(transcript)


def _hash(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()[:8]


def _stored_messages(data_home: Path, session_id: str) -> int:
    with sqlite3.connect(data_home / "routing-runner" / "sessions.db") as db:
        row = db.execute("SELECT COUNT(*) FROM agent_messages WHERE session_id = ?",
                         (session_id,)).fetchone()
    return int(row[0])


def test_a_rerun_starts_from_a_fresh_session_and_leaves_it_to_inspect(
        tmp_path: Path, isolated_environment: Path) -> None:
    first = replay_text(tmp_path, RESTART)
    second = replay_text(tmp_path, RESTART)
    assert first.exit_code == second.exit_code == 0
    texts = [[t.observed.text for t in r.conversations[0].turns if t.observed]
             for r in (first, second)]
    assert texts[0] == texts[1]
    session_id = second.conversations[0].job.session_id
    # Two user messages and replies, one handoff (a call and its output): kept after the run.
    assert _stored_messages(isolated_environment, session_id) == 6


def test_a_rerun_starts_with_the_entry_agent_again(tmp_path: Path) -> None:
    french = one_turn("{agent: french}", user="Bonjour, je voudrais réserver une table.")
    replay_text(tmp_path, french)
    # Same name, same session: the stored "last agent" (french) must not answer first.
    result = replay_text(tmp_path, one_turn("{route: [triage, spanish]}"))
    assert mismatches(result) == []


# -- repeats -------------------------------------------------------------------------------------


def test_repeat_runs_each_transcript_in_sessions_of_its_own(tmp_path: Path) -> None:
    result = replay_text(tmp_path, RESTART, repeat=3, concurrency=3)
    ids = [c.job.session_id for c in result.conversations]
    assert [i[-3:] for i in ids] == ["-r1", "-r2", "-r3"]
    assert result.count("passed") == 3
    assert [(r.turn, r.passed, r.runs) for r in pass_rates(result)] == [(1, 3, 3), (2, 3, 3)]


def test_repeat_shows_flaky_routing_as_a_pass_rate(tmp_path: Path) -> None:
    from routing_runner.runtime.offline.model import OfflineModel

    decisions = itertools.count()

    class CoinFlipTriage(OfflineModel):
        """Every other decision is made without the Spanish agent: triage then answers."""

        def decide(self, input: Any, handoffs: Any, settings: Any) -> Any:
            if next(decisions) % 2:
                handoffs = [h for h in handoffs if h.agent_name != "spanish"]
            return super().decide(input, handoffs, settings)

    def coin_flip(name: str, model: Model) -> Model:
        if name != "triage":
            return model
        assert isinstance(model, OfflineModel)
        return CoinFlipTriage(model.agent, model.profiles)

    def build(config: Config, provider: ResolvedProvider, gate: ModelHook) -> AgentGraph:
        return build_graph(config, provider, wrap_model=lambda name, model:
                           gate(name, coin_flip(name, model)))

    result = replay_text(tmp_path, one_turn("{agent: spanish}"), repeat=4, build=build)
    (rate,) = pass_rates(result)
    assert (rate.passed, rate.runs) == (2, 4)
    assert "pass rate per turn (4 runs each):\n  2/4  One turn, turn 1 (" in summary(result)
    assert result.exit_code == 1


# -- the progress line -----------------------------------------------------------------------------


def test_progress_on_a_terminal_is_one_redrawn_line_cleared_at_the_end(tmp_path: Path) -> None:
    import io

    from routing_runner.replay.report import Progress

    result = replay_text(tmp_path, RESTART, repeat=2)
    first, second = result.conversations
    stream = io.StringIO()
    progress = Progress(stream, 2, live=True, clock=itertools.count().__next__)
    progress.started(first.job)
    progress.started(second.job)
    progress.finished(first)
    progress.finished(second)
    progress.close()
    frames = stream.getvalue().split("\r")
    assert frames[1:5] == ["replay: 0/2 done, 0 failed, 1 running",
                           "replay: 0/2 done, 0 failed, 2 running",
                           "replay: 1/2 done, 0 failed, 1 running",
                           "replay: 2/2 done, 0 failed, 0 running"]
    assert frames[-2].strip() == "" and frames[-1] == ""  # the line is blanked, cursor home


def test_progress_off_a_terminal_is_a_plain_line_per_conversation(tmp_path: Path) -> None:
    import io

    from routing_runner.replay.report import Progress

    result = replay_text(tmp_path, RESTART)
    stream = io.StringIO()
    progress = Progress(stream, 1, live=False)
    progress.started(result.conversations[0].job)
    progress.finished(result.conversations[0])
    progress.close()
    assert re.fullmatch(r"\[1/1\] ok Restart \(\d+\.\d\ds\)\n", stream.getvalue())


def test_a_bug_stops_the_batch_and_surfaces_instead_of_being_counted(tmp_path: Path) -> None:
    def broken(_: object) -> None:
        raise ZeroDivisionError("a bug in a callback")

    with pytest.raises(ZeroDivisionError, match="a bug in a callback"):
        replay_text(tmp_path, RESTART, repeat=4, concurrency=2, on_finish=broken)
