"""The one home of wording and style: plurals, hints, durations, and when to use colour."""

from __future__ import annotations

import io

import pytest

from routing_runner.wording import Style, count, did_you_mean, format_duration, use_colour


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_count_pluralises_with_an_s_unless_told_otherwise() -> None:
    assert [count(1, "agent"), count(2, "agent"), count(0, "match", "matches")] == \
        ["1 agent", "2 agents", "0 matches"]


def test_did_you_mean_names_the_closest_choice_or_nothing() -> None:
    assert did_you_mean("spanosh", ["spanish", "french"]) == " (did you mean 'spanish'?)"
    assert did_you_mean("zzz", ["spanish"]) == ""


def test_durations_use_the_largest_whole_unit() -> None:
    assert [format_duration(s) for s in (604800, 86400 * 2, 5400, 45)] == \
        ["1w", "2d", "90m", "45s"]


@pytest.mark.parametrize(("env", "expected"), [
    ({}, True),
    ({"NO_COLOR": ""}, False),
    ({"TERM": "dumb"}, False),
    ({"TERM": "xterm-256color"}, True),
])
def test_colour_only_on_a_terminal_without_no_color_or_a_dumb_term(
        env: dict[str, str], expected: bool) -> None:
    assert use_colour(_Terminal(), env) is expected


def test_no_colour_when_the_stream_is_not_a_terminal() -> None:
    assert use_colour(io.StringIO(), {}) is False


def test_a_disabled_style_leaves_text_alone() -> None:
    plain, styled = Style(enabled=False), Style(enabled=True)
    assert plain.agent("triage") == "triage"
    assert styled.agent("triage") == "\x1b[1;36mtriage\x1b[0m"
