"""Planning a replay: one job per transcript and repeat, each with its own session id."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from routing_runner.config.model import SessionConfig
from routing_runner.runtime.providers import ResolvedProvider, resolve_provider
from routing_runner.stores import open_store

from .script import Transcript

SESSION_PREFIX = "replay-"


def session_id_for(transcript: Transcript, repeat: int = 1, repeats: int = 1) -> str:
    """`replay-<slug of the name>-<hash of the name>`, plus `-r<n>` when repeating.

    Stable across runs and machines, so a run can be found again; the hash keeps names whose
    slugs collide (`Español`, `espanol`) apart.
    """
    ascii_name = unicodedata.normalize("NFKD", transcript.name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].strip("-")
    digest = hashlib.sha256(transcript.name.encode()).hexdigest()[:8]
    suffix = f"-r{repeat}" if repeats > 1 else ""
    return f"{SESSION_PREFIX}{slug or 'transcript'}-{digest}{suffix}"


@dataclass(frozen=True)
class Job:
    """One conversation to run: a transcript, its repeat number and its session."""

    index: int
    transcript: Transcript
    provider: ResolvedProvider
    session_id: str
    repeat: int = 1
    repeats: int = 1


def plan(transcripts: Sequence[Transcript], repeat: int = 1,
         env: Mapping[str, str] | None = None) -> list[Job]:
    """A job per transcript and repeat, providers resolved (ProviderError before any run)."""
    environment = os.environ if env is None else env
    providers: dict[int, ResolvedProvider] = {}
    jobs: list[Job] = []
    for transcript in transcripts:
        key = id(transcript.config)
        if key not in providers:
            providers[key] = resolve_provider(transcript.config, environment)
        for n in range(1, repeat + 1):
            jobs.append(Job(len(jobs), transcript, providers[key],
                            session_id_for(transcript, n, repeat), n, repeat))
    return jobs


def check_stores(jobs: Sequence[Job]) -> None:
    """Open and close each distinct session store once: a broken one fails before any run."""
    sessions: list[SessionConfig] = []
    for job in jobs:
        if job.transcript.config.session not in sessions:
            sessions.append(job.transcript.config.session)

    async def probe() -> None:
        for session in sessions:
            store = open_store(session)
            try:
                # Shared stores connect lazily: check() proves the server answers now.
                await store.check()
            finally:
                await store.close()

    asyncio.run(probe())
