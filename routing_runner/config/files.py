"""Reading the text files routing-runner is given: regular files only, UTF-8, within a limit."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routing_runner.errors import Problem

    from .document import Document, PathKey

KIB = 1024
MIB = 1024 * KIB
# Size limits of the files routing-runner reads, far above any real one: a config of a few
# hundred agents is well under 100 KiB, and instructions above 1 MiB (~250k tokens) fit no
# model's context. A transcript file may hold a whole test suite. Without limits a mistyped
# argument (/dev/zero, a log file) would be read until memory runs out.
MAX_CONFIG_BYTES = 1 * MIB
MAX_INSTRUCTIONS_BYTES = 1 * MIB
MAX_TRANSCRIPT_BYTES = 10 * MIB


class UnreadableFile(Exception):
    """A file that cannot be used as text: why, in words for the user (no file name)."""


class MissingFile(UnreadableFile):
    """There is no file at the path."""


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n // KIB} KiB"


def read_text_file(path: Path, limit: int) -> str:
    """The UTF-8 text of the regular file at `path`, at most `limit` bytes; else UnreadableFile.

    The file is opened non-blocking and checked after opening (no race with a swap), so a
    FIFO cannot hang the open and a device or folder is refused before anything is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise MissingFile("file not found") from None
    except IsADirectoryError:
        raise UnreadableFile("is a folder, not a file") from None
    except ValueError:  # a NUL byte in the path
        raise UnreadableFile("the path contains a NUL character") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadableFile("is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"is {_file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise UnreadableFile(f"is {info.st_size:,} bytes; the limit is {_size(limit)}")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)  # the file may have grown since fstat
    except OSError as exc:
        raise UnreadableFile(f"cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnreadableFile(f"is more than {_size(limit)}, the limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"is not UTF-8 text ({exc.reason} at byte {exc.start:,})") from None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def read_beside(document: Document, base: Path, relative: str, where: PathKey,
                problems: list[Problem], outside: str) -> tuple[str, Path] | None:
    """The text and resolved path of `relative`, a file the config at `document` names in its
    folder `base` or below it; None with a problem at `where` when it is not one (`outside`
    says so after the quoted name) or cannot be read."""
    shown = document.quote(where, relative)
    candidate = (base / relative).resolve()
    if "\0" in relative or Path(relative).is_absolute() or not candidate.is_relative_to(base):
        problems.append(document.problem(where, f"{shown} {outside}"))
        return None
    try:
        return read_text_file(candidate, MAX_INSTRUCTIONS_BYTES), candidate
    except MissingFile:
        problems.append(document.problem(where, f"file {shown} not found next to the config"))
    except UnreadableFile as exc:
        problems.append(document.problem(where, f"file {shown} {exc}"))
    return None
