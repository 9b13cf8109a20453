"""One process per conversation: an exclusive `flock` on a lock file per session id.

The lock is taken without waiting (a second chat on the same conversation is refused at once,
not queued behind a chat that may last an hour) and the kernel drops it when the process dies,
so a crash never leaves a conversation locked. The same file serves a chat's lease (the whole
chat) and a turn's hold (stores.turn_lock), so the two exclude each other. Lock files live in a
folder next to the database (`sessions.db-locks/<session id>.lock`), owner-only like the
database, and are deleted on release.

Deleting a lock file while someone might still open it is the classic flock race: the deleter
and a late opener would lock two different inodes. So a lock only counts once the locked file
is still the one at the path; otherwise it is taken again.

Writes to the database queue on one more lock file, `.writes.lock` in the same folder (no
session id starts with a dot). SQLite's own wait for its write lock polls, sleeping up to 100
ms between tries, and nothing makes waiters take turns: on a busy machine the lock is almost
always held by a transaction whose thread waits for the CPU or the GIL between statements, and
a waiter can lose every try for as long as its timeout lasts ("database is locked" after 5 s)
while the others keep writing. A blocking flock has no timeout and the kernel wakes a waiter
as soon as the lock is free, so a writer that holds the queue finds SQLite's lock free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from routing_runner.private_files import open_private, private_folder
from routing_runner.stores.base import Lease

WRITES_LOCK = ".writes.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; conversations are not locked
    fcntl = None  # type: ignore[assignment]


class FileLease(Lease):
    """An exclusive flock held on `path` until released; the file goes with it."""

    exclusive = True

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlinked while still held, so no one can lock this inode after we let go (a late
        # opener finds it gone and locks a new file); a folder of old lock files never grows.
        self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None


def try_lock(folder: Path, session_id: str) -> Lease | None:
    """The lease of `session_id`, or None when another process holds it."""
    if fcntl is None:  # pragma: no cover
        return Lease()
    private_folder(folder, ours=True)
    path = folder / f"{session_id}.lock"
    while True:
        fd = open_private(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and current.st_ino == os.fstat(fd).st_ino:
            return FileLease(path, fd)
        os.close(fd)  # the file was deleted (with its lock) meanwhile: lock the new one


@contextmanager
def queued_writes(folder: Path) -> Iterator[None]:
    """Wait for this store's turn to write, then hold it (one write transaction, not longer).

    A fresh descriptor per use: flocks of one process's threads on one descriptor would not
    exclude each other.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    private_folder(folder, ours=True)  # deleted meanwhile? made again, as try_lock does
    fd = open_private(folder / WRITES_LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the flock
