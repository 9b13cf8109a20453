"""Language identification for the offline model, measured on the lingua test sample.

The sample (tests/data/langid, see NOTICE) is web prose, not chat, so these are floors that
catch a regression (a wrong threshold, a broken candidate set), not a product claim.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing_runner.runtime.offline.language_id import detect

DATA = Path(__file__).resolve().parent / "data" / "langid"
CONFIGURED = ["en", "fr", "es"]


def _rows(name: str, languages: set[str]) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r["lang"] in languages]


def _outcomes(rows: list[dict[str, str]]) -> tuple[float, float]:
    """Share of rows detected right, and share detected as another configured language."""
    found = [detect(r["text"], CONFIGURED).language for r in rows]
    right = sum(f == r["lang"] for f, r in zip(found, rows, strict=True))
    wrong = sum(f is not None and f != r["lang"] and f in CONFIGURED
                for f, r in zip(found, rows, strict=True))
    return right / len(rows), wrong / len(rows)


def test_sentences_in_configured_languages_are_routed_right() -> None:
    right, wrong = _outcomes(_rows("sentences.jsonl", set(CONFIGURED)))
    assert right >= 0.98
    assert wrong <= 0.01


def test_two_word_messages_are_mostly_routed_and_rarely_misrouted() -> None:
    right, wrong = _outcomes(_rows("word-pairs.jsonl", set(CONFIGURED)))
    assert right >= 0.85
    assert wrong <= 0.03


def test_sentences_in_unconfigured_languages_are_rarely_taken_for_configured_ones() -> None:
    _, misrouted = _outcomes(_rows("sentences.jsonl", {"de", "it", "pt"}))
    assert misrouted <= 0.05


@pytest.mark.parametrize("text", ["?", "12345", "", "👍 :-)"])
def test_messages_without_language_are_uncertain(text: str) -> None:
    assert detect(text, CONFIGURED).language is None


def test_regional_tags_route_on_their_primary_language() -> None:
    assert detect("Olá, preciso de ajuda com a minha encomenda, por favor.",
                  ["pt-BR", "es"]).language == "pt"
