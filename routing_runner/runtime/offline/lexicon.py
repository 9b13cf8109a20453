"""Short messages people really send, by language: greetings, thanks, yes/no, help, goodbye.

Statistics cannot tell "hola" from "olá" or "hallo" from "hello" (a word or two carries too few
letters), so the offline model looks these up first. Each entry is what a person writes as a
whole message, or as one of its comma-separated parts ("Olá, tudo bem?"), in lower case
without punctuation. A phrase shared by several languages lists them all ("hallo": German and
Dutch); the offline model then routes it only when exactly one of them is configured.

Sources: compiled by hand by the routing-runner developers from everyday usage. Each entry is
the common form given for its concept (hello, good morning/evening, how are you, thanks, yes,
no, help, please, goodbye) in the English Wiktionary's translation tables, which is where to
check or extend it. Spellings people type without accents ("como estas", "adios") are listed
where they are unambiguous; "ola" is not (it is the Spanish for "wave").
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

# Language → phrases. Kept as plain data so a reviewer can read it per language.
_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "en": ("hi", "hello", "hey", "hiya", "hi there", "hello there", "good morning",
           "good afternoon", "good evening", "how are you", "whats up", "thanks", "thank you",
           "thanks a lot", "thank you very much", "many thanks", "yes", "yeah", "yep", "no",
           "nope", "help", "help me", "help please", "please help", "i need help", "please",
           "bye", "goodbye", "see you", "sorry"),
    "fr": ("bonjour", "bonsoir", "salut", "coucou", "allô", "ça va", "comment ça va",
           "merci", "merci beaucoup", "merci bien", "oui", "ouais", "non", "aide", "à l'aide",
           "au secours", "aidez-moi", "aidez moi", "s'il vous plaît", "s'il te plaît", "svp",
           "stp", "au revoir", "à bientôt", "bonne journée", "bonne soirée", "pardon"),
    "es": ("hola", "buenas", "buenos días", "buenos dias", "buenas tardes", "buenas noches",
           "qué tal", "que tal", "cómo estás", "como estas", "gracias", "muchas gracias",
           "sí", "si", "no", "vale", "ayuda", "ayúdame", "ayudame", "necesito ayuda",
           "socorro", "por favor", "adiós", "adios", "hasta luego", "perdón"),
    "de": ("hallo", "guten tag", "guten morgen", "guten abend", "moin", "servus",
           "wie geht's", "wie gehts", "danke", "danke schön", "dankeschön", "vielen dank",
           "ja", "nein", "hilfe", "bitte", "tschüss", "tschüs", "auf wiedersehen",
           "entschuldigung"),
    "it": ("ciao", "buongiorno", "buonasera", "salve", "come stai", "come va", "grazie",
           "grazie mille", "sì", "si", "no", "aiuto", "per favore", "arrivederci", "scusa"),
    "pt": ("olá", "oi", "bom dia", "boa tarde", "boa noite", "tudo bem", "tudo bom",
           "como vai", "obrigado", "obrigada", "muito obrigado", "muito obrigada", "sim",
           "não", "ajuda", "socorro", "por favor", "tchau", "adeus", "até logo", "desculpe"),
    "nl": ("hoi", "hallo", "goedemorgen", "goedemiddag", "goedenavond", "hoe gaat het",
           "dank je", "dank u", "dankjewel", "dank je wel", "bedankt", "ja", "nee", "help",
           "hulp", "alsjeblieft", "alstublieft", "doei", "tot ziens", "sorry"),
    "ca": ("hola", "bon dia", "bona tarda", "bona nit", "gràcies", "moltes gràcies", "sí",
           "ajuda", "si us plau", "adéu", "fins aviat"),
    "sv": ("hej", "hejsan", "god morgon", "god kväll", "tack", "tack så mycket", "ja", "nej",
           "hjälp", "snälla", "hej då", "förlåt"),
    "pl": ("cześć", "dzień dobry", "dobry wieczór", "dziękuję", "dzięki", "tak", "nie",
           "pomocy", "pomoc", "proszę", "do widzenia", "przepraszam"),
    # Turkish is written with the dotless i (U+0131).
    "tr": ("merhaba", "selam", "günaydın", "iyi akşamlar", "nasılsın",  # noqa: RUF001
           "teşekkürler", "teşekkür ederim", "sağol", "sağ ol", "evet",
           "hayır", "yardım", "yardım edin", "lütfen", "hoşça kal",  # noqa: RUF001
           "güle güle", "özür dilerim"),
    "ru": ("привет", "здравствуйте", "добрый день", "доброе утро", "добрый вечер",
           "как дела", "спасибо", "большое спасибо", "да", "нет", "помогите", "помощь",
           "пожалуйста", "пока", "до свидания", "извините"),
    "ar": ("مرحبا", "مرحباً", "أهلا", "اهلا", "السلام عليكم", "صباح الخير", "مساء الخير",
           "كيف حالك", "شكرا", "شكراً", "نعم", "لا", "مساعدة", "ساعدني", "من فضلك",
           "مع السلامة"),
    "zh": ("你好", "您好", "早上好", "晚上好", "你好吗", "谢谢", "谢谢你", "多谢", "是", "是的",
           "对", "不", "不是", "帮助", "救命", "请", "再见", "对不起"),
    "ja": ("こんにちは", "こんばんは", "おはよう", "おはようございます", "もしもし", "元気ですか",
           "ありがとう", "ありがとうございます", "どうも", "はい", "いいえ", "助けて",
           "お願いします", "さようなら", "すみません"),
}

# Written the same in many languages: known to be a short message, in none in particular.
_EVERYWHERE = ("ok", "okay", "okey", "oké", "hmm", "lol")
_EVERYWHERE_LANGUAGES = ("en", "fr", "es", "de", "it", "pt", "nl")

MAX_PARTS = 3  # a longer message is a sentence: statistics handle it
APOSTROPHES = frozenset("'\u2019")  # typed and typographic


def normalize(text: str) -> str:
    """Lower case, NFC, punctuation and symbols dropped except inner apostrophes and hyphens."""
    kept = []
    for char in unicodedata.normalize("NFC", text.casefold()):
        category = unicodedata.category(char)
        if char in APOSTROPHES or char == "-":
            kept.append("'" if char in APOSTROPHES else char)
        elif category[0] in "PS":
            kept.append(" ")
        else:
            kept.append(char)
    return " ".join("".join(kept).replace(" '", " ").replace("' ", " ").split()).strip("'-")


@cache
def _table() -> dict[str, tuple[str, ...]]:
    table: dict[str, list[str]] = {}
    for language, phrases in _BY_LANGUAGE.items():
        for phrase in phrases:
            table.setdefault(normalize(phrase), []).append(language)
    for phrase in _EVERYWHERE:
        table.setdefault(normalize(phrase), list(_EVERYWHERE_LANGUAGES))
    return {phrase: tuple(languages) for phrase, languages in table.items()}


def anywhere(text: str) -> bool:
    """True for a message written alike in many languages ("ok", "lol"): it names none."""
    everywhere = {normalize(phrase) for phrase in _EVERYWHERE}
    parts = [normalize(p) for p in _split(text)]
    return all(part in everywhere for part in parts if part) and any(parts)


def languages() -> frozenset[str]:
    """The languages the lexicon has phrases for."""
    return frozenset(_BY_LANGUAGE)


def lookup(text: str) -> tuple[str, ...]:
    """The languages `text` is a known short message in, most likely first; () when unknown.

    The whole message is looked up first, then its comma/sentence-separated parts: every part
    must be known and the parts must share a language ("Olá, tudo bem?" → pt).
    """
    table = _table()
    whole = table.get(normalize(text))
    if whole is not None:
        return whole
    parts = [normalize(p) for p in _split(text)]
    parts = [p for p in parts if p]
    if not 1 < len(parts) <= MAX_PARTS:
        return ()
    shared: list[str] | None = None
    for part in parts:
        found = table.get(part)
        if found is None:
            return ()
        shared = list(found) if shared is None else [lang for lang in shared if lang in found]
    return tuple(shared or ())


# Where a message splits into parts: Latin and full-width (CJK) sentence punctuation.
_SEPARATORS = frozenset(",.!?;:¿¡\u3001\u3002\uff01\uff0c\uff1f")


def _split(text: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for char in text:
        if char in _SEPARATORS:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


# The most frequent function words (articles, pronouns, auxiliaries, prepositions,
# conjunctions) of the languages the offline model most often confuses with one another.
# Content words are left out: they are what the n-gram models and the word lists read well.
# Sources: compiled by hand by the routing-runner developers from each language's basic grammar
# (not copied from a list); to check or extend one, compare it with the stop-word list the
# Snowball project (snowballstem.org) publishes for the language, where there is one. Words an
# apostrophe splits off ("l'", "qu'") appear without it ("l", "qu"), as `function_words`
# tokenises.
_FUNCTION_WORDS: dict[str, str] = {
    "en": "the and of to is are was were with this that have has you your my what how it for "
          "not can will would be from they we there which do does an at on i me am",
    "fr": "le la les des du et est une un dans pour pas que qui sur avec je vous nous il elle "
          "ce cette mais ou au aux sont mon ma mes votre ne se par plus qu j c l d n ai",
    "es": "el los las del y es en una un por con para pero muy que qué lo le se su sus mi yo "
          "tengo está están son hay como cómo cuando al este esta esto también fue ha no me",
    "pt": "o os as do da dos das e é em no na nos nas um uma com para não que se por mas ao à "
          "meu minha você eu tem está são isso este esta também foi muito mais pelo pela como",
    "it": "il lo la gli le di del della dei e è un una che per con non sono ho ha mi mio mia ma "
          "come questo questa anche nel nella al alla da si più io l",
    "ca": "el els la les de del i és un una que per amb no em es al aquest aquesta són però "
          "molt també meu seva ha hi ho en l d",
    "de": "der die das und ist nicht ein eine ich mit zu den dem von auf für sie es wie mein "
          "meine auch im sind war wir haben habe kann bitte",
    "nl": "de het een en is niet ik van met op voor dat die zijn je mijn ook maar wat hoe er te "
          "naar kan wij we heb hebben",
    "af": "die en is nie ek van met op vir dat het n my ons jy hulle sal was kan wat hoe",
    "sv": "och är att det en ett jag inte som med på för av den till har vi du min mitt kan hur "
          "vad men också om",
    "da": "og er at det en et jeg ikke som med på for af den til har vi du min mit kan hvordan "
          "hvad men også",
    "pl": "i w z na się nie jest to że do jak co mam mój moja ale czy dla od po tak jestem są",
    "tr": "ve bir bu için ile da de çok ben sen ne nasıl var yok mi mı ama gibi daha olarak",  # noqa: RUF001
}


@cache
def _function_word_table() -> dict[str, tuple[str, ...]]:
    table: dict[str, list[str]] = {}
    for language, words in _FUNCTION_WORDS.items():
        for word in words.split():
            table.setdefault(word, []).append(language)
    return {word: tuple(languages) for word, languages in table.items()}


def function_words(text: str) -> dict[str, float]:
    """How many of `text`'s words are function words of each language.

    A word several languages share counts for each of them in equal parts ("que": 1/4 for
    French, Spanish, Portuguese and Catalan), so only distinctive words make a clear lead.
    """
    table = _function_word_table()
    scores: dict[str, float] = {}
    for word in re.findall(r"\w+", unicodedata.normalize("NFC", text).casefold()):
        found = table.get(word, ())
        for language in found:
            scores[language] = scores.get(language, 0.0) + 1 / len(found)
    return scores
