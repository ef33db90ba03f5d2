"""The layout docs/architecture.md promises, checked on the source: no module over 500 lines,
no import cycle between modules, click only in CLI modules, and data flowing one way
(capture imports nothing from replay or planner, the sandbox nothing from replay or
planner, planner nothing from replay's CLI modules)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("capture", "replay", "planner", "sandbox")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Project modules and click modules `path` imports: at module level only (what makes
    a cycle at import time), or anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in MODULES or name.split(".")[0] == "click"}


def test_the_checker_sees_every_package() -> None:
    assert {name.split(".")[0] for name in MODULES} == set(PACKAGES)
    assert len(MODULES) > 100


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_500_lines(name: str) -> None:
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)}: {lines} lines"


def test_no_import_cycle_between_modules() -> None:
    graph = {
        name: {m for m in _imports(path, top_level_only=True) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend([*path[path.index(nxt) :], nxt])
                return True
            if nxt not in state and visit(nxt, [*path, nxt]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if start not in state and visit(start, [start]):
            break
    assert not cycle, " -> ".join(cycle)


def test_only_cli_modules_import_click() -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if "cli" not in name.rsplit(".", 1)[-1]
        and any(m.split(".")[0] == "click" for m in _imports(path, top_level_only=False))
    ]
    assert offenders == []


def test_data_flows_one_way() -> None:
    def imported(prefix: str) -> dict[str, set[str]]:
        return {
            name: _imports(path, top_level_only=False)
            for name, path in MODULES.items()
            if name.split(".")[0] == prefix
        }

    for name, deps in imported("capture").items():
        assert not {d for d in deps if d.split(".")[0] in ("replay", "planner")}, name
    for name, deps in imported("planner").items():
        assert not {d for d in deps if d.startswith("replay.cli")}, name
    for name, deps in imported("sandbox").items():
        assert not {d for d in deps if d.split(".")[0] in ("replay", "planner")}, name
