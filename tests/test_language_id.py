"""Language identification for the offline model: lexicon, guard set, gates, what is loaded.

The accuracy floors run on the tuning split of the lingua test sample (tests/data/langid, see
NOTICE and SOURCE.md): web prose, not chat, so they catch a regression (a wrong gate, a broken
guard set), not a product claim. The held-out figures are bench/offline.py's (README).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from routing_runner.runtime.offline import lexicon, vocabulary
from routing_runner.runtime.offline.language_id import detect, guard_set, wide_languages

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


def test_two_word_messages_are_rarely_misrouted_and_unconfigured_ones_are_kept() -> None:
    rows = _rows("word-pairs.jsonl", {"en", "fr", "es", "de", "it", "pt", "ru", "ar", "zh", "ja"})
    found = [detect(r["text"], CONFIGURED).language for r in rows]
    routed = [f if f in CONFIGURED else None for f in found]
    expected = [r["lang"] if r["lang"] in CONFIGURED else None for r in rows]
    right = sum(g == e for g, e in zip(routed, expected, strict=True)) / len(rows)
    wrong = sum(g is not None and g != e for g, e in zip(routed, expected, strict=True))
    assert right >= 0.85
    assert wrong / len(rows) <= 0.01


def test_sentences_in_unconfigured_languages_are_rarely_taken_for_configured_ones() -> None:
    _, misrouted = _outcomes(_rows("sentences.jsonl", {"de", "it", "pt"}))
    assert misrouted <= 0.05


@pytest.mark.parametrize("text", ["?", "12345", "", "👍 :-)"])
def test_messages_without_language_are_uncertain(text: str) -> None:
    assert detect(text, CONFIGURED).language is None


def test_regional_tags_route_on_their_primary_language() -> None:
    assert detect("Olá, preciso de ajuda com a minha encomenda, por favor.",
                  ["pt-BR", "es"]).language == "pt"


def test_portuguese_is_recognised_as_portuguese_not_taken_for_spanish() -> None:
    assert detect("Mas onde será que ele se escondeu?", CONFIGURED).language == "pt"
    assert detect("Olá, tudo bem?", CONFIGURED).language == "pt"


def test_function_words_name_a_language_and_shared_ones_count_in_parts() -> None:
    scores = lexicon.function_words("Ho un problema con il mio ordine")
    assert max(scores, key=scores.__getitem__) == "it"
    # "que" is French, Spanish, Portuguese and Catalan: a quarter each.
    assert lexicon.function_words("que") == {"fr": 0.25, "es": 0.25, "pt": 0.25, "ca": 0.25}
    assert lexicon.function_words("password reset") == {}


def test_a_clean_sentence_the_trigram_look_misreads_is_routed_on_its_function_words() -> None:
    # The trigram-only wide look calls it Italian; "how", "do", "I", "my" are English.
    assert detect("How do I reset my password?", CONFIGURED).language == "en"
    assert detect("Je n'arrive pas à me connecter", CONFIGURED).language == "fr"


def test_word_lists_hold_each_languages_most_common_words_with_their_frequency() -> None:
    lists = vocabulary.lists_for(["en", "pt", "xx"])
    assert set(lists) == {"en", "pt"}  # no list for an unknown language
    # wordfreq's small English list holds fewer one-word entries than SIZE: all of them.
    assert 25_000 < len(lists["en"]) <= vocabulary.SIZE
    assert len(lists["pt"]) == vocabulary.SIZE
    # Portuguese lists both words too (loanwords), but as rare ones: the Zipf values tell.
    shares = vocabulary.coverage("education program", lists)
    assert shares["en"] == (1.0, pytest.approx(5.275))
    assert shares["pt"] == (1.0, pytest.approx(3.575))
    assert vocabulary.coverage("casa branca", lists)["pt"] == (1.0, pytest.approx(5.39))
    # A word a list does not hold counts as the rarest listed words (Zipf 1).
    assert vocabulary.coverage("casa branca", lists)["en"] == (0.5, pytest.approx(2.27))
    assert vocabulary.coverage("42 !", lists) == {}


def test_spanish_list_holds_plurals_and_verb_forms() -> None:
    lists = vocabulary.lists_for(["es", "en"])
    assert vocabulary.coverage("centros emociones tiene está", lists)["es"][0] == 1.0
    assert vocabulary.coverage("centros emociones tiene está", lists)["en"][0] == 0.0
    assert vocabulary.coverage("houses", lists)["es"][0] == 0.0


def test_word_lists_are_read_here_when_no_child_process_can_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from_child = vocabulary.lists_for(["es"])
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert vocabulary.lists_for(["es"]) == from_child == {"es": vocabulary.build("es")}


def test_two_words_route_on_the_word_list_that_holds_them() -> None:
    # Both looks hesitate on two words; English's word list holds both, Portuguese's neither.
    assert detect("education program", CONFIGURED).language == "en"
    assert detect("obrigado amigo", CONFIGURED).language == "pt"
    assert detect("casa branca", CONFIGURED).language not in CONFIGURED  # pt (or it: "branca")


def test_a_message_in_unconfigured_function_words_stays_unrouted() -> None:
    assert detect("Ho un problema con il mio ordine", CONFIGURED).language == "it"


@pytest.mark.parametrize(("text", "language"), [
    ("Hola", "es"), ("hello", "en"), ("hi", "en"), ("bonjour", "fr"), ("salut", "fr"),
    ("merci", "fr"), ("gracias", "es"), ("thanks", "en"), ("ciao", "it"), ("olá", "pt"),
    ("Merci beaucoup !", "fr"), ("¿Qué tal?", "es")])
def test_short_messages_people_send_are_known_by_the_lexicon(text: str, language: str) -> None:
    found = detect(text, CONFIGURED)
    assert (found.language, found.source) == (language, "lexicon")


def test_a_phrase_shared_by_languages_goes_to_the_one_configured() -> None:
    assert detect("hallo", ["nl", "fr"]).language == "nl"
    assert detect("hallo", ["de", "fr"]).language == "de"


def test_a_phrase_two_configured_languages_share_stays_with_the_agent_that_speaks_it() -> None:
    # Either agent can answer it: the one reading it keeps it, triage sends the likelier one.
    assert detect("hallo", ["de", "nl"], prefer="nl").language == "nl"
    assert detect("hallo", ["de", "nl"]).language == "de"
    assert detect("no", CONFIGURED, prefer="es").language == "es"
    assert detect("no", CONFIGURED).language == "en"
    # Written alike in every language: it names none.
    assert detect("ok", CONFIGURED).language is None
    assert detect("OK!", CONFIGURED, prefer="fr").language == "fr"


def test_a_greeting_with_more_words_is_routed_on_them() -> None:
    assert detect("Hola otra vez", CONFIGURED).language == "es"
    assert detect("hello again", CONFIGURED).language == "en"


def test_every_language_with_phrases_has_lexicon_entries() -> None:
    from routing_runner.runtime.offline.phrases import PHRASES

    assert set(PHRASES) <= lexicon.languages()


def test_guard_set_holds_the_languages_easily_taken_for_the_configured_ones() -> None:
    assert guard_set(CONFIGURED) == {"pt", "it", "ca", "nl", "de", "af"}
    # A configured language guards nobody against itself; regional tags use their primary.
    assert guard_set(["es", "pt-BR"]) == {"it", "ca"}


def test_the_wide_look_covers_configured_guards_and_common_languages_only() -> None:
    wide = wide_languages(CONFIGURED)
    assert {"en", "fr", "es", "pt", "ca", "af", "ru", "zh"} <= wide
    assert not {"ko", "fi", "hu", "eu"} & wide


def test_only_the_languages_the_decision_needs_are_loaded() -> None:
    """In a fresh process: full models for the configured languages, trigrams for the rest."""
    script = ("from routing_runner.runtime.offline.language_id import detect, loaded;"
              "detect('Where is my parcel? It has not arrived yet.', ['en', 'fr', 'es']);"
              "print(sorted(loaded()['full']), sorted(loaded()['trigram']),"
              "      sorted(loaded()['words']))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=300)
    full, trigram, words = done.stdout.strip().split("] [")
    assert full == "['en', 'es', 'fr'"
    assert "'pt'" in trigram and "'ko'" not in trigram
    # Word lists: the configured languages and those of their guards wordfreq has (not af).
    assert words == "'ca', 'de', 'en', 'es', 'fr', 'it', 'nl', 'pt']"


def test_models_load_in_the_background_only_once_no_message_came_for_a_while() -> None:
    """In a fresh process: a lexicon message loads nothing; an idle chat loads in the back."""
    script = (
        "import threading\n"
        "from routing_runner.runtime.offline import language_id as lid\n"
        "lid.QUIET = 3600.0  # messages keep coming: the background thread waits\n"
        "lid.prepare(['en', 'fr'])\n"
        "assert lid.detect('Hola', ['en', 'fr']).source == 'lexicon'\n"
        "print(sorted(lid.loaded()['full']))\n"
        "lid.QUIET = 0.0  # idle: it loads\n"
        "waiting = set(threading.enumerate())\n"
        "lid.prepare(['de', 'nl'])\n"
        "[t.join() for t in set(threading.enumerate()) - waiting]\n"
        "print(sorted(lid.loaded()['full']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=300)
    assert done.stdout.split("\n")[:2] == ["[]", "['de', 'nl']"]
