"""Files that hold conversations or reports: owner-only, never reached through a symlink.

A symlink planted where routing-runner writes (the session database, its -wal/-shm side files,
a lock file, a report) would redirect the write, and the chmod that makes it private, to a
file of the planter's choosing; a file another user made there could be read by them. So every
such path is checked with lstat and created with O_NOFOLLOW, and a file or folder found there
must be a real file or folder owned by the user running routing-runner.

The checks raise UnsafePathError (an OSError) with a sentence saying what is wrong and what to
do; callers turn it into their own error (a StoreError, a usage error).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

OWNER_ONLY_FILE = 0o600
OWNER_ONLY_FOLDER = 0o700
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class UnsafePathError(OSError):
    """Something other than the user's own file or folder is at a path routing-runner uses."""


def _uid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None  # Windows: no owner check


def _refuse(path: Path, why: str) -> UnsafePathError:
    return UnsafePathError(f"refusing to use {path}: {why}; remove it, or choose another path")


def _check(path: Path, found: os.stat_result, folder: bool, regular: bool = True) -> None:
    """UnsafePathError unless `found` (an lstat or fstat of `path`) is the user's own.

    With `regular` False a device (a report written to /dev/null) is accepted as it is.
    """
    if stat.S_ISLNK(found.st_mode):
        raise _refuse(path, "it is a symbolic link, and routing-runner never writes through one")
    if folder and not stat.S_ISDIR(found.st_mode):
        raise _refuse(path, "it is not a folder")
    if not folder and not stat.S_ISREG(found.st_mode):
        if not regular:
            return
        raise _refuse(path, "it is not a regular file")
    uid = _uid()
    if uid is not None and found.st_uid != uid:
        raise _refuse(path, f"it belongs to another user (uid {found.st_uid})")


def check_existing(path: Path, *, folder: bool = False, regular: bool = True) -> bool:
    """Whether `path` exists; UnsafePathError when it is not the user's own file (or folder).

    With `regular` False anything but a symlink or another user's regular file is accepted.
    """
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return False
    _check(path, found, folder, regular)
    return True


def private_folder(path: Path, *, ours: bool) -> None:
    """Make sure the folder `path` exists, creating it and missing parents owner-only.

    A folder that is `ours` (it holds only routing-runner's files) must be a real folder owned
    by the user, and group and other access is taken away from it. Any other folder (one the
    user chose, reached through a symlink perhaps) is used as it is: the files routing-runner
    puts in it are checked one by one.
    """
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            break
        missing.append(candidate)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, OWNER_ONLY_FOLDER)
        except FileExistsError:  # made meanwhile by another process: checked below
            pass
    if not ours:
        return
    found = os.lstat(path)
    _check(path, found, folder=True)
    if stat.S_IMODE(found.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(found.st_mode) & OWNER_ONLY_FOLDER)


def open_private(path: Path, flags: int, *, regular: bool = True) -> int:
    """A descriptor of the user's own file at `path`, created owner-only if missing.

    `flags` are os.open flags (O_CREAT is added); a symlink at `path` is never followed.
    With `regular` False an existing device is opened too (see `_check`).
    """
    try:
        fd = os.open(path, flags | os.O_CREAT | _NO_FOLLOW, OWNER_ONLY_FILE)
    except OSError as exc:
        if os.path.islink(path):
            raise _refuse(path, "it is a symbolic link, and routing-runner never writes "
                                "through one") from exc
        raise
    try:
        _check(path, os.fstat(fd), folder=False, regular=regular)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private(path: Path) -> None:
    """Create `path` as an empty owner-only file if nothing is there; check it if it exists.

    An existing file is never opened: closing a descriptor of a SQLite database drops every
    POSIX lock this process holds on it, including those of connections in use.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | _NO_FOLLOW,
                         OWNER_ONLY_FILE))
    except FileExistsError:
        check_existing(path)


def write_private(path: Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path`, created owner-only, never through a symlink.

    An existing file of the user's is replaced in place and keeps its permissions; a device
    (/dev/null) is written to as it is.
    """
    fd = open_private(path, os.O_WRONLY | os.O_TRUNC, regular=False)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode("utf-8") if isinstance(data, str) else data)
