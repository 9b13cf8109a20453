"""Terminal rendering of turn events: streamed text under the speaking agent's name.

Model output is untrusted: control characters, escape sequences and bidi overrides are shown
inert (as `\\x1b`, `\\u202e`, …), never passed to the terminal. Colour only on a terminal.

The rules for everything routing-runner shows live here too: `inert` for any text from a
config, a store or a model; `redact_url` (the one redaction of URL credentials) and
`redact_urls` for messages that may quote one; `use_colour` (NO_COLOR, TERM=dumb, a TTY).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import parse_qsl, quote, urlsplit

from .events import AgentChanged, Event, Retrying, TextDelta, ToolCalled, TurnEnded, TurnFailed

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


def use_colour(stream: TextIO) -> bool:
    """Whether to colour output on `stream`: a terminal, not `TERM=dumb`, no `NO_COLOR`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


@dataclass
class Style:
    """ANSI styling, or none."""

    enabled: bool

    def agent(self, name: str) -> str:
        return f"\x1b[1;36m{name}\x1b[0m" if self.enabled else name

    def dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.enabled else text

    def error(self, text: str) -> str:
        return f"\x1b[1;31m{text}\x1b[0m" if self.enabled else text


@dataclass
class TurnRenderer:
    """Writes a turn's events to `out` as they arrive."""

    out: TextIO
    style: Style
    _speaking: str | None = field(default=None, init=False)

    def _end_line(self) -> None:
        if self._speaking is not None:
            self.out.write("\n")
            self._speaking = None

    def render(self, event: Event) -> None:
        """Show one event."""
        if isinstance(event, TextDelta):
            if self._speaking != event.agent:
                self._end_line()
                self.out.write(f"{self.style.agent(inert(event.agent))}: ")
                self._speaking = event.agent
            self.out.write(inert(event.text))
        elif isinstance(event, AgentChanged):
            self._end_line()
            self.out.write(self.style.dim(inert(f"  [handoff] {event.source} -> {event.target}"))
                           + "\n")
        elif isinstance(event, ToolCalled):
            self._end_line()
            self.out.write(self.style.dim(inert(f"  [tool] {event.agent} called {event.tool}"))
                           + "\n")
        elif isinstance(event, Retrying):
            self._end_line()
            self.out.write(self.style.dim(inert(
                f"  [retry] {event.reason}; retrying in {event.delay:.1f}s "
                f"({event.attempt}/{event.max_retries})")) + "\n")
        elif isinstance(event, TurnEnded):
            self._end_line()
        elif isinstance(event, TurnFailed):
            self._end_line()
            what = "interrupted" if event.interrupted else "error"
            self.out.write(self.style.error(f"  [{what}] {inert(event.message)}") + "\n")
        self.out.flush()

    def interrupted(self) -> None:
        """Show that the user interrupted the reply."""
        self.render(TurnFailed(self._speaking or "", "reply interrupted; the conversation keeps "
                                                    "your message", interrupted=True))
