"""The PostgreSQL and Redis servers the shared-store tests use, and how they clean up.

These tests must run in CI: an unreachable server fails them (with how to start it) rather
than skipping. Set ROUTING_RUNNER_SKIP_SERVICES=1 to skip them on purpose instead.
Every test gets its own table prefix / key prefix and removes what it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_URL = os.environ.get("ROUTING_RUNNER_TEST_DATABASE_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ROUTING_RUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SKIP_VARIABLE = "ROUTING_RUNNER_SKIP_SERVICES"
HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
             "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
}
_reachable: dict[str, str | None] = {}


def unique_prefix() -> str:
    """A table / key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


async def _probe_postgres() -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(POSTGRES_URL, connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def _probe_redis() -> None:
    import redis.asyncio

    client = redis.asyncio.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        await client.ping()
    finally:
        await client.aclose()


def require(service: str) -> None:
    """Fail (or skip, when asked to) unless `service` answers."""
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{SKIP_VARIABLE}=1: not testing against {service}")
    if service not in _reachable:
        probe = _probe_postgres if service == "PostgreSQL" else _probe_redis
        try:
            asyncio.run(probe())
            _reachable[service] = None
        except Exception as exc:  # any failure means: not usable for these tests
            _reachable[service] = f"{type(exc).__name__}: {exc}"
    if _reachable[service] is not None:
        pytest.fail(f"{service} is not reachable ({_reachable[service]}); start it with "
                    f"`{HOW_TO_START[service]}`, or set {SKIP_VARIABLE}=1 to skip these tests",
                    pytrace=False)


async def _drop_postgres(prefix: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.begin() as conn:
            for table in ("agent_messages", "agent_sessions", "routing_runner_state"):
                await conn.execute(text(f'DROP TABLE IF EXISTS "{prefix}_{table}"'))
    finally:
        await engine.dispose()


async def _drop_redis(prefix: str) -> None:
    import redis.asyncio

    client = redis.asyncio.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def drop_postgres_tables(prefix: str) -> None:
    """Remove the tables a test created under `prefix`."""
    asyncio.run(_drop_postgres(prefix))


def drop_redis_keys(prefix: str) -> None:
    """Remove the keys a test wrote under `prefix`."""
    asyncio.run(_drop_redis(prefix))


async def redis_ttl(key: str) -> int:
    """Seconds until `key` expires (-1: never, -2: no such key)."""
    import redis.asyncio

    client = redis.asyncio.from_url(REDIS_URL)
    try:
        return int(await client.ttl(key))
    finally:
        await client.aclose()


@contextlib.contextmanager
def postgres_prefix() -> Iterator[str]:
    """A fresh table prefix on the test PostgreSQL (which must answer); its tables go after."""
    require("PostgreSQL")
    prefix = unique_prefix()
    try:
        yield prefix
    finally:
        drop_postgres_tables(prefix)


@contextlib.contextmanager
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the test Redis (which must answer); its keys go after."""
    require("Redis")
    prefix = unique_prefix()
    try:
        yield prefix
    finally:
        drop_redis_keys(prefix)
