"""ReplicaRegistry: a detached Ray actor each replica reports to (node, pid, device, warm models, busy).

Serve routes requests but does not say what a replica holds; `continuo doctor` and the benchmarks ask here.
Entries of dead replicas are dropped by the reader (`live_replicas`), which checks Serve's named actors.
"""

from __future__ import annotations

import time
from typing import Any

import ray

NAMESPACE = "continuo"
REGISTRY_NAME = "continuo-registry"
APP_NAME = "continuo"
DEPLOYMENT_NAME = "EngineReplica"


@ray.remote(num_cpus=0)
class ReplicaRegistry:
    def __init__(self) -> None:
        self.replicas: dict[str, dict[str, Any]] = {}

    def report(self, replica_id: str, fields: dict[str, Any]) -> None:
        entry = self.replicas.setdefault(replica_id, {"replica_id": replica_id})
        entry.update(fields, reported_at=time.time())

    def forget(self, replica_id: str) -> None:
        self.replicas.pop(replica_id, None)

    def entries(self) -> list[dict[str, Any]]:
        return list(self.replicas.values())


def get_registry(create: bool = False):
    """The registry actor handle, or None where none runs (and create is False)."""
    if create:
        return ReplicaRegistry.options(name=REGISTRY_NAME, namespace=NAMESPACE, get_if_exists=True,
                                       lifetime="detached").remote()
    try:
        return ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def live_replica_ids() -> set[str]:
    """The unique ids of the continuo deployment's replicas whose actors are alive now."""
    prefix = f"SERVE_REPLICA::{APP_NAME}#{DEPLOYMENT_NAME}#"
    return {actor["name"][len(prefix):] for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor["name"].startswith(prefix)}


def live_replicas(timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Every live replica's report, by replica id; a live replica that has not reported yet has only its id."""
    registry = get_registry()
    entries = {e["replica_id"]: e for e in ray.get(registry.entries.remote(), timeout=timeout_s)} if registry else {}
    alive = live_replica_ids()
    for dead in set(entries) - alive:
        registry.forget.remote(dead)
    return [entries.get(replica_id, {"replica_id": replica_id}) for replica_id in sorted(alive)]
