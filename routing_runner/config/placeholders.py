"""Context placeholders in instructions: `{{ name }}` filled from a conversation's context.

The syntax is deliberately tiny - a name between double braces, nothing else - so filling it
can never run code or reach an attribute: the text is split once at load time and filled by
joining strings. `{{{{` writes a literal `{{`. A placeholder whose name the config's `context:`
does not declare is a config error located at the placeholder itself, not a blank at run time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from routing_runner.errors import Problem, UserInputError
from routing_runner.wording import did_you_mean

from .document import Document, PathKey, Position

# A name as context keys are written (the schema's pattern for `context:` keys).
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(r"\{\{\{\{|\{\{\s*(?P<name>[^{}]*?)\s*\}\}")
_NAME = re.compile(NAME)


@dataclass(frozen=True)
class Template:
    """Instructions split into literal text and placeholder names, alternating.

    `parts[0::2]` are literal texts, `parts[1::2]` placeholder names.
    """

    parts: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The placeholder names, in order, with repeats."""
        return self.parts[1::2]

    def fill(self, context: Mapping[str, str]) -> str:
        """The text with every placeholder replaced by its context value."""
        return "".join(part if i % 2 == 0 else context[part] for i, part in enumerate(self.parts))


@dataclass(frozen=True)
class BadPlaceholder:
    """A `{{ ... }}` that is not a name: its text and offset in the instructions."""

    text: str
    offset: int


def parse(text: str) -> tuple[Template, list[BadPlaceholder]]:
    """The template of `text`, and every placeholder that does not hold a plain name."""
    parts: list[str] = []
    literal: list[str] = []
    bad: list[BadPlaceholder] = []
    position = 0
    for found in _TOKEN.finditer(text):
        literal.append(text[position:found.start()])
        position = found.end()
        name = found.group("name")
        if name is None:
            literal.append("{{")
        elif _NAME.fullmatch(name):
            parts += ["".join(literal), name]
            literal = []
        else:
            bad.append(BadPlaceholder(found.group(0), found.start()))
            literal.append(found.group(0))
    literal.append(text[position:])
    parts.append("".join(literal))
    return Template(tuple(parts)), bad


def offsets(text: str, name: str) -> list[int]:
    """Where each placeholder `{{ name }}` starts in `text`."""
    return [m.start() for m in _TOKEN.finditer(text) if (m.group("name") or "") == name]


def check_template(document: Document, where: PathKey, text: str,
                   declared: Mapping[str, str | None],
                   instructions_file: str | None = None) -> list[Problem]:
    """Problems of the placeholders in `text` (found at `where`), each at its own line:col.

    With `instructions_file` the text is that file's, and problems point into it; otherwise
    into the YAML source the value was written in.
    """
    template, bad = parse(text)
    located = _Locator(document, where, text, instructions_file)
    problems = [located.at(b.offset, b.text,
                           f"{b.text!r} is not a placeholder: write a context name such as "
                           "{{ customer_name }}, or {{{{ for a literal '{{'")
                for b in bad]
    reported: set[str] = set()
    for name in template.names:
        if name in declared or name in reported:
            continue
        reported.add(name)
        hint = (f"declare it under the top-level 'context:' (e.g. {name}: null for a value "
                "each conversation must give)") if not declared else \
            f"the declared context keys are: {', '.join(sorted(declared))}"
        offset = offsets(text, name)[0]
        problems.append(located.at(offset, text[offset:text.index("}}", offset) + 2],
                                   f"placeholder {{{{ {name} }}}} has no context key; {hint}"))
    return problems


@dataclass(frozen=True)
class _Locator:
    document: Document
    where: PathKey
    text: str
    instructions_file: str | None

    def at(self, offset: int, token: str, message: str) -> Problem:
        """A problem at the placeholder `token` found at `offset` of the text."""
        if self.instructions_file is not None:
            line, column = _line_col(self.text, offset)
            return Problem(self.instructions_file, line, column, "", message)
        problem = self.document.problem(self.where, message)
        position = _find_in_source(problem, self.text, offset, token)
        if position is None:
            return problem
        return Problem(problem.file, position.line, position.column, problem.path, message)


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _find_in_source(value_at: Problem, text: str, offset: int, token: str) -> Position | None:
    """Where the placeholder at `offset` of `text` was written in the YAML source.

    YAML quoting and folding change the text between source and value, but a placeholder is
    written as it reads: the same occurrence of its own text after the value's start is it.
    """
    try:
        source = Path(value_at.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    lines = source.split("\n")
    if value_at.line > len(lines):
        return None
    found = sum(len(line) + 1 for line in lines[:value_at.line - 1]) + value_at.column - 2
    for _ in range(text.count(token, 0, offset) + 1):
        found = source.find(token, found + 1)
        if found < 0:
            return None
    line, column = _line_col(source, found)
    return Position(line, column)


def check_agents(document: Document, agents_raw: Mapping[str, Mapping[str, object]],
                 instructions: Mapping[str, str], declared: Mapping[str, str | None]
                 ) -> list[Problem]:
    """The placeholder problems of every agent's instructions (inline or from a file)."""
    problems: list[Problem] = []
    for name, text in instructions.items():
        relative = agents_raw[name].get("instructions_file")
        shown = None if not isinstance(relative, str) else \
            str(Path(document.source).parent / relative)
        where: PathKey = ("agents", name, "instructions" if shown is None else "instructions_file")
        problems += check_template(document, where, text, declared, shown)
    return problems


def context_values(declared: Mapping[str, str | None], given: Mapping[str, str]) -> dict[str, str]:
    """Every declared key's value for a turn: given, else its default.

    UserInputError naming the keys that have neither (a `null` default).
    """
    values = {k: given[k] if k in given else default for k, default in declared.items()}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise UserInputError(
            f"the context {'key' if len(missing) == 1 else 'keys'} {', '.join(missing)} "
            f"of this config {'needs' if len(missing) == 1 else 'need'} a value; give it with "
            "--context "
            f"{missing[0]}=... (a transcript: context: {{{missing[0]}: ...}})")
    return {k: v for k, v in values.items() if v is not None}


def parse_assignments(pairs: Sequence[str], declared: Mapping[str, str | None]) -> dict[str, str]:
    """`--context key=value` arguments as a mapping; UserInputError for a wrong one."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not _NAME.fullmatch(key):
            raise UserInputError(f"--context {pair!r}: write key=value, e.g. "
                                 "--context customer_name=Ada")
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none (the config has no 'context:')"
            raise UserInputError(f"--context {key!r} is not a context key of the config"
                                 f"{did_you_mean(key, declared)} (its keys: {known})")
        values[key] = value
    return values
