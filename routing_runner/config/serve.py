"""The `serve:` block: how `routing-runner serve` listens and what it allows a request.

Its own module, so the config model only gains one field. The schema checks each value's type
and range; `serve` flags override the block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ServeConfig:
    """Where `serve` listens, who it lets in and how much one request may ask for."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # The environment variable holding the bearer token; no token is asked for when unset.
    auth_token_env: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576
    max_message_chars: int = 32_000
    max_concurrent_turns: int = 32
    turn_timeout: float = 300.0
    # How long a request waits for a conversation another request is answering (then 409).
    lock_wait: float = 30.0
    shutdown_grace: float = 30.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ServeConfig:
        """The block as the schema validated it (`x-` notes and unknown keys left out)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if "cors_origins" in values:
            values["cors_origins"] = tuple(values["cors_origins"])
        return cls(**values)
