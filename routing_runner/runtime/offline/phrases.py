"""What the embedded offline model says, per language.

Plain data: a language is supported by the offline model when it has an entry here. A language
agent whose language has no entry answers with the English phrases, labelled with its tag.
Triage (no language of its own) answers in the language it detected when it has phrases for
it, so a user it cannot route reads, in their own language, which languages it can help in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phrases:
    """Reply templates in one language. `{…}` fields are filled by the offline model."""

    language_name: str
    greeting: str
    first_turn: str
    later_turn: str
    unrouted: str  # a language was recognised, and nobody here speaks it
    unknown: str  # no language could be told


PHRASES: dict[str, Phrases] = {
    "en": Phrases(
        "English",
        "I'm {agent}, answering in English. You wrote: “{latest}”.",
        "This is the first message of our conversation.",
        "This is message {turn} of our conversation; the first one was: “{first}”.",
        "Nobody here speaks your language, {language}. I can help you in: {languages}.",
        "I could not tell which language you wrote in. I can help you in: {languages}.",
    ),
    "fr": Phrases(
        "français",
        "Je suis {agent} et je vous réponds en français. Vous avez écrit : « {latest} ».",
        "C'est le premier message de notre conversation.",
        "C'est le message n° {turn} de notre conversation ; le premier était : « {first} ».",
        "Personne ici ne parle votre langue, {language}. "
        "Je peux vous aider en : {languages}.",
        "Je n'ai pas reconnu la langue de votre message. Je peux vous aider en : {languages}.",
    ),
    "es": Phrases(
        "español",
        "Soy {agent} y te respondo en español. Has escrito: «{latest}».",
        "Este es el primer mensaje de nuestra conversación.",
        "Este es el mensaje n.º {turn} de nuestra conversación; el primero fue: «{first}».",
        "Aquí nadie habla tu idioma, {language}. Puedo ayudarte en: {languages}.",
        "No he sabido en qué idioma escribes. Puedo ayudarte en: {languages}.",
    ),
    "de": Phrases(
        "Deutsch",
        "Ich bin {agent} und antworte auf Deutsch. Sie schrieben: „{latest}“.",
        "Das ist die erste Nachricht unseres Gesprächs.",
        "Das ist Nachricht Nr. {turn} unseres Gesprächs; die erste war: „{first}“.",
        "Hier spricht niemand Ihre Sprache, {language}. Ich kann Ihnen helfen auf: {languages}.",
        "Ich habe nicht erkannt, in welcher Sprache Sie schreiben. "
        "Ich kann Ihnen helfen auf: {languages}.",
    ),
    "it": Phrases(
        "italiano",
        "Sono {agent} e ti rispondo in italiano. Hai scritto: «{latest}».",
        "Questo è il primo messaggio della nostra conversazione.",
        "Questo è il messaggio n. {turn} della nostra conversazione; il primo era: «{first}».",
        "Qui nessuno parla la tua lingua, {language}. Posso aiutarti in: {languages}.",
        "Non ho capito in che lingua scrivi. Posso aiutarti in: {languages}.",
    ),
    "pt": Phrases(
        "português",
        "Sou {agent} e respondo em português. Você escreveu: “{latest}”.",
        "Esta é a primeira mensagem da nossa conversa.",
        "Esta é a mensagem n.º {turn} da nossa conversa; a primeira foi: “{first}”.",
        "Aqui ninguém fala a sua língua, {language}. Posso ajudar em: {languages}.",
        "Não percebi em que língua escreve. Posso ajudar em: {languages}.",
    ),
    "nl": Phrases(
        "Nederlands",
        "Ik ben {agent} en antwoord in het Nederlands. U schreef: „{latest}”.",
        "Dit is het eerste bericht van ons gesprek.",
        "Dit is bericht {turn} van ons gesprek; het eerste was: „{first}”.",
        "Niemand hier spreekt uw taal, {language}. Ik kan u helpen in: {languages}.",
        "Ik zag niet in welke taal u schrijft. Ik kan u helpen in: {languages}.",
    ),
}


# Names of languages the offline model has no phrases for, as their speakers write them.
ENDONYMS: dict[str, str] = {
    "ca": "català", "sv": "svenska", "da": "dansk", "nb": "norsk", "nn": "nynorsk",
    "pl": "polski", "cs": "čeština", "sk": "slovenčina", "tr": "Türkçe", "ru": "русский",
    "uk": "українська", "ar": "العربية", "fa": "فارسی", "zh": "中文", "ja": "日本語",
    "ko": "한국어", "af": "Afrikaans", "ro": "română", "el": "ελληνικά", "hu": "magyar",
    "fi": "suomi", "he": "עברית", "hi": "हिन्दी",
}


def language_name(tag: str) -> str:
    """`pt` → `português (pt)`: the language's own name and its tag, the tag alone if unknown."""
    primary = tag.split("-")[0].lower()
    name = PHRASES[primary].language_name if primary in PHRASES else ENDONYMS.get(primary)
    return f"{name} ({tag})" if name else tag


def phrases_for(language: str | None) -> Phrases:
    """The phrases for a BCP-47 tag's primary language, English when there are none."""
    primary = (language or "en").split("-")[0].lower()
    return PHRASES.get(primary, PHRASES["en"])
