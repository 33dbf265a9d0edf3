"""The house: bridge/ in wings stacked in one order, no import cycles, inference/ never imports bridge/.

Every import counts, the ones inside functions too (a lazy import is still an arrow a reader follows).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top: a module may import its own wing and the wings below it, never one above.
WINGS = (
    ("bridge", "bridge.errors"),  # the package itself (__version__) and the error tree
    ("bridge.settings",),
    ("bridge.protocol",),
    ("bridge.audio",),
    ("bridge.jobs",),
    ("bridge.cluster",),  # the engine as Ray Serve replicas: glue between jobs and inference; the daemon picks it
    ("bridge.transports",),
    ("bridge.clients",),
    ("bridge.midi",),
    ("bridge.daemon",),
    ("bridge.tools",),
    ("bridge.cli",),
)
# Wings that carry bytes and never touch the model: no torch, no inference.
NO_MODEL = ("bridge.protocol", "bridge.transports", "bridge.clients")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module this file imports, at any depth of the file (absolute names)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def import_graph(packages: tuple[str, ...] = ("bridge", "inference")) -> dict[str, set[str]]:
    """module -> the project modules it imports (names that are modules, not attributes)."""
    files = {module_name(p): p for package in packages for p in (ROOT / package).rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in files and m != name} for name, path in files.items()}


def wing_rank(module: str) -> int:
    """The index in WINGS of the longest wing prefix of module."""
    best, rank = -1, -1
    for index, wing in enumerate(WINGS):
        for prefix in wing:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    if rank < 0:
        raise AssertionError(f"{module} is in no wing; add it to WINGS in {__file__}")
    return rank


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() if a.startswith("bridge")
                  for b in targets if b.startswith("bridge") and wing_rank(b) > wing_rank(a))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_bridge_module_belongs_to_a_wing_and_imports_only_down():
    graph = import_graph()
    assert upward_imports(graph) == []


def test_there_is_no_import_cycle():
    assert cycles(import_graph()) == []


def test_inference_never_imports_bridge():
    graph = import_graph()
    assert sorted(f"{a} -> {b}" for a, t in graph.items() if a.startswith("inference")
                  for b in t if b.startswith("bridge")) == []


@pytest.mark.parametrize("wing", NO_MODEL)
def test_wire_wings_never_touch_the_model(wing):
    files = [p for p in (ROOT / wing.replace(".", "/")).rglob("*.py")]
    assert files
    touching = sorted(f"{module_name(p)} -> {m}" for p in files for m in imports_of(p)
                      if m.split(".")[0] in ("torch", "inference"))
    assert touching == []


def test_the_checks_catch_a_broken_layout():
    """The checks themselves: an upward arrow, a cycle and an unplaced module are each caught."""
    broken = {"bridge.audio.render": {"bridge.jobs.plan"}, "bridge.jobs.plan": {"bridge.audio.render"}}
    assert upward_imports(broken) == ["bridge.audio.render -> bridge.jobs.plan"]
    assert cycles(broken) == [["bridge.audio.render", "bridge.jobs.plan"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    with pytest.raises(AssertionError, match="in no wing"):
        wing_rank("bridge_extra.module")
