"""Resolving `function:` tool paths: importing the user's modules from `python_path`.

Importing runs the user's code, so `validate` does it only when asked (`--check-imports`);
`chat` and `replay` do it before the first message, so a wrong path fails there with the same
`file:line:col` line rather than in the middle of a conversation.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from routing_runner.errors import ConfigError, Problem
from routing_runner.wording import did_you_mean

from .document import Document
from .model import Config
from .tools import FunctionToolConfig


class ImportFailed(Exception):
    """A `function:` path that does not resolve to a callable; the message says why."""


def import_callable(function: FunctionToolConfig,
                    python_path: tuple[Path, ...]) -> Callable[..., Any]:
    """The callable `function` names, its module found on `python_path` first."""
    for folder in reversed(python_path):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        target: Any = importlib.import_module(function.module)
    except ModuleNotFoundError as exc:
        raise ImportFailed(f"module {exc.name!r} not found in the python_path folders or the "
                           "installed packages") from None
    except Exception as exc:
        raise ImportFailed(f"importing {function.module!r} failed: "
                           f"{type(exc).__name__}: {exc}") from None
    for part in function.attribute.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            raise ImportFailed(f"module {function.module!r} has no attribute "
                               f"{function.attribute!r}{did_you_mean(part, names)}")
        target = getattr(target, part)
    if not callable(target):
        raise ImportFailed(f"{function.function!r} is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]


def check_imports(config: Config, document: Document) -> None:
    """Import every `function:` tool of `config`; ConfigError listing each one that fails."""
    problems: list[Problem] = []
    for entry in config.tools.values():
        if isinstance(entry.spec, FunctionToolConfig):
            try:
                import_callable(entry.spec, config.python_path)
            except ImportFailed as exc:
                problems.append(document.problem(("tools", entry.name, "function"), str(exc)))
    if problems:
        raise ConfigError(problems)
