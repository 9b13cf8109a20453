"""The layers hold: who imports whom, who may import the Agents SDK, and the size limits.

Read from the source (every import statement, lazy and TYPE_CHECKING ones included), so a
new module is covered the moment it exists. ARCHITECTURE.md explains the rules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "routing_runner"

# Each unit (a sub-package, or a top-level module) and its layer: a unit imports only units of
# a lower layer, and itself. Equal layers may not import each other either.
LAYERS: dict[str, int] = {
    "errors": 0, "wording": 0, "private_files": 0, "user_text": 0,
    "config": 1,
    "stores": 2,
    "runtime": 3,
    "render": 4,
    "chat": 5, "session_admin": 5,
    "replay": 6, "server": 6, "graphing": 6,
    "cli": 7,
    "__main__": 8, "__init__": 8,
}
# Who may import the Agents SDK (`agents`) or the OpenAI client (`openai`).
SDK_UNITS = {"runtime", "stores"}
SDK_PACKAGES = {"agents", "openai"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, absolute."""
    here = _name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from . import x` may name a submodule
            found.update(f"{target}.{alias.name}" for alias in node.names
                         if (PACKAGE.parent / target.replace(".", "/") / alias.name).exists())
    return found


MODULES = {_name(path): path for path in _modules()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_lower_layers(module: str) -> None:
    unit = _unit(module)
    assert unit in LAYERS, f"{module}: add its unit to LAYERS (and ARCHITECTURE.md)"
    upward = sorted(target for target in _imports(MODULES[module])
                    if target.startswith("routing_runner.") and _unit(target) != unit
                    and LAYERS[_unit(target)] >= LAYERS[unit])
    assert not upward, f"{module} (layer {LAYERS[unit]}) imports {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_runtime_and_stores_import_the_sdk(module: str) -> None:
    sdk = sorted(t for t in _imports(MODULES[module]) if t.split(".")[0] in SDK_PACKAGES)
    if _unit(module) not in SDK_UNITS:
        assert not sdk, f"{module} imports {sdk}; only {sorted(SDK_UNITS)} may"


def test_no_library_module_imports_typer_or_writes_to_sys_stdout() -> None:
    offenders = []
    for module, path in MODULES.items():
        if _unit(module) in ("cli", "__main__"):
            continue
        text = path.read_text(encoding="utf-8")
        if "typer" in {t.split(".")[0] for t in _imports(path)} or "sys.stdout.write" in text:
            offenders.append(module)
    assert not offenders


def test_no_module_is_longer_than_the_limit() -> None:
    long = {m: n for m, p in MODULES.items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long


def test_no_function_is_longer_than_the_limit() -> None:
    long = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = (node.end_lineno or node.lineno) - first + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{module}.{node.name}"] = lines
    assert not long


def test_the_rules_see_the_imports_they_hold() -> None:
    # The checks above would pass vacuously if import reading broke.
    assert "routing_runner.runtime.events" in _imports(MODULES["routing_runner.render"])
    assert "agents" in _imports(MODULES["routing_runner.runtime.graph"])
    assert "routing_runner.stores.journal" in _imports(MODULES["routing_runner.stores.base"])
