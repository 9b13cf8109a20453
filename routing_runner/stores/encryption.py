"""Session encryption: the SDK's EncryptedSession around any backend, with a checked key.

The SDK's EncryptedSession skips items it cannot decrypt, so a wrong key would look like an
empty conversation - and a rollback could then delete items it cannot read. Before a
conversation is used, every stored row is therefore read with the key (stores.rows): a wrong
key, plaintext items from an unencrypted config, or encrypted items under a config without
encryption, are a StoreError and nothing is read or changed. Items older than the configured
TTL authenticate but are skipped: that is what the TTL is for, which is why the config must
state it.

The key is 32 random bytes in url-safe base64 (`routing-runner sessions new-key`); passwords
are refused because the SDK derives per-session keys with HKDF, which does not harden them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from routing_runner.config.model import EncryptionConfig
from routing_runner.errors import StoreError
from routing_runner.stores.base import require_extra
from routing_runner.wording import format_duration

if TYPE_CHECKING:
    from agents.extensions.memory import EncryptedSession
    from agents.memory import SessionABC
    from cryptography.fernet import Fernet, MultiFernet


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


# The SDK has no public way to reach the per-conversation cipher of an EncryptedSession (to
# check a token's key without decrypting, and so without the TTL failing an old item): this is
# the one place that reads `session.cipher`; stores.rows is the one reader of the envelope's
# shape (`__enc__`, `payload`). Both are pinned by openai-agents==0.24.*;
# tests/test_store_safety.py holds them.
def cipher_of(session: SessionABC) -> Fernet | MultiFernet | None:
    """The per-conversation cipher of an EncryptedSession (None for any other session)."""
    from agents.extensions.memory import EncryptedSession

    return session.cipher if isinstance(session, EncryptedSession) else None
