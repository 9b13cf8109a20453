"""Handoff checks: `expect.no_announced_handoff` and `expect.history_seen`.

`no_announced_handoff`: a reply that says it is transferring, and does not.

Real models announce a handoff ("I'll transfer you to our Spanish team") and then answer
without calling the handoff tool, leaving the user with an agent that promised to go. The
reply checked is the turn's last model call's text, so an announcement a handoff followed is
not caught (its text preceded the handoff and is not the reply); one with nothing after it is.

Phrases are per language, checked in English and in every language the config's agents
declare; a language without a list here is checked in English only.

`history_seen`: what the answering agent (the turn's last model call) was given - how many
input items, and whether tool or handoff calls were among them - as captured at the model
boundary (`runtime.probe`), after the SDK applied the session and any handoff input filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from routing_runner.runtime.offline.language_id import primary_subtag

from .results import Mismatch, Observed
from .script import Expectations, HistorySeen

# Lower-case regular expressions; `\b` and `\w` are Unicode-aware in Python.
ANNOUNCEMENTS: dict[str, tuple[str, ...]] = {
    "en": (r"\b(i['\u2019]?ll|i will|i['\u2019]?m going to|let me|i am going to|"
           r"i['\u2019]?m)\s+(now\s+)?"
           r"(transfer|connect|hand|pass|rout|redirect|forward)\w*\s+(you|this|your)",
           r"\b(transferring|connecting|handing|routing|redirecting|forwarding)\s+you\b"),
    "fr": (r"\bje (vous|te) (transf[eè]re|redirige|passe|mets en relation|connecte)",
           r"\bje vais (vous|te) (transf[eé]rer|rediriger|passer|mettre en relation|connecter)",
           r"\b(transfert|redirection) (en cours|vers)\b"),
    "es": (r"\b(te|le|lo|la) (transfiero|paso|comunico|redirijo|conecto)\b",
           r"\bvoy a (transferirte|transferirle|pasarte|pasarle|comunicarte|redirigirte|"
           r"conectarte)",
           r"\b(te|le) voy a (transferir|pasar|comunicar|redirigir|conectar)"),
    "de": (r"\bich (verbinde|leite|übergebe|stelle) (sie|dich)\b",
           r"\bich werde (sie|dich) (weiterleiten|verbinden|übergeben)"),
    "it": (r"\b(ti|la|le) (trasferisco|passo|metto in contatto|inoltro)\b",
           r"\bsto per (trasferirti|trasferirla|passarti)"),
    "pt": (r"\b(vou|irei) (transferir|encaminhar|passar|conectar)(-te|-lo|-la| você| o| a)?",
           r"\b(te|o|a) (transfiro|encaminho|passo)\b"),
}


def announcement_patterns(languages: Iterable[str]) -> list[re.Pattern[str]]:
    """The compiled phrases of English and of each of `languages` that has a list."""
    wanted = ["en", *(primary_subtag(tag) for tag in languages)]
    chosen = dict.fromkeys(code for code in wanted if code in ANNOUNCEMENTS)
    return [re.compile(source, re.IGNORECASE) for code in chosen
            for source in ANNOUNCEMENTS[code]]


def announced_handoff(text: str, patterns: Iterable[re.Pattern[str]]) -> str | None:
    """The announcement in `text` ("Je vous transfère"), None when there is none."""
    for pattern in patterns:
        found = pattern.search(text)
        if found is not None:
            return found.group(0)
    return None


def handoff_checks(expect: Expectations, observed: Observed,
                   languages: Sequence[str]) -> list[Mismatch]:
    """The handoff expectations `observed` misses."""
    missed: list[Mismatch] = []
    if expect.no_announced_handoff:
        said = announced_handoff(observed.text, announcement_patterns(languages))
        if said is not None:
            missed.append(Mismatch("no_announced_handoff", "no transfer announced without a "
                                   "handoff", f"{observed.agent} said \"{said}\" and answered "
                                   "without a handoff"))
    if expect.history_seen is not None:
        missed.extend(_history_seen(expect.history_seen, observed))
    return missed


def _history_seen(expected: HistorySeen, observed: Observed) -> list[Mismatch]:
    items, tools = observed.seen_items, observed.seen_tool_items
    if items is None or tools is None:
        return [Mismatch("history_seen", "a model call", "the turn made no model call")]
    got = f"{items} items, {tools} of them tool calls or outputs ({observed.agent})"
    missed = []
    if expected.items is not None and not expected.items.allows(items):
        missed.append(Mismatch("history_seen", f"items: {expected.items}", got))
    if expected.tool_calls is not None and expected.tool_calls != (tools > 0):
        wanted = "with" if expected.tool_calls else "without"
        missed.append(Mismatch("history_seen", f"{wanted} tool calls", got))
    return missed
