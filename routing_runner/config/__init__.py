"""Load a config file: YAML → document → interpolation → schema → typed config.

Never imports the Agents SDK, so `routing-runner validate` stays fast and needs no key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from routing_runner.errors import ConfigError, Problem

from .build import build_config
from .document import Document, read_document
from .extras import missing_extras
from .interpolate import interpolate
from .model import Config
from .schema import validate


@dataclass(frozen=True)
class LoadedConfig:
    """A valid config and the warnings found while loading it."""

    config: Config
    warnings: tuple[Problem, ...]
    # The interpolated document the config was built from: a transcript's `config:` overrides
    # patch it (`Document.merged`) and go through the same build, without reading the file again.
    document: Document
    # What this machine lacks to run the config (a provider's optional package).
    unavailable: tuple[Problem, ...] = ()


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Load and check `path`; raise ConfigError listing every error (and warning) found."""
    path = Path(path)
    document = read_document(path)
    if not isinstance(document.data, dict):
        found = "an empty file" if document.data is None else f"a {type(document.data).__name__}"
        raise ConfigError([document.problem((), f"a config is a YAML mapping, found {found}")])
    problems = interpolate(document, os.environ if env is None else env)
    unresolved = {p.path for p in problems}
    # A value whose interpolation failed is reported once, not again by the schema.
    problems += [p for p in validate(document, "config") if p.path not in unresolved]
    if problems:
        raise ConfigError(sorted(problems, key=_file_order), checks_skipped=True)
    config, problems = build_config(document, path)
    problems.sort(key=_file_order)
    if config is None:
        raise ConfigError(problems)
    return LoadedConfig(config=config, warnings=tuple(problems), document=document,
                        unavailable=missing_extras(document, config))


def _file_order(problem: Problem) -> tuple[int, int]:
    return (problem.line, problem.column)
