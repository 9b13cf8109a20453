"""Language identification for the offline model: a curated lexicon first, then lingua.

A routing decision must know when it does not know. Cheapest first:

1. The lexicon (lexicon.py): "hola", "merci", "olá, tudo bem?" - short messages statistics
   cannot tell apart - are looked up.
2. A wide look (lingua, trigram models only: ~2 MiB a language) over the configured languages,
   their *guard set* - the languages easily taken for them (`related`: Portuguese, Italian and
   Catalan guard Spanish; Dutch, German and Afrikaans guard English, ...) - and a few widely
   spoken ones. A confident unconfigured language means "nobody here speaks it"; a configured
   language whose guards carry enough of the wide look's weight is not trusted either.
3. A narrow look (lingua, all n-gram models, ~30 MiB a language) over the configured
   languages only picks which of them it is, the *candidate*, behind a gate.
4. Words overrule the looks when they clearly name a language (`judge`): function words
   ("the", "não", "il": lexicon.function_words), then the languages' most common words
   (vocabulary.py), which tell two-word messages apart where letter statistics cannot.

The gates (gates.py) depend on the message length (bucketed) and on how many languages are
configured; they were tuned by bench/offline_tune.py on the tuning split of tests/data/langid
(see SOURCE.md there), never on the held-out split the README reports. Only the languages a
decision needs are loaded; `prepare` builds them on a background thread once the chat is idle,
`prepare(..., wait=True)` before a fork so worker processes share the pages.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from . import lexicon, vocabulary
from .gates import Gates, gates_for

# Widely spoken languages the wide look always considers besides the configured ones.
COMMON_LANGUAGES = frozenset(
    {"en", "fr", "es", "de", "it", "pt", "nl", "ru", "ar", "zh", "ja", "pl", "tr", "sv"}
)

# Languages easily confused with a language (same family, shared vocabulary or script).
RELATED: Mapping[str, tuple[str, ...]] = {
    "en": ("nl", "de", "af"), "es": ("pt", "it", "ca"), "fr": ("it", "ca", "pt"),
    "pt": ("es", "it", "ca"), "it": ("es", "pt", "ca"), "ca": ("es", "fr", "it", "pt"),
    "ro": ("it", "es", "pt"), "de": ("nl", "af", "da", "sv"), "nl": ("af", "de", "en"),
    "af": ("nl", "de"), "sv": ("da", "nb", "nn"), "da": ("nb", "nn", "sv"),
    "nb": ("nn", "da", "sv"), "nn": ("nb", "da", "sv"), "is": ("da", "nb", "sv"),
    "pl": ("cs", "sk"), "cs": ("sk", "pl"), "sk": ("cs", "pl"), "sl": ("hr", "bs", "sr"),
    "hr": ("bs", "sr", "sl"), "bs": ("hr", "sr"), "sr": ("hr", "bs", "mk"),
    "ru": ("uk", "be", "bg"), "uk": ("ru", "be"), "be": ("ru", "uk"), "bg": ("mk", "ru"),
    "mk": ("bg", "sr"), "tr": ("az",), "az": ("tr",), "ar": ("fa", "ur"), "fa": ("ar", "ur"),
    "ur": ("fa", "ar", "hi"), "hi": ("mr", "ur"), "mr": ("hi",), "zh": ("ja",), "ja": ("zh",),
    "id": ("ms", "tl"), "ms": ("id",), "fi": ("et",), "et": ("fi",), "lv": ("lt",),
    "lt": ("lv",), "ga": ("cy",), "cy": ("ga",), "sq": ("it",), "eu": ("es",),
}

# Function words (lexicon.function_words) name a language when its count leads every other
# language's by this much: "How do I reset my password?" is English whatever the trigram look
# says, "Ho un problema con il mio ordine" Italian. Tuned on the tuning split (1.0 and 2.0 do
# worse; below 1.0 one shared word decides).
WORDS_LEAD = 1.5
# Common words (vocabulary.py) name a language when the mean Zipf value (log10 frequency) its
# list gives the message's words leads by this much: the candidate's list must hold every word
# and lead every other list; an unconfigured language's list must lead the candidate's. Tuned
# on the tuning split (0.3 and 0.7 route fewer two-word messages right, 1.0 and 2.0 far fewer).
KNOWN_LEAD = 0.5
# Messages longer than this (characters) are long: function words that name a configured
# language decide them without the looks, and the word lists are not consulted. On the tuning
# split neither changed a decision above it (3 and 14 languages); they are the costliest to look
# at, so this sets the p99 detection time.
LONG = 80
# The looks read at most this many characters of a message (cut at a word): lingua's time grows
# with the length (the longest sentences set the p99 detection time). On the tuning split, 150
# route every message as reading it all does, with 3 and 14 languages; 120 and 100 do not.
LOOK_LIMIT = 150
# With no configured language, naming the language to the user needs this much confidence.
UNROUTED_CONFIDENCE = 0.5
# Seconds without a detection after which `prepare` loads the models in the background: longer
# than from loading the agents to the first reply of `chat -m Hola` on a loaded machine,
# shorter than typing a first message.
QUIET = 1.0


@dataclass(frozen=True)
class Detection:
    """The detected primary language tag (None when uncertain), confidence and where from."""

    language: str | None
    confidence: float
    source: str = "statistics"  # or "lexicon"


@dataclass(frozen=True)
class Signals:
    """What the wide and narrow looks said about one message (what the gates judge)."""

    candidate: str | None  # the narrow look's top configured language
    narrow: float  # its confidence in the narrow look
    support: float  # its share of the wide look
    foreign: str | None  # the wide look's top language when unconfigured
    foreign_confidence: float
    guard: str | None  # the candidate's strongest unconfigured guard in the wide look
    guard_weight: float  # the share of all its unconfigured guards in the wide look
    agrees: bool  # the wide look's top language is the candidate
    # The language whose function words clearly lead (see `WORDS_LEAD`): the candidate or an
    # unconfigured language (a configured one the narrow look ranks lower says nothing sure).
    words: str | None = None
    # The language whose common words cover clearly more of the message (see `KNOWN_LEAD`):
    # the candidate, or an unconfigured language.
    known: str | None = None

    @property
    def evidence(self) -> str | None:
        """What the words say, function words first: the candidate, an unconfigured language."""
        return self.words if self.words is not None else self.known


def primary_subtag(tag: str) -> str:
    """`pt-BR` → `pt`: detection works on primary language subtags."""
    return tag.split("-")[0].lower()


@cache
def supported() -> frozenset[str]:
    """ISO 639-1 codes lingua knows."""
    import lingua

    return frozenset(lang.iso_code_639_1.name.lower() for lang in lingua.Language.all())


def guard_set(configured: Iterable[str]) -> frozenset[str]:
    """The unconfigured languages easily taken for a configured one (see `RELATED`)."""
    own = frozenset(primary_subtag(t) for t in configured)
    related = {other for language in own for other in RELATED.get(language, ())}
    return frozenset(related - own) & supported()


def wide_languages(configured: Iterable[str]) -> frozenset[str]:
    """The languages the wide look considers: configured, their guards, the common ones."""
    own = frozenset(primary_subtag(t) for t in configured)
    return (own | guard_set(own) | COMMON_LANGUAGES) & supported()


def _release_free_memory() -> None:
    """Hand memory freed inside the process back to the system (glibc only; else nothing).

    lingua frees a third of what it allocates while loading models; glibc keeps such memory
    mapped, and the Python objects allocated next would settle in it instead of fresh pages.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)


class Detectors:
    """The lingua detectors one set of configured languages needs, built once."""

    def __init__(self, own: frozenset[str]) -> None:
        import lingua

        def codes(languages: Iterable[str]) -> list[Any]:
            return [lingua.IsoCode639_1.from_str(code) for code in sorted(languages)]

        self.own = own
        # Word lists for the configured languages and their guards (those lists exist for),
        # read by a child process while lingua loads.
        lists = vocabulary.lists_later(own | guard_set(own))
        builder = lingua.LanguageDetectorBuilder
        self.narrow = None
        # lingua needs two languages to choose between; with one the wide look decides.
        if len(own) > 1:
            # lingua keeps loaded models for every detector of the process, so the narrow
            # look's big models are loaded one language at a time first: reading one takes
            # scratch memory as large as half the model, which the next reuses, and the
            # biggest loads come while the least is loaded (a peak ~20 MiB lower).
            for code in codes(own):
                builder.from_iso_codes_639_1(code).with_preloaded_language_models().build()
                _release_free_memory()
            self.narrow = builder.from_iso_codes_639_1(*codes(own)).build()
        self.wide = (builder.from_iso_codes_639_1(*codes(wide_languages(own)))
                     .with_low_accuracy_mode().with_preloaded_language_models().build())
        _release_free_memory()
        self.lists = lists()
        self.loaded: tuple[frozenset[str], frozenset[str], frozenset[str]] = (
            wide_languages(own), own if len(own) > 1 else frozenset(), frozenset(self.lists))

    @staticmethod
    def _values(detector: Any, text: str) -> dict[str, float]:
        # lingua lists every language at 0.0 for text it has nothing to say about ("ok").
        return {value.language.iso_code_639_1.name.lower(): float(value.value)
                for value in detector.compute_language_confidence_values(text) if value.value}

    def signals(self, text: str) -> Signals:
        """Both looks at `text`."""
        words = _words_leader(text)
        if words is not None and words not in self.own:
            # Function words name an unconfigured language: whatever the looks say, `judge`
            # keeps the message, so they are spared (the longest messages are mostly these).
            return Signals(candidate=None, narrow=0.0, support=0.0, foreign=None,
                           foreign_confidence=0.0, guard=None, guard_weight=0.0, agrees=False,
                           words=words)
        if words is not None and len(text) > LONG:
            # A long message whose function words name a configured language is in it.
            return Signals(candidate=words, narrow=1.0, support=1.0, foreign=None,
                           foreign_confidence=0.0, guard=None, guard_weight=0.0, agrees=True,
                           words=words)
        looked_at = _opening(text)
        wide = self._values(self.wide, looked_at)
        if self.narrow is not None:
            narrow = self._values(self.narrow, looked_at)
        else:
            narrow = {lang: wide.get(lang, 0.0) for lang in self.own}
        candidate = max(narrow, key=narrow.__getitem__) if any(narrow.values()) else None
        top = max(wide, key=wide.__getitem__) if wide else None
        guards = {lang: wide.get(lang, 0.0) for lang in RELATED.get(candidate or "", ())
                  if lang not in self.own}
        guard = max(guards, key=guards.__getitem__) if guards else None
        return Signals(
            candidate=candidate, narrow=narrow.get(candidate or "", 0.0),
            support=wide.get(candidate or "", 0.0),
            foreign=top if top is not None and top not in self.own else None,
            foreign_confidence=wide.get(top or "", 0.0) if top not in self.own else 0.0,
            guard=guard, guard_weight=sum(guards.values()),
            agrees=top is not None and top == candidate,
            words=words if words == candidate else None,
            # The word lists are for short messages, when function words do not decide.
            known=None if (words is not None and words == candidate) or len(text) > LONG
            else self._known(text, candidate))

    def _known(self, text: str, candidate: str | None) -> str | None:
        """The language whose word list clearly covers the most of `text` (see `KNOWN_LEAD`)."""
        if candidate not in self.lists:
            return None  # no list to weigh the others against
        shares = vocabulary.coverage(text, self.lists)
        if not shares:
            return None
        held, own = shares.pop(candidate)
        if held >= 1.0 and own - max((zipf for _, zipf in shares.values()), default=0.0) \
                >= KNOWN_LEAD:
            return candidate
        foreign = {lang: zipf for lang, (_, zipf) in shares.items() if lang not in self.own}
        best = max(foreign, key=foreign.__getitem__) if foreign else None
        return best if best is not None and foreign[best] - own >= KNOWN_LEAD else None


def _opening(text: str) -> str:
    """The start of `text` the looks read: at most `LOOK_LIMIT` characters, whole words."""
    if len(text) <= LOOK_LIMIT:
        return text
    cut = text.rfind(" ", 0, LOOK_LIMIT + 1)
    return text[:cut if cut > 0 else LOOK_LIMIT]


def _words_leader(text: str) -> str | None:
    """The language whose function words lead every other's by `WORDS_LEAD`, if any."""
    scores = sorted(lexicon.function_words(text).items(), key=lambda item: -item[1])
    if not scores:
        return None
    runner_up = scores[1][1] if len(scores) > 1 else 0.0
    return scores[0][0] if scores[0][1] - runner_up >= WORDS_LEAD else None


def judge(signals: Signals, gates: Gates) -> Detection:
    """Route to the candidate only when every gate lets it through; else say what it may be.

    Words decide first when they clearly name a language (`Signals.evidence`: function words,
    then common words): for the candidate they overrule the wide look's doubts; for an
    unconfigured language nobody is sent the message. Otherwise the gates judge the looks.
    """
    if signals.evidence is not None:
        if signals.evidence == signals.candidate:
            return Detection(signals.candidate, max(signals.narrow, signals.support))
        return Detection(signals.evidence, 1.0)
    if signals.foreign is not None and signals.foreign_confidence >= gates.foreign:
        return Detection(signals.foreign, signals.foreign_confidence)
    if signals.guard is not None and signals.guard_weight >= gates.guard:
        # Not the candidate; name the likeliest other language.
        return Detection(signals.foreign or signals.guard, signals.guard_weight)
    if signals.candidate is not None and (
            (signals.narrow >= gates.narrow and signals.support >= gates.support)
            or (signals.agrees and signals.support >= gates.agree)):
        return Detection(signals.candidate, max(signals.narrow, signals.support))
    return Detection(None, signals.narrow)


_built: dict[frozenset[str], Detectors] = {}
_lock = threading.Lock()
_last_use = 0.0  # time.monotonic() of the last detection (or `prepare`)


def detectors(configured: Iterable[str]) -> Detectors:
    """The detectors for these configured languages, built on first call (thread-safe)."""
    own = frozenset(primary_subtag(t) for t in configured) & supported()
    with _lock:
        found = _built.get(own)
        if found is None:
            found = _built[own] = Detectors(own)
        return found


def loaded() -> dict[str, frozenset[str]]:
    """What this process has loaded so far: trigram-only and full models, word lists."""
    with _lock:
        return {kind: frozenset().union(*(d.loaded[n] for d in _built.values()))
                for n, kind in enumerate(("trigram", "full", "words"))}


def prepare(configured: Iterable[str], *, wait: bool = False) -> None:
    """Build the detectors: right here when `wait`, else on a background thread once idle.

    lingua holds the interpreter lock while it loads models (a second or more), so a
    background build that starts at once stalls the first reply as surely as building it
    in the foreground. The thread waits until no message has been detected for `QUIET`
    seconds - the user typing at the prompt - and a message that needs the models earlier
    builds them itself (`detectors`); one the lexicon knows ("Hola") waits for nothing.
    """
    languages = list(configured)
    if wait:
        detectors(languages)
        return
    _note_use()
    threading.Thread(target=_build_when_quiet, args=(languages,), name="language-models",
                     daemon=True).start()


def _note_use() -> None:
    global _last_use
    _last_use = time.monotonic()


def _build_when_quiet(languages: list[str]) -> None:
    while (left := _last_use + QUIET - time.monotonic()) > 0:
        time.sleep(left)
    detectors(languages)


def from_lexicon(text: str, configured: Iterable[str],
                 prefer: str | None = None) -> Detection | None:
    """The lexicon's answer for a known short message; None when it does not know it.

    A phrase several configured languages share ("hallo": German and Dutch; "no") goes to
    `prefer` when it is one of them - the agent reading it speaks it, so it keeps it - else
    to the likeliest of them: any of their agents can answer it. One written alike everywhere
    ("ok") names no language.
    """
    found = lexicon.lookup(text)
    if not found:
        return None
    own = {primary_subtag(t) for t in configured}
    spoken = [lang for lang in found if lang in own]
    if prefer is not None and primary_subtag(prefer) in spoken:
        return Detection(primary_subtag(prefer), 1.0, "lexicon")
    if len(spoken) > 1 and lexicon.anywhere(text):
        return Detection(None, 0.0, "lexicon")
    return Detection(spoken[0] if spoken else found[0], 1.0, "lexicon")


def detect(text: str, configured: Iterable[str], prefer: str | None = None) -> Detection:
    """Detect the language of `text` for routing among the `configured` language tags.

    `prefer`: the language of the agent reading it, which keeps a phrase its language shares
    with another configured one (see `from_lexicon`).
    """
    languages = list(configured)
    _note_use()
    if not any(char.isalpha() for char in text):
        return Detection(None, 0.0)
    known = from_lexicon(text, languages, prefer)
    if known is not None:
        return known
    found = detectors(languages)
    if not found.own:
        # Nothing to route to: only what triage should call the language.
        signals = found.signals(text)
        sure = signals.foreign_confidence >= UNROUTED_CONFIDENCE
        return Detection(signals.foreign if sure else None, signals.foreign_confidence)
    return judge(found.signals(text), gates_for(len(found.own), text))
