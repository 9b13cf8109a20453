"""Python objects a config names as "package.module:attribute": `function:` tools and guardrails.

Importing runs the user's code, so `validate` does it only when asked (`--check-imports`);
`chat` and `replay` resolve every target before the first message, and a target that does not
import is a config error at the place it is written (`file:line:col`), like any other.

A config's modules are looked for after the installed packages: in its `python_path:` folders,
then in its own folder (`search_path`). Resolving adds those folders at the end of `sys.path`
(once each) and imports the module normally, so a module is imported once per process whatever
names it. At the end, not the front: a `http.py` or `json.py` beside a config must not replace
the module of that name the runner itself uses.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routing_runner.errors import ConfigError, Problem
from routing_runner.wording import did_you_mean

from .document import Document, PathKey
from .model import Config
from .tools import FunctionToolConfig

# What the schema accepts: dotted module, a colon, a dotted attribute path.
TARGET_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*" \
                 r"(\.[A-Za-z_][A-Za-z0-9_]*)*$"
_TARGET = re.compile(TARGET_PATTERN)


class ImportFailed(Exception):
    """A target that cannot be resolved: why, in words for the user."""


@dataclass(frozen=True)
class ImportTarget:
    """A "module:attribute" written in a config, with where it was written."""

    target: str
    file: str
    line: int
    column: int
    path: str

    @classmethod
    def at(cls, document: Document, where: PathKey, target: str) -> ImportTarget:
        """The target written at `where` of `document`."""
        problem = document.problem(where, "")
        return cls(target, problem.file, problem.line, problem.column, problem.path)

    def problem(self, message: str) -> Problem:
        """A problem located where the target is written."""
        return Problem(self.file, self.line, self.column, self.path, message)

    def resolve(self, python_path: Sequence[Path]) -> Any:
        """The object named; ImportFailed saying why not."""
        return resolve(self.target, python_path)


def resolve(target: str, python_path: Sequence[Path]) -> Any:
    """The object "package.module:attribute" names, importing the module along `python_path`."""
    if not _TARGET.match(target):
        raise ImportFailed(f"{target!r} is not of the form package.module:attribute")
    module_name, _, attribute = target.partition(":")
    for folder in python_path:
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ImportFailed(f"module {exc.name!r} not found in the installed packages, the "
                               "python_path folders or the config's folder") from None
        raise ImportFailed(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # the module's own code failed: say what, not a traceback
        raise ImportFailed(f"importing {module_name!r} failed: "
                           f"{type(exc).__name__}: {exc}") from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            names = [n for n in dir(value) if not n.startswith("_")]
            raise ImportFailed(f"module {module_name!r} has no attribute {attribute!r}"
                               f"{did_you_mean(part, names)}")
        value = getattr(value, part)
    if not callable(value):
        raise ImportFailed(f"{target!r} is a {type(value).__name__}, not a function")
    return value


def check_imports(targets: Iterable[ImportTarget], python_path: Sequence[Path]) -> None:
    """Resolve every target; ConfigError listing each that fails, at its place in the file."""
    problems = []
    for target in targets:
        try:
            target.resolve(python_path)
        except ImportFailed as exc:
            problems.append(target.problem(str(exc)))
    if problems:
        raise ConfigError(problems)


def search_path(config: Config) -> tuple[Path, ...]:
    """Where `config`'s modules are looked for after the installed packages: its python_path
    folders, then its own folder."""
    return (*config.python_path, config.source.resolve().parent)


def import_callable(function: FunctionToolConfig, config: Config) -> Callable[..., Any]:
    """The callable a `function:` tool of `config` names; ImportFailed saying why not."""
    return resolve(function.function, search_path(config))  # type: ignore[no-any-return]


def check_tool_imports(config: Config, document: Document) -> None:
    """Import every `function:` tool of `config`; ConfigError listing each one that fails."""
    check_imports([ImportTarget.at(document, ("tools", entry.name, "function"),
                                   entry.spec.function)
                   for entry in config.tools.values()
                   if isinstance(entry.spec, FunctionToolConfig)], search_path(config))
