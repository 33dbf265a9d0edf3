"""Reaching the cluster: start or attach to Ray, deploy the replicas (or find them running), hand back the Engine.

`local:N` starts Ray inside the gateway (`start_ray`, object store capped by `cluster_object_store_mb`) and N
replicas; Ray and the replicas end with the gateway. An address (`ray://HOST:PORT`, or the GCS `HOST:PORT`)
attaches to a running cluster, whose Serve application is detached and outlives the gateway: a restarted gateway
attaches to its replicas, warm (no redeploy), and replays its journal as always (unfinished jobs `interrupted`,
or run again with `retries N`); the take the dead gateway was streaming is cancelled by Serve when its caller
goes. When the Ray head dies the replicas go with it: takes fail as lost replicas, jobs once their retry is
spent; restart the cluster, then the gateway.

Attaching checks the address first (`check_reachable`: a ConfigError at once, where ray.init would retry for
minutes) and uses Ray's auth token when one is at hand (bridge/cluster/spec.py:use_token_auth: `ray start` in
Ray 2.5x writes ~/.ray/auth_token, which a driver only sends when RAY_AUTH_MODE=token is set before Ray is
imported). ray.init takes SIGTERM; the gateway puts its own handlers back so its shutdown phases still run. Every
node needs the same Continuo installed. Replicas log to Ray's session logs (`log_level DEBUG` forwards them into
the gateway's); the gateway logs each take's replica, pid and Ray's share of its time (`take done ... overhead_s`).
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from bridge.cluster.spec import ClusterSpec, parse_cluster, require_ray
from bridge.errors import ConfigError
from bridge.settings import Settings

log = logging.getLogger("continuo.cluster")

INFO_TIMEOUT_S = 600.0  # the first request loads the model on a replica
MB = 1024 * 1024


@dataclass
class ClusterPlan:
    """How the deployment is shaped: replicas and what each reserves."""

    replicas: int
    num_cpus: float
    num_gpus: float
    models_per_replica: int
    options: dict[str, Any] = field(default_factory=dict)


def plan_replicas(settings: Settings, spec: ClusterSpec, resources: dict[str, float]) -> ClusterPlan:
    """One replica per GPU (a fraction with cluster_gpus_per_replica < 1); CPU replicas where there is none."""
    gpus = float(resources.get("GPU", 0.0))
    per_gpu = settings.cluster_gpus_per_replica if settings.cluster_gpus_per_replica >= 0 else (1.0 if gpus else 0.0)
    if spec.local or spec.replicas:
        replicas = spec.replicas
    else:
        replicas = max(1, int(gpus // per_gpu)) if per_gpu > 0 else 1
    return ClusterPlan(replicas=replicas, num_cpus=settings.cluster_cpus_per_replica, num_gpus=per_gpu,
                       models_per_replica=settings.cluster_models_per_replica)


def start_ray(settings: Settings, spec: ClusterSpec) -> Any:
    ray = require_ray(attach=not spec.local)
    options: dict[str, Any] = {"namespace": "continuo", "include_dashboard": False,
                               "log_to_driver": settings.log_level.upper() == "DEBUG"}
    if spec.local:
        options.update(address="local", num_cpus=max(1, int(spec.replicas * settings.cluster_cpus_per_replica + 0.999)))
        if settings.cluster_object_store_mb:
            options["object_store_memory"] = settings.cluster_object_store_mb * MB
    else:
        options.pop("include_dashboard")
        options["address"] = spec.address
        check_reachable(spec.address)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ray.init(**options)
    for sig, handler in handlers.items():  # ray.init takes SIGTERM (sys.exit); the daemon's phases keep it
        signal.signal(sig, handler)
    return ray


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """A ConfigError at once where nothing listens at HOST:PORT (ray.init would retry the GCS for minutes)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cluster {address!r}: nothing answers there ({exc}); start the cluster (`ray start "
                          "--head`) or fix the address: HOST:PORT of the GCS, or ray://HOST:PORT of the Ray Client "
                          "server") from None


def build_app(settings: Settings, plan: ClusterPlan):
    from ray import serve

    from bridge.cluster.replica import EngineReplica

    actor = {"num_cpus": plan.num_cpus, "num_gpus": plan.num_gpus}
    deployment = serve.deployment(EngineReplica, name="EngineReplica", num_replicas=plan.replicas,
                                  max_ongoing_requests=1, ray_actor_options=actor,
                                  health_check_period_s=5.0, health_check_timeout_s=30.0)
    return deployment.bind(settings, plan.models_per_replica)


def connect_engine(settings: Settings):
    """The cluster as an Engine for the daemon: Ray started or attached, the replicas deployed or found."""
    spec = parse_cluster(settings.cluster, replicas=settings.cluster_replicas)
    assert spec is not None
    started = time.monotonic()
    ray = start_ray(settings, spec)  # first: it checks Ray is installed and sets up auth before Ray is imported
    from ray import serve

    from bridge.cluster.proxy import ClusterEngine
    from bridge.cluster.registry import APP_NAME, get_registry

    address = ray.get_runtime_context().gcs_address
    get_registry(create=True)
    serve.start(proxy_location="Disabled")
    plan = plan_replicas(settings, spec, ray.cluster_resources())
    running = serve.status().applications.get(APP_NAME)
    if running is not None and running.status == "RUNNING":
        handle = serve.get_app_handle(APP_NAME)
        log.info("cluster: attached to the running %r application at %s (replicas: %s)", APP_NAME, address,
                 replica_states(running))
    else:
        log.info("cluster: deploying %d replica(s) (cpus %.2g, gpus %.2g each) on %s", plan.replicas,
                 plan.num_cpus, plan.num_gpus, spec.text)
        handle = serve.run(build_app(settings, plan), name=APP_NAME, route_prefix=None)
    info = handle.options(multiplexed_model_id=settings.model).info.remote().result(timeout_s=INFO_TIMEOUT_S)
    replicas = replica_count(serve.status().applications[APP_NAME]) or plan.replicas
    log.info("cluster: ready at %s with %d replica(s), model %s, in %.1f s", address, replicas, info.name,
             time.monotonic() - started)
    print(f"continuo cluster: {spec.text} ray={address} replicas={replicas}", flush=True)
    shared = settings.cluster_shared_dir.expanduser().resolve() if settings.cluster_shared_dir else None
    return ClusterEngine(handle, settings.model, info, concurrent_jobs=replicas, shared_dir=shared,
                         close=lambda: disconnect(spec))


def replica_states(status: Any) -> dict[str, int]:
    states: dict[str, int] = {}
    for deployment in status.deployments.values():
        for state, count in deployment.replica_states.items():
            name = str(getattr(state, "value", state))
            states[name] = states.get(name, 0) + count
    return states


def replica_count(status: Any) -> int:
    return sum(d.replica_states.get("RUNNING", 0) for d in status.deployments.values())


def disconnect(spec: ClusterSpec) -> None:
    """local: the replicas and Ray end with the gateway; a remote cluster keeps them for the next gateway."""
    import ray
    from ray import serve

    if spec.local:
        serve.shutdown()
    ray.shutdown()
    log.info("cluster: %s", "stopped the local Ray instance" if spec.local else "detached; the replicas keep running")


def describe_cluster(settings: Settings) -> list[str]:
    """`continuo doctor`'s cluster lines: the application, then each live replica (node, pid, device, warm models).

    Attaches to the cluster the `cluster` setting names and deploys nothing; `local:N` lives inside its
    gateway, whose log line `continuo cluster: ... ray=ADDRESS` names the address to pass instead.
    """
    spec = parse_cluster(settings.cluster, replicas=settings.cluster_replicas)
    if spec is None:
        return ["  no cluster set: the engine runs inside `continuo serve` (--cluster local:N or ADDRESS for Ray)"]
    if spec.local:
        return [f"  {spec.text}: a local cluster lives inside its gateway; run doctor with --cluster ADDRESS, "
                "the ray= address on the gateway's `continuo cluster:` line"]
    ray = start_ray(settings, spec)
    from ray import serve

    from bridge.cluster.registry import APP_NAME, live_replicas

    try:
        resources = ray.cluster_resources()
        lines = [f"  ray {ray.__version__} at {ray.get_runtime_context().gcs_address}: "
                 f"{len(ray.nodes())} node(s), CPU {resources.get('CPU', 0):g}, GPU {resources.get('GPU', 0):g}"]
        app = serve.status().applications.get(APP_NAME)
        if app is None:
            return lines + [f"  no {APP_NAME!r} application: `continuo serve --cluster {spec.text}` deploys it"]
        lines.append(f"  application {APP_NAME!r}: {getattr(app.status, 'value', app.status)}; "
                     f"replicas {replica_states(app)}")
        for replica in live_replicas():
            state = "busy" if replica.get("busy") else "idle"
            lines.append(f"  replica {replica['replica_id']}: node {replica.get('node', '?')} pid "
                         f"{replica.get('pid', '?')} device {replica.get('device', '?')} {state}; warm: "
                         f"{', '.join(replica.get('models', [])) or 'none yet'}")
        return lines
    finally:
        ray.shutdown()
