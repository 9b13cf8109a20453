"""How routing-runner words and styles what it shows: plurals, hints, durations, inert text, colour.

The rules for everything routing-runner shows: `inert` for any text from a config, a store or a
model; `redact_url` (the one redaction of URL credentials) and `redact_urls` for messages that
may quote one; `use_colour` (NO_COLOR, TERM=dumb, a TTY).

The bottom layer, next to `errors`: every other module may use it, it imports none of them.
One colour rule (`use_colour`) and one `Style` serve the chat, `sessions show` and the replay
summary alike.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import parse_qsl, quote, urlsplit

# C0 controls but tab and newline, DEL, C1 controls, the bidi embedding/override/isolate
# characters that can make text display differently from what it is, and lone surrogates
# (undecodable bytes), which a UTF-8 terminal stream cannot encode.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# Query parameters whose value is a credential: api-key, access_token, password, sig, ...
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|sig|cred", re.I)
REDACTED = "***"
# A URL quoted in prose ends before a closing bracket or trailing punctuation: "(at http://h:1)."
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]*[^\s'\"<>().,:;!?]")


def inert(text: str) -> str:
    """`text` with every control or bidi character replaced by a visible escape."""
    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE.sub(escape, text)


def redact_url(url: str) -> str:
    """`url` safe to show: credentials in the user info and secret-looking query values hidden.

    The one redaction of every URL routing-runner prints (banners, store descriptions, errors).
    `user:pass@` keeps the user name; a user info without a password is often a token by
    itself (`https://TOKEN@host`), so it is hidden whole.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port, before anything is shown
    except ValueError:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://{REDACTED} (a URL that cannot be parsed)" if scheme else REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if has_password else f"{REDACTED}@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = parts.query
    if any(_SECRET_PARAMETER.search(name) for name, _ in pairs):
        query = "&".join(f"{quote(name, safe='')}="
                         + (REDACTED if _SECRET_PARAMETER.search(name) else quote(value, safe=""))
                         for name, value in pairs)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def redact_urls(text: str) -> str:
    """`text` with every URL in it redacted by `redact_url`: for messages written by others
    (a provider's or a driver's exception) that may quote an endpoint with its credentials."""
    return _URL.sub(lambda match: redact_url(match.group()), text)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 agent`, `2 agents` (`plural` for nouns that do not take an s)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a close match exists, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_duration(seconds: int) -> str:
    """`seconds` in the largest whole unit: 30d, 12h, 90m, 45s."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_time(epoch: float | None) -> str:
    """A timestamp as `2025-11-25 17:53:10 UTC`, or `-` when unknown."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def use_colour(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Colour on `stream` only for a terminal, unless NO_COLOR is set or TERM is `dumb`."""
    return stream.isatty() and "NO_COLOR" not in env and env.get("TERM") != "dumb"


@dataclass(frozen=True)
class Style:
    """ANSI styling, or none: the one palette of every command."""

    enabled: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def agent(self, name: str) -> str:
        """An agent's (or the user's) name."""
        return self._wrap("1;36", name)

    def error(self, text: str) -> str:
        """A failure."""
        return self._wrap("1;31", text)

    def expected(self, text: str) -> str:
        """A `- expected` line."""
        return self._wrap("31", text)

    def got(self, text: str) -> str:
        """A `+ got` line."""
        return self._wrap("32", text)

    def bold(self, text: str) -> str:
        """A heading."""
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        """Context."""
        return self._wrap("2", text)


PLAIN = Style(enabled=False)
