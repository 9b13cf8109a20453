"""Session encryption: the SDK's EncryptedSession around any backend, with a checked key.

The SDK's EncryptedSession skips items it cannot decrypt, so a wrong key would look like an
empty conversation - and a rollback could then delete items it cannot read. Before a
conversation is used, every stored envelope's signature is therefore checked against the key:
a wrong key (or plaintext items from an unencrypted config) is a StoreError and nothing is read
or changed. Items older than the configured TTL authenticate but are skipped: that is what the
TTL is for, which is why the config must state it.

The key is 32 random bytes in url-safe base64 (`routing-runner sessions new-key`); passwords
are refused because the SDK derives per-session keys with HKDF, which does not harden them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from routing_runner.config.model import EncryptionConfig
from routing_runner.errors import StoreError
from routing_runner.stores.base import require_extra
from routing_runner.wording import format_duration

if TYPE_CHECKING:
    from agents.extensions.memory import EncryptedSession
    from agents.memory import SessionABC


def new_key() -> str:
    """A fresh session key: 32 random bytes, url-safe base64 (a Fernet key)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclass(frozen=True)
class SessionKey:
    """The key (never shown in reprs) and how long items stay readable."""

    variable: str
    ttl: int
    key: str = field(repr=False)

    def describe(self) -> str:
        """How the encryption is shown in a store's description."""
        return f"encrypted with the key in {self.variable}, items readable for " \
               f"{format_duration(self.ttl)}"


def load_key(config: EncryptionConfig, env: Mapping[str, str]) -> SessionKey:
    """The key named by `config`, checked; StoreError when it is unset or not a key."""
    require_extra("cryptography", "encrypt", "session encryption")
    variable = config.key_env
    value = env.get(variable, "").strip()
    if not value:
        raise StoreError(
            f"session.encryption reads its key from the environment variable {variable}, which "
            f"is not set; make a key with `routing-runner sessions new-key` and export it as "
            f"{variable}")
    try:
        raw = base64.b64decode(value.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise StoreError(
            f"{variable} does not hold a session key: a key is 32 random bytes in url-safe "
            "base64 (44 characters), as `routing-runner sessions new-key` prints; passwords "
            "are not accepted")
    return SessionKey(variable, config.ttl, value)


def encrypted(session: SessionABC, session_id: str, key: SessionKey) -> EncryptedSession:
    """`session` wrapped so every item is stored encrypted."""
    from agents.extensions.memory import EncryptedSession

    return EncryptedSession(session_id=session_id, underlying_session=session,
                            encryption_key=key.key, ttl=key.ttl)


# The SDK has no public way to tell its encrypted envelope from a plain item, or to check a
# token's key without decrypting (and so without the TTL failing an old item): this module is
# the one place that reads the envelope's shape (`__enc__`, `payload`) and the session's
# `cipher`. Both are pinned by openai-agents==0.24.*; tests/test_store_safety.py holds them.
def _is_envelope(item: Any) -> bool:
    return isinstance(item, dict) and item.get("__enc__") == 1 and \
        isinstance(item.get("payload"), str)


async def check_key(session: EncryptedSession, underlying: SessionABC, key: SessionKey,
                    description: str) -> None:
    """StoreError unless every item `underlying` holds was encrypted with `session`'s key."""
    from cryptography.fernet import InvalidToken

    for item in await underlying.get_items():
        envelope: Any = item  # what the SDK stores is its envelope, not an input item
        if not _is_envelope(envelope):
            raise StoreError(
                f"conversation {session.session_id!r} in {description} holds unencrypted "
                "items (it was written without session.encryption); nothing was read or changed")
        try:
            # Checks the signature, not the age: an expired item is fine, a foreign one is not.
            session.cipher.extract_timestamp(envelope["payload"].encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise StoreError(
                f"cannot decrypt conversation {session.session_id!r} with the key in "
                f"{key.variable}: the key is not the one it was written with (or the data is "
                "damaged); nothing was read or changed") from None
