"""The house's shape holds: no import cycles, no lower layer importing a higher one, small
modules and functions (DESIGN.md §3 and §5).

Imports are read with `ast` (nothing is imported), at module level and inside functions.
Imports under `if TYPE_CHECKING:` never run, so they are left out of cycle detection; the
layer order applies to them too (a type from a higher layer is still a dependency on it).

Today's violations are listed as known, so the suite stays green while the refactor of
issue 19 lands; the test fails on any new one (and on a listed offender that grew). Empty the
KNOWN_* tables as the refactor removes them.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "modelhost"

# The dependency order of DESIGN.md §3 ("Dependency direction"), top to bottom. Packages on
# one row are siblings: they may import each other, but never in a cycle. `routing` sits
# below `fleet` because the data plane in fleet/ uses its pure decisions. The package root
# (`modelhost/__init__.py`, the version) is below everything.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "demo", "__main__", "testing"),
    ("gateway",),
    ("jobs", "scaling", "monitor", "loadtest", "compile"),
    ("control",),
    ("fleet", "telemetry"),
    ("routing",),
    ("container",),
    ("frameworks", "codecs"),
    ("store",),
    ("resources", "settings", "settings_background", "errors"),
    ("",),
)

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Import cycles found when this test was written (issue 19 removes them). A cycle that is a
# part of a listed one passes, so a cycle may shrink on the way to gone.
KNOWN_CYCLES: set[frozenset[str]] = set()

# "importer -> imported" pairs where a lower layer imports a higher one (issue 19).
KNOWN_LAYER_VIOLATIONS: set[str] = set()

# Modules over MAX_MODULE_LINES and functions over MAX_FUNCTION_LINES when this test was
# written, with their size then: they may shrink, not grow.
# Both are empty now: the refactor of issue 19 is done; keep them empty.
KNOWN_LONG_MODULES: dict[str, int] = {}
KNOWN_LONG_FUNCTIONS: dict[str, int] = {}


@dataclass(frozen=True)
class Module:
    name: str  # relative to the package: "gateway.runtime_api"; "" for the root
    path: Path

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def top(self) -> str:
        return self.name.split(".")[0]


def modules() -> dict[str, Module]:
    out: dict[str, Module] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        out[name] = Module(name, path)
    return out


@functools.cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                found.update(id(n) for n in ast.walk(child))
    return found


def _targets(module: Module, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """Names (relative to the package) that an import statement may load."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    if node.level:
        base = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
        base = [p for p in base if p]
        anchor = base[: len(base) - node.level + 1]
        mod = ".".join(["modelhost", *anchor, *([node.module] if node.module else [])])
    else:
        mod = node.module or ""
    yield mod
    for alias in node.names:
        yield f"{mod}.{alias.name}"


def imports(mods: dict[str, Module], *, type_checking: bool) -> dict[str, set[str]]:
    """Module → the modules of the package it imports (deepest known module of each name)."""
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, module in mods.items():
        tree = parse(module.path)
        skip = set() if type_checking else _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in skip:
                continue
            for target in _targets(module, node):
                if target != "modelhost" and not target.startswith("modelhost."):
                    continue
                rel = target.removeprefix("modelhost").removeprefix(".")
                while rel and rel not in mods:
                    rel = rel.rpartition(".")[0]
                # A module's own package (or itself) is no dependency between modules.
                if rel != name and not name.startswith(rel + ".") and not (rel == "" and name):
                    graph[name].add(rel)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(frozenset(component))
    return out


def rank(module: str) -> int:
    top = module.split(".")[0]
    for position, row in enumerate(LAYERS):
        if top in row:
            return position
    raise AssertionError(f"modelhost.{module}: its package is not in LAYERS (DESIGN.md §3)")


def layer_violations(graph: dict[str, set[str]]) -> set[str]:
    return {
        f"{importer} -> {imported}"
        for importer, targets in graph.items()
        for imported in targets
        if rank(imported) < rank(importer)
    }


def test_the_checks_find_what_they_look_for() -> None:
    graph = {"store.a": {"gateway.b"}, "gateway.b": {"store.a"}, "cli.c": {"gateway.b"}}
    assert cycles(graph) == [frozenset({"store.a", "gateway.b"})]
    assert layer_violations(graph) == {"store.a -> gateway.b"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import settings\n"
        "if TYPE_CHECKING:\n"
        "    from modelhost.gateway import app\n"
        "def f():\n"
        "    from modelhost.control.service import ControlPlane\n"
    )
    tree = ast.parse(source)
    module = Module("store.x", PACKAGE / "store" / "x.py")
    skip = _type_checking_nodes(tree)
    found = {
        target
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skip
        for target in _targets(module, node)
    }
    assert "modelhost.store.settings" in found  # relative import, resolved in the package
    assert "modelhost.control.service" in found  # function-level imports count
    assert "modelhost.gateway" not in found  # TYPE_CHECKING is not an import at run time


def test_every_package_has_a_layer() -> None:
    for name in modules():
        rank(name)


def test_no_new_import_cycle() -> None:
    found = cycles(imports(modules(), type_checking=False))
    new = [c for c in found if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in new)


def test_no_lower_layer_imports_a_higher_one() -> None:
    new = layer_violations(imports(modules(), type_checking=True)) - KNOWN_LAYER_VIOLATIONS
    assert not new, "lower layer imports a higher one (DESIGN.md §3): " + ", ".join(sorted(new))


def _function_sizes(module: Module) -> Iterator[tuple[str, int]]:
    tree = parse(module.path)

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                qualname = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield qualname, (child.end_lineno or child.lineno) - child.lineno + 1
                yield from walk(child, qualname + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def _over(found: dict[str, int], known: dict[str, int]) -> list[str]:
    return sorted(
        f"{name} ({size} lines)" + (f", was {known[name]}" if name in known else "")
        for name, size in found.items()
        if size > known.get(name, 0)
    )


def test_modules_and_functions_stay_small() -> None:
    long_modules: dict[str, int] = {}
    long_functions: dict[str, int] = {}
    for module in modules().values():
        rel = str(module.path.relative_to(PACKAGE))
        lines = len(module.path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            long_modules[rel] = lines
        for qualname, size in _function_sizes(module):
            if size > MAX_FUNCTION_LINES:
                long_functions[f"{rel}:{qualname}"] = size
    grown = _over(long_modules, KNOWN_LONG_MODULES) + _over(long_functions, KNOWN_LONG_FUNCTIONS)
    assert not grown, (
        f"over {MAX_MODULE_LINES} lines per module / {MAX_FUNCTION_LINES} per function, "
        "or a known offender grew: " + "; ".join(grown)
    )
