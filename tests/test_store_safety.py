"""What must fail, fails clearly: wrong keys, unreachable servers, bad ids, unsafe names."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from routing_runner.cli import app
from routing_runner.config.model import EncryptionConfig, SessionConfig
from routing_runner.errors import SessionIdError, StoreError
from routing_runner.stores import open_store
from routing_runner.stores.base import TableNames
from routing_runner.stores.encryption import new_key
from routing_runner.wording import redact_url

from . import session_services as services
from .conftest import REPO, write_config
from .test_store_backends import Backend, _backend

LANGUAGES = (REPO / "configs" / "languages.yaml").read_text(encoding="utf-8")


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def encrypted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from _backend(f"encrypted-{request.param}" if request.param != "sqlite"
                        else "encrypted", tmp_path)


def _write(backend: Backend, env: dict[str, str], session_id: str = "s1") -> None:
    async def write() -> None:
        store = open_store(backend.config, env)
        try:
            conversation = await store.open(session_id)
            await conversation.session.add_items([
                {"role": "user", "content": "secret message"},
                {"role": "assistant", "type": "message", "content": "secret reply"}])
        finally:
            await store.close()

    asyncio.run(write())


def _items(backend: Backend, env: dict[str, str], session_id: str = "s1") -> list[Any]:
    async def read() -> list[Any]:
        store = open_store(backend.config, env)
        try:
            conversation = await store.open(session_id)
            return await conversation.items()
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_wrong_key_is_an_error_and_changes_nothing(encrypted: Backend) -> None:
    _write(encrypted, encrypted.env)
    wrong = {**encrypted.env, "KEY": new_key()}

    with pytest.raises(StoreError, match="cannot decrypt conversation 's1' with the key in KEY"
                                         ": the key is not the one it was written with"):
        _items(encrypted, wrong)

    # Nothing was rolled back or dropped: the right key still reads everything.
    assert _items(encrypted, encrypted.env) == [
        {"role": "user", "content": "secret message"},
        {"role": "assistant", "type": "message", "content": "secret reply"}]


def test_items_are_stored_encrypted(tmp_path: Path) -> None:
    backend = next(_backend("encrypted", tmp_path))
    _write(backend, backend.env)
    raw = (tmp_path / "s.db").read_bytes() + (tmp_path / "s.db-wal").read_bytes() \
        if (tmp_path / "s.db-wal").exists() else (tmp_path / "s.db").read_bytes()
    assert b"secret" not in raw
    assert b'"__enc__"' in raw


def test_plaintext_items_under_an_encrypted_config_are_an_error(tmp_path: Path) -> None:
    backend = next(_backend("encrypted", tmp_path))
    plain = Backend("sqlite", SessionConfig(backend="sqlite", path=tmp_path / "s.db"), {})
    _write(plain, {})
    with pytest.raises(StoreError, match="holds unencrypted items"):
        _items(backend, backend.env)


def test_expired_items_are_skipped_not_mistaken_for_a_wrong_key(tmp_path: Path) -> None:
    backend = next(_backend("encrypted", tmp_path))
    _write(backend, backend.env)

    async def add_old_item() -> None:
        store = open_store(backend.config, backend.env)
        try:
            conversation = await store.open("s1")
            encrypted_session: Any = conversation.session.inner
            old = encrypted_session.cipher.encrypt_at_time(
                json.dumps({"role": "user", "content": "ancient"}).encode(),
                int(time.time()) - 2 * 86400)
            await encrypted_session.underlying_session.add_items(
                [{"__enc__": 1, "v": 1, "kid": "hkdf-v1", "payload": old.decode()}])
        finally:
            await store.close()

    asyncio.run(add_old_item())
    assert [i["content"] for i in _items(backend, backend.env)] == [
        "secret message", "secret reply"]


@pytest.mark.parametrize(("value", "message"), [
    (None, "reads its key from the environment variable KEY, which is not set"),
    ("correct horse battery staple", "KEY does not hold a session key"),
    ("c2hvcnQ=", "KEY does not hold a session key"),
])
def test_a_missing_or_weak_key_is_refused_before_anything_opens(
        tmp_path: Path, value: str | None, message: str) -> None:
    config = SessionConfig(path=tmp_path / "s.db", encryption=EncryptionConfig(86400, "KEY"))
    with pytest.raises(StoreError, match=message):
        open_store(config, {} if value is None else {"KEY": value})
    assert not (tmp_path / "s.db").exists()


def test_a_missing_optional_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "redis" else real(name, *a))
    with pytest.raises(StoreError, match=r"pip install 'routing-runner\[redis\]'"):
        open_store(SessionConfig(backend="redis"), {"REDIS_URL": "redis://127.0.0.1"})


@pytest.mark.parametrize("backend", ["sqlalchemy", "redis"])
def test_a_missing_url_variable_is_named(backend: str) -> None:
    variable = "DATABASE_URL" if backend == "sqlalchemy" else "REDIS_URL"
    with pytest.raises(StoreError, match=f"reads its URL from the environment variable "
                                         f"{variable} \\(session.url_env\\), which is not set"):
        open_store(SessionConfig(backend=backend), {})  # type: ignore[arg-type]


@pytest.mark.parametrize(("backend", "url", "shown"), [
    ("sqlalchemy", "postgresql://app:hunter2@127.0.0.1:1/test",
     "cannot reach the session database postgresql+asyncpg://app:***@127.0.0.1:1/test"),
    ("redis", "redis://:hunter2@127.0.0.1:1/0",
     "cannot reach the session store redis redis://:***@127.0.0.1:1/0"),
])
def test_an_unreachable_server_is_exit_3_with_the_password_hidden(
        cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        backend: str, url: str, shown: str) -> None:
    monkeypatch.setenv("STORE_URL", url)
    path = write_config(tmp_path, LANGUAGES.replace(
        "  backend: sqlite", f"  backend: {backend}\n  url_env: STORE_URL"))
    started = time.monotonic()
    result = cli.invoke(app, ["chat", str(path), "-m", "Hola"])
    assert time.monotonic() - started < 15
    assert result.exit_code == 3
    assert shown in result.stderr
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output
    listed = cli.invoke(app, ["sessions", "list", str(path)])
    assert listed.exit_code == 3 and shown in listed.stderr

    async def check() -> None:
        from routing_runner.config import load_config

        store = open_store(load_config(path).config.session)
        try:
            await store.check()
        finally:
            await store.close()

    with pytest.raises(StoreError, match=re.escape(shown)):
        asyncio.run(check())


@pytest.mark.parametrize("name", ["sqlite", "memory", "postgres", "redis", "encrypted"])
@pytest.mark.parametrize("bad", ["../x", "a/b", "x;DROP TABLE agent_messages", "k:messages",
                                 "*", "-flag", ""])
def test_bad_ids_are_refused_by_every_backend(name: str, bad: str, tmp_path: Path) -> None:
    backend = _backend(name, tmp_path)
    store_backend = next(backend)
    try:
        async def attempt() -> None:
            store = store_backend.store()
            try:
                for operation in (store.open, store.read_items, store.delete, store.summary):
                    with pytest.raises(SessionIdError, match="invalid session id"):
                        await operation(bad)
            finally:
                await store.close()

        asyncio.run(attempt())
    finally:
        backend.close()


@pytest.mark.parametrize("prefix", ["Bad", "x;drop", "a-b", "_x", "x_", "a" * 33])
def test_unsafe_table_prefixes_are_refused_where_they_are_used(prefix: str) -> None:
    with pytest.raises(StoreError, match="invalid table prefix"):
        TableNames.with_prefix(prefix)


def test_unsafe_key_prefixes_are_refused_where_they_are_used() -> None:
    from routing_runner.stores.redis import RedisStore

    for prefix in ("a:b", "a*", "", "x y"):
        with pytest.raises(StoreError, match="invalid Redis key prefix"):
            RedisStore("redis://127.0.0.1", key_prefix=prefix)


def test_credentials_are_hidden_in_every_shown_url() -> None:
    assert redact_url("redis://user:pw@host:6380/1") == "redis://user:***@host:6380/1"
    assert redact_url("rediss://:pw@host/0") == "rediss://:***@host/0"
    assert redact_url("https://TOKEN@example.com/v1") == "https://***@example.com/v1"
    assert redact_url("postgresql://db/x?password=pw&sslmode=require") == \
        "postgresql://db/x?password=***&sslmode=require"
    assert redact_url("http://h/v1?api-key=k&access_token=t&x=1") == \
        "http://h/v1?api-key=***&access_token=***&x=1"
    assert redact_url("redis://host:6379") == "redis://host:6379"
    assert redact_url("http://[::1/?key=k") == "http://*** (a URL that cannot be parsed)"


def test_redis_keys_expire_after_the_ttl(tmp_path: Path) -> None:
    backend = next(_backend("redis", tmp_path))
    _write(backend, backend.env)
    prefix = backend.config.key_prefix
    for key in (f"{prefix}:s1", f"{prefix}:s1:messages", f"{prefix}:s1:state"):
        assert 3500 < asyncio.run(services.redis_ttl(key)) <= 3600, key
    services.drop_redis_keys(prefix)
