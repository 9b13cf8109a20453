"""Planning a replay: one job per transcript and repeat, each with its own session id, and how
many conversations run at once within the open-file limit."""

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

from .descriptors import open_descriptors, open_file_limit
from .script import Transcript

SESSION_PREFIX = "replay-"
# SQLite connections are per thread and per session, so the threads serving session files
# bound the connections each running conversation may hold.
SESSION_THREADS = 2


def session_id_for(transcript: Transcript, repeat: int = 1, repeats: int = 1) -> str:
    """`replay-<slug of the name>-<hash of the name>`, plus `-r<n>` when repeating.

    Stable across runs and machines, so a run can be found again; the hash keeps names whose
    slugs collide (`Español`, `espanol`) apart.
    """
    suffix = f"-r{repeat}" if repeats > 1 else ""
    return f"{SESSION_PREFIX}{name_slug(transcript.name)}{suffix}"


def name_slug(name: str) -> str:
    """`<slug of the name>-<hash of the name>`: a transcript's name as a file or id part."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].strip("-")
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{slug or 'transcript'}-{digest}"


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


# Descriptors one running conversation holds, by session backend (measured with a sampler of
# /proc/self/fd over batches of each): sqlite, its lock file and a connection (the database and
# its WAL file) on each thread serving session files - the -shm file and the state connection
# are per process; sqlalchemy, a pooled connection, two while its store checks the tables;
# redis, a connection, two when a read and a write overlap.
FILES_PER_SESSION = {"sqlite": 1 + 2 * SESSION_THREADS, "sqlalchemy": 2, "redis": 2,
                     "memory": 0}
# A model on the network adds a socket: a conversation has one request in flight at a time.
FILES_PER_MODEL_CONNECTION = 1
# Files a replaying process opens besides its conversations: the event loop, the shared state
# connection, a store being opened, the worker's pipes, modules imported on first use.
RESERVED_FILES = 32


@dataclass(frozen=True)
class Concurrency:
    """How many conversations a batch runs at once, after fitting the open-file limit."""

    requested: int
    allowed: int
    processes: int
    per_conversation: int
    limit: int | None

    @property
    def notice(self) -> str | None:
        """The one line that says -j was lowered, and why; None when it was not."""
        if self.allowed >= self.requested:
            return None
        each = self.allowed // self.processes
        where = f" in each of {self.processes} workers" if self.processes > 1 else ""
        return (f"replay: -j {self.requested} lowered to {self.allowed}: the open-file limit "
                f"({self.limit}, ulimit -n) leaves room for {each} conversations at once{where}"
                f", {self.per_conversation} files each; raise the limit to run more")


def fit_concurrency(jobs: Sequence[Job], requested: int, processes: int = 1) -> Concurrency:
    """`requested` conversations at once over `processes`, or as many as open files allow.

    The soft open-file limit is first raised as far as the hard limit allows; each process
    (a worker inherits the raised limit) runs its share of the conversations.
    """
    per_conversation = max(
        (FILES_PER_SESSION[job.transcript.config.session.backend]
         + (0 if job.provider.all_offline else FILES_PER_MODEL_CONNECTION) for job in jobs),
        default=0)
    share = -(-requested // processes)
    in_use = open_descriptors() + RESERVED_FILES
    limit = open_file_limit(in_use + share * per_conversation)
    if limit is None or per_conversation == 0:
        return Concurrency(requested, requested, processes, per_conversation, limit)
    each = max(1, (limit - in_use) // per_conversation)
    return Concurrency(requested, min(requested, each * processes), processes,
                       per_conversation, limit)
