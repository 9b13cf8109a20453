"""The exceptions routing-runner raises, each carrying the exit code the CLI uses.

    RoutingRunnerError                 exit 3 unless a subclass says otherwise
    ├── UserInputError                 exit 2: a file or an argument the user wrote is wrong
    │   ├── ConfigError                a config failed to load; holds every problem found
    │   └── SessionIdError             a session id is malformed or unknown
    └── RunFailure                     exit 3: the run itself failed (model provider, store)
        ├── ProviderError              the model provider is unusable (missing key, bad URL)
        └── StoreError                 the session store cannot be opened or written
            └── SessionInUseError      another process has the conversation open (sqlite), or
                                       another turn held it longer than the wait (turn_lock)

Exit code 1 is reserved for "ran fine, but expectations failed" (replay) and is not an
exception: it is a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

EXIT_OK = 0
EXIT_EXPECTATIONS_FAILED = 1
EXIT_USER_INPUT = 2
EXIT_RUN_FAILURE = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in a file, with where it is."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        prefix = "warning: " if self.severity == "warning" else ""
        location = f" {self.path}:" if self.path else ""
        return f"{where}:{location} {prefix}{self.message}"


class RoutingRunnerError(Exception):
    """Base class of every error routing-runner reports to a user."""

    exit_code = EXIT_RUN_FAILURE


class UserInputError(RoutingRunnerError):
    """Something the user wrote (a file, an argument) must change."""

    exit_code = EXIT_USER_INPUT


class ConfigError(UserInputError):
    """A file failed to load; `problems` lists every problem found, in file order.

    `checks_skipped` is True when the problems stopped the checks of meaning (handoff targets,
    the entry agent, instruction files), which need a config of the right shape: more
    problems may show once these are fixed.
    """

    def __init__(self, problems: Sequence[Problem], *, checks_skipped: bool = False) -> None:
        self.problems = tuple(problems)
        self.checks_skipped = checks_skipped
        super().__init__("\n".join(str(p) for p in self.problems))


class SessionIdError(UserInputError):
    """A session id is malformed or names no stored conversation."""


class RunFailure(RoutingRunnerError):
    """The run failed for a reason outside the user's files."""

    exit_code = EXIT_RUN_FAILURE


class ProviderError(RunFailure):
    """The model provider cannot be used as configured."""


class ReportError(RunFailure):
    """A report could not be written (the run itself is over and was reported)."""


class StoreError(RunFailure):
    """The session store cannot be opened, read or written."""


class SessionInUseError(StoreError):
    """Another process or turn has this conversation; it can be continued once that one ends."""
