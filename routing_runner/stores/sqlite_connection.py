"""The one connection per SQLite file that our state table is read and written through."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import ClassVar, TypeVar

from routing_runner.stores.locks import queued_writes

T = TypeVar("T")


class StateConnection:
    """One connection per database file for our state table, shared by a process's stores.

    A fresh connection per state read or write cost about 1 ms of CPU, three times a turn; one
    per store would cost three descriptors (the file, -wal, -shm) per open conversation, and a
    batch of 32 conversations must fit in 256. The connection closes with its last store, so
    nothing is open when replay forks its workers.
    """

    _shared: ClassVar[dict[tuple[Path, float], StateConnection]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.users = 0
        self.lock = threading.Lock()
        self.connection: sqlite3.Connection | None = None

    @classmethod
    def share(cls, path: Path, busy_timeout: float) -> StateConnection:
        """The state connection of `path`, counting one more user."""
        key = (path.resolve(), busy_timeout)
        with cls._guard:
            shared = cls._shared.get(key)
            if shared is None:
                shared = cls._shared[key] = cls(path, busy_timeout)
            shared.users += 1
            return shared

    def release(self) -> None:
        """One user fewer; the last one closes the connection."""
        with self._guard:
            self.users -= 1
            if self.users > 0:
                return
            self._shared.pop((self.path.resolve(), self.busy_timeout), None)
        with self.lock:
            if self.connection is not None:
                self.connection.close()
                self.connection = None

    def run(self, work: Callable[[sqlite3.Connection], T], queue: Path | None = None) -> T:
        """`work` on the connection, one thread at a time; a failed transaction rolls back.

        Work that writes passes the store's write `queue` and runs when its turn comes.
        """
        turn: AbstractContextManager[None] = nullcontext() if queue is None \
            else queued_writes(queue)
        with turn, self.lock:
            if self.connection is None:
                self.connection = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                                  isolation_level=None, check_same_thread=False)
            try:
                return work(self.connection)
            except BaseException:
                if self.connection.in_transaction:
                    self.connection.rollback()
                raise
