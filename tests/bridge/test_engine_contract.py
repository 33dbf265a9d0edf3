"""The bridge uses nothing of an engine that inference/api.py:Engine does not declare, and never probes one.

Read from the source with ast (never by importing it): every attribute taken of a name or attribute called
`engine` (engine.x, self.engine.x, worker.engine.x) in bridge/ must be a member of the Protocol, and no
getattr / hasattr / setattr may take an engine. Every engine class the bridge defines has the whole Protocol.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from bridge.cluster.proxy import ClusterEngine
from bridge.jobs.model_switch import UnloadedEngine
from bridge.tools.bench_bridge import HeldEngine
from inference.api import Engine
from tests.inference.test_api import protocol_gaps

ROOT = Path(__file__).resolve().parents[2]
PROBES = ("getattr", "hasattr", "setattr", "delattr")
# Files that build a concrete engine themselves and measure its insides, where `engine` is no Protocol:
CONCRETE = {
    "bridge/tools/bench_gpu.py": "builds our MusicGenEngine (engine_from_hf_model) to measure its decode paths",
}


def protocol_members(protocol: type = Engine) -> set[str]:
    annotated = set(protocol.__annotations__)
    methods = {name for name, member in vars(protocol).items()
               if not name.startswith("_") and inspect.isfunction(member)}
    return annotated | methods


def is_engine(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "engine") or \
        (isinstance(node, ast.Attribute) and node.attr == "engine")


def undeclared_engine_uses(source: str, path: str, members: set[str]) -> list[str]:
    """'path:line: engine.member' for each use of an undeclared member, and each probe of an engine."""
    found = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Attribute) and is_engine(node.value) and node.attr not in members:
            found.append(f"{path}:{node.lineno}: engine.{node.attr} is not in inference/api.py:Engine")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PROBES and \
                node.args and is_engine(node.args[0]):
            found.append(f"{path}:{node.lineno}: {node.func.id}(engine, ...) probes the engine")
    return found


def bridge_sources(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): path.read_text() for path in sorted((root / "bridge").rglob("*.py"))}


def test_the_bridge_uses_only_what_the_engine_protocol_declares():
    members = protocol_members()
    assert {"info", "concurrent_jobs", "compute", "close", "generate", "generate_batch", "warm_up"} <= members
    found = [use for path, source in bridge_sources(ROOT).items() if path not in CONCRETE
             for use in undeclared_engine_uses(source, path, members)]
    assert found == [], "declare it in inference/api.py:Engine (and in every engine), or stop using it:\n" + \
        "\n".join(found)


def test_the_exempt_files_exist_and_still_need_it():
    members = protocol_members()
    for path in CONCRETE:
        assert undeclared_engine_uses((ROOT / path).read_text(), path, members), f"{path} needs no exemption now"


def test_the_check_catches_an_undeclared_member_and_a_probe():
    """The control: a daemon that reaches past the Protocol, the way bridge/ did before it declared compute."""
    broken = (
        "class Daemon:\n"
        "    def compute_for(self, engine):\n"
        "        own = getattr(engine, 'compute', None)\n"
        "        return own or self.engine.scheduler\n"
        "    def jobs(self, worker):\n"
        "        return worker.engine.options.max_batch + len(self.engine.info.name)\n"
    )
    assert undeclared_engine_uses(broken, "bridge/daemon.py", protocol_members()) == [
        "bridge/daemon.py:3: getattr(engine, ...) probes the engine",
        "bridge/daemon.py:4: engine.scheduler is not in inference/api.py:Engine",
        "bridge/daemon.py:6: engine.options is not in inference/api.py:Engine",
    ]


@pytest.mark.parametrize("cls", [ClusterEngine, UnloadedEngine, HeldEngine])
def test_every_engine_the_bridge_defines_has_the_whole_protocol(cls):
    assert protocol_gaps(cls) == []
