"""The house: bridge/ and inference/ each in wings stacked in one order, no import cycles, inference/ never
imports bridge/, and the model families side by side, never importing each other.

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
    ("bridge.transports",),  # never reach jobs: they hand requests to the daemon and read jobs through it
    ("bridge.jobs",),
    ("bridge.cluster",),  # the engine as Ray Serve replicas (imports no job module); the daemon picks it
    ("bridge.clients",),
    ("bridge.sessions",),  # what the daemon knows of each client: its reply address, musical context, jobs
    ("bridge.midi",),
    ("bridge.daemon",),
    ("bridge.tools",),
    ("bridge.cli",),
)
# Wings that carry bytes and never touch the model: no torch, no inference.
NO_MODEL = ("bridge.protocol", "bridge.transports", "bridge.clients")

# inference/, bottom to top: the contract, the runtime under every family, the families side by side, loading
# (resolve, then a family's entry from its table) and the benchmarks over all of them.
INFERENCE_WINGS = (
    ("inference", "inference.errors", "inference.api", "inference.adapters", "inference.smoke"),
    ("inference.runtime",),
    ("inference.musicgen", "inference.acestep", "inference.stems", "inference.transcription"),
    ("inference.loading",),
    ("inference.bench",),
)
SIDE_BY_SIDE = ("inference.musicgen", "inference.acestep", "inference.stems",  # never import each other
                "inference.transcription")
# The contract modules the bridge's torch-free wings and admission read: no torch.
TORCH_FREE = ("inference", "inference.errors", "inference.api", "inference.adapters", "inference.smoke")


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


def wing_rank(module: str, wings: tuple[tuple[str, ...], ...] = WINGS) -> int:
    """The index in wings of the longest wing prefix of module."""
    best, rank = -1, -1
    for index, wing in enumerate(wings):
        for prefix in wing:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    if rank < 0:
        raise AssertionError(f"{module} is in no wing; add it to WINGS in {__file__}")
    return rank


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def upward_imports(graph: dict[str, set[str]], package: str = "bridge",
                   wings: tuple[tuple[str, ...], ...] = WINGS) -> list[str]:
    """Imports inside package from a module to one of a higher wing."""
    return sorted(f"{a} -> {b}" for a, targets in graph.items() if in_package(a, package)
                  for b in targets if in_package(b, package) and wing_rank(b, wings) > wing_rank(a, wings))


def crossings(graph: dict[str, set[str]], apart: tuple[str, ...] = SIDE_BY_SIDE) -> list[str]:
    """Imports from one of the side-by-side wings into another."""
    def owner(module: str) -> str | None:
        return next((wing for wing in apart if in_package(module, wing)), None)

    return sorted(f"{a} -> {b}" for a, targets in graph.items() if owner(a)
                  for b in targets if owner(b) and owner(b) != owner(a))


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


def test_every_inference_module_belongs_to_a_wing_and_imports_only_down():
    assert upward_imports(import_graph(), "inference", INFERENCE_WINGS) == []


def test_the_model_families_never_import_each_other():
    assert crossings(import_graph()) == []


def test_the_contract_modules_never_import_torch():
    files = {module_name(p): p for p in (ROOT / "inference").rglob("*.py")}
    assert set(TORCH_FREE) <= set(files)
    assert sorted(f"{m} -> {i}" for m in TORCH_FREE for i in imports_of(files[m]) if i.split(".")[0] == "torch") == []


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
    # the rule the tree at 99dfb52 broke: a transport that reads the journal itself
    assert upward_imports({"bridge.transports.http": {"bridge.jobs.journal", "bridge.protocol.destinations"}}) == [
        "bridge.transports.http -> bridge.jobs.journal"]
    assert cycles(broken) == [["bridge.audio.render", "bridge.jobs.plan"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    with pytest.raises(AssertionError, match="in no wing"):
        wing_rank("bridge_extra.module")


def test_the_checks_catch_a_broken_inference_layout():
    """Inference's order: the runtime reaching a family, a family reaching loading, two families importing each
    other, and a module outside every wing are each caught; stems beside a family and loading over both pass."""
    broken = {
        "inference.runtime.compute": {"inference.musicgen.batching"},
        "inference.acestep.family": {"inference.loading", "inference.musicgen.tiny"},
        "inference.musicgen.tiny": {"inference.smoke"},
        "inference.loading": {"inference.acestep", "inference.musicgen", "inference.api"},
        "inference.bench.musicgen": {"inference.loading", "inference.musicgen.engine", "inference.runtime.device"},
    }
    assert upward_imports(broken, "inference", INFERENCE_WINGS) == [
        "inference.acestep.family -> inference.loading", "inference.runtime.compute -> inference.musicgen.batching"]
    assert crossings(broken) == ["inference.acestep.family -> inference.musicgen.tiny"]
    assert crossings({"inference.musicgen.engine": {"inference.runtime.compute"}}) == []
    assert upward_imports({"inference.loading": {"bridge.daemon"}}, "inference", INFERENCE_WINGS) == []  # elsewhere
    with pytest.raises(AssertionError, match="in no wing"):
        wing_rank("inference_extra.module", INFERENCE_WINGS)
