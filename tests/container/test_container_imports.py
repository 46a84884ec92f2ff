"""The instance's modules import each other in one direction only (no cycle)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import modelhost.container

PACKAGE = "modelhost.container"
ROOT = Path(modelhost.container.__file__).parent


def container_imports() -> dict[str, set[str]]:
    """Module → the container modules it imports (at any level, TYPE_CHECKING included)."""
    names = {p.stem for p in ROOT.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        tree = ast.parse((ROOT / f"{name}.py").read_text())
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                head, _, rest = module.partition(f"{PACKAGE}.")
                if not head and rest.split(".")[0] in names:
                    found.add(rest.split(".")[0])
        graph[name] = found - {name}
    return graph


def test_no_import_cycle_in_the_container() -> None:
    graph = container_imports()
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle in {PACKAGE}: {exc.args[1]}") from None
    assert set(order) == set(graph)


def test_the_apps_are_composed_in_the_server() -> None:
    graph = container_imports()
    assert "multimodel" not in graph["app"] and "app" not in graph["multimodel"]
    assert "server" not in graph["workers"] and "server" not in graph["supervise"]
    assert {"app", "multimodel"} <= graph["server"]
