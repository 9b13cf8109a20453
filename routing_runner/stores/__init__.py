"""The session store backends and `open_store`, which picks one by name: one module per backend.

Each module imports its driver (and the Agents SDK) only when its store is used, so a missing
optional package is reported by name only for the backend that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from routing_runner.config.model import SessionConfig
from routing_runner.errors import StoreError

from .base import SessionStore


def _url(config: SessionConfig, env: Mapping[str, str]) -> str:
    variable = config.url_variable()
    url = env.get(variable, "").strip()
    if not url:
        raise StoreError(
            f"the {config.backend} session store reads its URL from the environment variable "
            f"{variable} (session.url_env), which is not set; export {variable}=<url>")
    return url


def open_store(config: SessionConfig, env: Mapping[str, str] | None = None) -> SessionStore:
    """The store a config's `session` block selects, its URL and key read from `env`.

    Nothing is connected yet: an unreachable server is reported by `check()` or the first
    `open`. A missing variable, a malformed URL or key, or a missing optional package is a
    StoreError now.
    """
    env = os.environ if env is None else env
    key = None
    if config.encryption is not None:
        from .encryption import load_key

        key = load_key(config.encryption, env)
    if config.backend == "memory":
        from .memory import MemoryStore

        store: SessionStore = MemoryStore(encryption=key)
    elif config.backend == "sqlite":
        from .sqlite import SQLiteStore

        store = SQLiteStore(config.database_path(), table_prefix=config.table_prefix,
                            encryption=key, own_folder=config.path is None)
    elif config.backend == "sqlalchemy":
        from .sqlalchemy import SQLAlchemyStore

        store = SQLAlchemyStore(_url(config, env), table_prefix=config.table_prefix,
                                encryption=key)
    else:
        from .redis import RedisStore

        store = RedisStore(_url(config, env), key_prefix=config.key_prefix, ttl=config.ttl,
                           encryption=key)
    store.owner = config.owner
    return store
