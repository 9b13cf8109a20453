"""What the embedded offline model says, per language.

Plain data: a language is supported by the offline model when it has an entry here. A language
agent whose language has no entry answers with the English phrases, labelled with its tag.
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
    unrouted: str


PHRASES: dict[str, Phrases] = {
    "en": Phrases(
        "English",
        "I'm {agent}, answering in English. You wrote: “{latest}”.",
        "This is the first message of our conversation.",
        "This is message {turn} of our conversation; the first one was: “{first}”.",
        "I could not match your message to a language I can route ({detected}). "
        "I can help in: {languages}.",
    ),
    "fr": Phrases(
        "français",
        "Je suis {agent} et je vous réponds en français. Vous avez écrit : « {latest} ».",
        "C'est le premier message de notre conversation.",
        "C'est le message n° {turn} de notre conversation ; le premier était : « {first} ».",
        "Je ne reconnais pas une langue que je sais orienter ({detected}). "
        "Je peux vous aider en : {languages}.",
    ),
    "es": Phrases(
        "español",
        "Soy {agent} y te respondo en español. Has escrito: «{latest}».",
        "Este es el primer mensaje de nuestra conversación.",
        "Este es el mensaje n.º {turn} de nuestra conversación; el primero fue: «{first}».",
        "No reconozco un idioma que sepa dirigir ({detected}). Puedo ayudarte en: {languages}.",
    ),
    "de": Phrases(
        "Deutsch",
        "Ich bin {agent} und antworte auf Deutsch. Sie schrieben: „{latest}“.",
        "Das ist die erste Nachricht unseres Gesprächs.",
        "Das ist Nachricht Nr. {turn} unseres Gesprächs; die erste war: „{first}“.",
        "Ich erkenne keine Sprache, die ich weiterleiten kann ({detected}). "
        "Ich helfe auf: {languages}.",
    ),
    "it": Phrases(
        "italiano",
        "Sono {agent} e ti rispondo in italiano. Hai scritto: «{latest}».",
        "Questo è il primo messaggio della nostra conversazione.",
        "Questo è il messaggio n. {turn} della nostra conversazione; il primo era: «{first}».",
        "Non riconosco una lingua che so instradare ({detected}). Posso aiutarti in: {languages}.",
    ),
    "pt": Phrases(
        "português",
        "Sou {agent} e respondo em português. Você escreveu: “{latest}”.",
        "Esta é a primeira mensagem da nossa conversa.",
        "Esta é a mensagem n.º {turn} da nossa conversa; a primeira foi: “{first}”.",
        "Não reconheço um idioma que eu saiba encaminhar ({detected}). "
        "Posso ajudar em: {languages}.",
    ),
    "nl": Phrases(
        "Nederlands",
        "Ik ben {agent} en antwoord in het Nederlands. U schreef: „{latest}”.",
        "Dit is het eerste bericht van ons gesprek.",
        "Dit is bericht {turn} van ons gesprek; het eerste was: „{first}”.",
        "Ik herken geen taal die ik kan doorsturen ({detected}). Ik help in: {languages}.",
    ),
}


def phrases_for(language: str | None) -> Phrases:
    """The phrases for a BCP-47 tag's primary language, English when there are none."""
    primary = (language or "en").split("-")[0].lower()
    return PHRASES.get(primary, PHRASES["en"])
