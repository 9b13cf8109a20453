"""A conversation's stored rows read one by one, so that none is skipped without a word.

The SDK's session classes skip a row they cannot decode (SQLite, SQLAlchemy, Redis) or decrypt
(EncryptedSession): the model would stop seeing earlier messages and nobody would know. Stores
therefore hand over their raw rows (`SessionStore._raw_rows`) and this module reads each as the
SDK would, saying what is wrong with the ones it cannot read. It also tells an encrypted
conversation from a plaintext one, so one config can never read or append to a conversation
written under the other setting.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from routing_runner.errors import StoreError
from routing_runner.user_text import encodable
from routing_runner.wording import count

from .items import is_user_message

if TYPE_CHECKING:
    from agents.memory import SessionABC
    from cryptography.fernet import Fernet, MultiFernet

    from .base import SessionStore
    from .encryption import SessionKey


@dataclass(frozen=True)
class StoredRow:
    """One stored item: `item` when readable, else `problem` says why not.

    `number` is the row's place in the conversation (1 = oldest); `key` is what the backend
    deletes it by. An encrypted item older than the TTL is neither: it is skipped, by design.
    """

    number: int
    key: Any
    item: Any | None = None
    problem: str | None = None
    encrypted: bool = False

    @property
    def expired(self) -> bool:
        """An encrypted item past the TTL: authentic, no longer readable, not a fault."""
        return self.item is None and self.problem is None


class UnreadableRowsError(StoreError):
    """A conversation holds rows the model would silently not see."""


def is_envelope(data: Any) -> bool:
    """Whether `data` is the SDK's EncryptedSession envelope."""
    return isinstance(data, dict) and data.get("__enc__") == 1 and \
        isinstance(data.get("payload"), str)


def _decoded(raw: str | bytes) -> tuple[Any, str | None]:
    """The JSON in `raw`, or why it cannot be read (as the SDK's sessions decode it)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except (json.JSONDecodeError, TypeError):
        return None, "not JSON"
    if not isinstance(data, dict):
        return None, f"not an item (a JSON {type(data).__name__}, not an object)"
    # Text stored before input was checked may hold lone surrogates no request can encode.
    return encodable(data), None


def _opened(cipher: Fernet | MultiFernet, envelope: dict[str, Any],
            ttl: int) -> tuple[Any, str | None]:
    """The item in `envelope`; (None, None) when it is authentic but older than `ttl`."""
    from cryptography.fernet import InvalidToken

    token = envelope["payload"].encode("utf-8", "replace")
    try:
        cipher.extract_timestamp(token)  # the signature, not the age
    except InvalidToken:
        return None, "does not decrypt with the key"
    try:
        return _decoded(cipher.decrypt(token, ttl=ttl))
    except InvalidToken:
        return None, None


async def stored_rows(store: SessionStore, session_id: str, session: SessionABC,
                      last: int | None = None) -> list[StoredRow]:
    """`SessionStore._rows`: the rows of `session_id` (the `last` newest ones when given) read
    one by one, numbered by their place in the whole conversation; StoreError on an
    encryption mismatch."""
    doing = f"read conversation {session_id!r}"
    before, raw = (0, await store.guarded(store._raw_rows(session_id), doing)) if last is None \
        else await store.guarded(store._raw_tail(session_id, last), doing)
    cipher = None
    if store.encryption is not None:
        from .encryption import cipher_of

        cipher = cipher_of(session)
    rows = read_rows(raw, cipher, store.encryption.ttl if store.encryption else 0,
                     first=before + 1)
    check_mode(rows, store.encryption, session_id, store.description)
    return rows


def read_rows(raw_rows: Sequence[tuple[Any, str | bytes]], cipher: Fernet | MultiFernet | None,
              ttl: int = 0, first: int = 1) -> list[StoredRow]:
    """Each raw row read: decoded, and decrypted with `cipher` when the config encrypts;
    `first` is the number of the first row (later than 1 when only the newest are read)."""
    rows = []
    for number, (key, raw) in enumerate(raw_rows, start=first):
        data, problem = _decoded(raw)
        encrypted = is_envelope(data)
        if problem is None and cipher is not None:
            data, problem = _opened(cipher, data, ttl) if encrypted else \
                (None, "not encrypted (written without session.encryption)")
        rows.append(StoredRow(number, key, data, problem, encrypted))
    return rows


def check_mode(rows: Sequence[StoredRow], key: SessionKey | None, session_id: str,
               description: str) -> None:
    """StoreError when the conversation was written under the other encryption setting.

    Nothing can be read (or should be appended) then: a plaintext config would send the
    ciphertext to the model and store plaintext beside it, an encrypted one would see nothing.
    """
    where = f"conversation {session_id!r} in {description}"
    if key is None:
        if any(row.encrypted for row in rows):
            raise StoreError(
                f"{where} is encrypted (it was written with session.encryption) and this "
                "config has no session.encryption: add the encryption block with the key it "
                "was written with; nothing was read or changed")
        return
    if any(row.item is not None or row.expired for row in rows):
        return  # some rows are this key's: any others are unreadable rows, not a wrong key
    if any(row.encrypted for row in rows):
        raise StoreError(
            f"cannot decrypt conversation {session_id!r} with the key in {key.variable}: the "
            "key is not the one it was written with (or the data is damaged); nothing was read "
            "or changed")
    if any(row.problem and row.problem.startswith("not encrypted") for row in rows):
        raise StoreError(
            f"{where} holds unencrypted items (it was written without session.encryption); "
            "nothing was read or changed")


def describe_unreadable(rows: Sequence[StoredRow]) -> str:
    """`row 2: not JSON, row 5: does not decrypt with the key` (the first few)."""
    bad = [row for row in rows if row.problem is not None]
    shown = ", ".join(f"row {row.number}: {row.problem}" for row in bad[:5])
    return shown + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")


def check_readable(rows: Sequence[StoredRow], session_id: str, description: str) -> None:
    """UnreadableRowsError naming the rows the model would not see, if any."""
    bad = sum(row.problem is not None for row in rows)
    if bad:
        raise UnreadableRowsError(
            f"conversation {session_id!r} in {description} has "
            f"{count(bad, 'unreadable row')} ({describe_unreadable(rows)}) of "
            f"{rows[-1].number}; "
            "the model would not see them, so nothing was sent: `routing-runner sessions show` "
            "marks them, `routing-runner sessions repair CONFIG ID --drop-unreadable` drops them")


async def drop_unreadable(store: SessionStore, session_id: str) -> list[StoredRow]:
    """`SessionStore.drop_unreadable`: delete the unreadable rows, make the turn count right."""
    lease = await store._acquire(session_id)
    try:
        rows = await store.read_rows(session_id)
        bad = [row for row in rows if row.problem is not None]
        if not bad:
            return []
        await store.guarded(store._drop_rows(session_id, [row.key for row in bad]),
                            f"drop unreadable rows of conversation {session_id!r}")
        summary = await store.summary(session_id)
        if summary is not None and summary.turns is not None and \
                not any(row.expired for row in rows):
            kept = sum(is_user_message(row.item) for row in rows if row.item is not None)
            if kept != summary.turns:
                await store.record_turns(session_id, kept - summary.turns)
        return bad
    finally:
        lease.release()
