"""The ``hwnas`` package has no import cycle among its subpackages (and top-level modules).

Every ``import`` / ``from ... import`` in ``hwnas/`` counts, also those inside functions (a lazy
import still couples two packages). ``"module:attribute"`` strings that registries resolve on use
(:mod:`hwnas.runtimes`) are plug-in references, not imports. A failure names each cycle and the edges that
close it; :data:`KNOWN_CYCLES` lists the ones still being broken.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import hwnas

ROOT = Path(hwnas.__file__).resolve().parent

#: cycles known to remain, each to be broken by the package's owner; the test fails when a new
#: cycle appears and when a listed one is gone (then delete its line): the list only shrinks.
KNOWN_CYCLES: set[frozenset[str]] = set()



def unit_of(module: str) -> str | None:
    """``hwnas.devices.profiles`` -> ``devices``; ``hwnas.export`` -> ``export``; others None."""
    parts = module.split(".")
    if parts[0] != "hwnas" or len(parts) < 2:
        return None
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)  # "from hwnas import cost"
    return found


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    units = {unit_of(module_name(p)) for p in ROOT.rglob("*.py")} - {None}
    for path in ROOT.rglob("*.py"):
        src = unit_of(module_name(path))
        if src is None:
            continue
        graph.setdefault(src, set())
        for mod in imported_modules(path):
            dst = unit_of(mod)
            if dst is not None and dst != src and dst in units:
                graph[src].add(dst)
    return dict(graph)


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.add(frozenset(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def describe(group: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = sorted(f"{a} -> {b}" for a in group for b in graph[a] if b in group)
    return "{" + ", ".join(sorted(group)) + "}: " + "; ".join(edges)


def test_graph_sees_known_edges() -> None:
    graph = unit_graph()
    assert "devices" in graph["runners"] and "runtimes" in graph["devices"]
    assert "errors" in graph["runtimes"]


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}
    assert cycles({"a": {"b"}, "b": set()}) == set()


def test_no_import_cycles_among_hwnas_packages() -> None:
    graph = unit_graph()
    found = cycles(graph)
    new = found - KNOWN_CYCLES
    assert not new, "import cycles among hwnas packages: " + " | ".join(describe(g, graph) for g in new)
    gone = KNOWN_CYCLES - found
    assert not gone, f"cycles no longer present, delete them from KNOWN_CYCLES: {sorted(map(sorted, gone))}"
