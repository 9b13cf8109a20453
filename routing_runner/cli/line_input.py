"""The interactive chat prompt: line editing and a history kept per config.

The standard library's `readline` gives the prompt Emacs-style editing (arrows, Home/End,
Ctrl-R search) and Up/Down through earlier messages, with no dependency: `input()` uses it once
it is imported. The history of each config lives in its own owner-only file under the data
folder, named by a hash of the config's absolute path, so two bots never share one and the
file name says nothing about the config. It is appended to after every line, so a chat that is
killed keeps what was typed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from routing_runner.private_files import (
    OWNER_ONLY_FILE,
    check_existing,
    open_private,
    private_folder,
)

HISTORY_LINES = 1000
# Escape sequences readline left in the line (a key it has no binding for) and other control
# characters: the terminal's business, never part of a message.
_CONTROL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?|[\x00-\x08\x0a-\x1f\x7f]")
# Colour codes in the prompt, which readline must be told take no room on the line.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def history_path(data_folder: Path, config: Path) -> Path:
    """Where the history of `config` is kept."""
    digest = hashlib.sha256(str(config.resolve()).encode()).hexdigest()[:24]
    return data_folder / "history" / f"{digest}.txt"


def clean(line: str) -> str:
    """`line` without escape sequences and control characters (a tab becomes a space)."""
    return _CONTROL.sub("", line.replace("\t", " "))


class History:
    """A history file: read once, appended to line by line, owner-only, never a symlink."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open(self, flags: int) -> int:
        private_folder(self.path.parent, ours=True)
        if not flags & os.O_CREAT and not check_existing(self.path):
            raise FileNotFoundError(self.path)
        descriptor = open_private(self.path, flags)
        os.fchmod(descriptor, OWNER_ONLY_FILE)  # a history file made looser by hand
        return descriptor

    def load(self) -> list[str]:
        """The remembered lines, oldest first (the file is trimmed when it grew too long)."""
        try:
            with os.fdopen(self._open(os.O_RDONLY), encoding="utf-8", errors="replace") as file:
                lines = [line for line in file.read().split("\n") if line]
        except FileNotFoundError:
            return []
        if len(lines) > 2 * HISTORY_LINES:
            lines = lines[-HISTORY_LINES:]
            replacement = self.path.with_name(self.path.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                replacement.unlink()
            with os.fdopen(History(replacement)._open(os.O_WRONLY | os.O_CREAT | os.O_EXCL),
                           "w", encoding="utf-8") as file:
                file.write("".join(f"{line}\n" for line in lines))
            os.replace(replacement, self.path)
        return lines[-HISTORY_LINES:]

    def append(self, line: str) -> None:
        """Remember one more line."""
        with os.fdopen(self._open(os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a",
                       encoding="utf-8") as file:
            file.write(line + "\n")


def terminal_reader(history: History | None,
                    warn: Callable[[str], None]) -> Callable[[str], str | None]:
    """Reads lines from the terminal with editing and `history`; None at end of input.

    A history that cannot be read or written is reported once through `warn`, and the chat
    goes on without it.
    """
    import readline

    readline.set_auto_history(False)
    readline.clear_history()
    keeping = history

    def lost(error: OSError) -> None:
        nonlocal keeping
        keeping = None
        warn(f"the input history is not kept: {error}")

    if keeping is not None:
        try:
            for line in keeping.load():
                readline.add_history(line)
        except OSError as error:
            lost(error)

    def read(prompt: str) -> str | None:
        try:
            line = clean(input(_ANSI.sub(lambda m: f"\001{m.group()}\002", prompt)))
        except EOFError:
            # Ctrl-D leaves the cursor on the prompt line; what is printed next needs its own.
            print()
            return None
        except KeyboardInterrupt:
            print()
            raise
        if line.strip():
            readline.add_history(line)
            if keeping is not None:
                try:
                    keeping.append(line)
                except OSError as error:
                    lost(error)
        return line

    return read
