"""`continuo bench throughput --cluster`: the engine in process against 1 and 2 local Ray Serve replicas.

Every gateway is a `continuo serve` subprocess on the tiny model (one torch thread per engine), driven over
OSC, all in one run:
- overhead: one job at a time, repeated; per take, the gateway's wall time minus the replica's own engine time
  is what Ray adds per request (routing, streaming progress back, the take's PCM through the object store);
  the job's wall time against in process is given too (on a loaded 2-core machine that one is noise-bound);
- throughput: `jobs` jobs sent at once, jobs per minute and each job's latency, in process, local:1, local:2;
- a replica killed mid-job (local:2): seconds from the kill until the job is done on the other replica, and
  the same job's wall time undisturbed.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from bridge.tools.machine import load_average, machine

TAKE = re.compile(r"take on replica=(\S+) node=\S+ pid=(\d+)")
TAKE_DONE = re.compile(r"take done on replica=\S+ take_s=([\d.]+) engine_s=([\d.]+) overhead_s=(-?[\d.]+)")
JOB_TIMEOUT_S = 900
OBJECT_STORE_MB = 80


def gateway(model_dir: Path, root: Path, cluster: str) -> DaemonProcess:
    flags = ["--model", str(model_dir), "--osc-port", "0", "--zmq-port", "-1", "--osc-tcp-port", "-1",
             "--output-root", str(root / "renders"), "--user-presets-dir", str(root / "presets"),
             "--cpu-threads", "1", "--ack-resends", "0"]
    if cluster:
        flags += ["--cluster", cluster, "--cluster-object-store-mb", str(OBJECT_STORE_MB)]
    return DaemonProcess(flags, ready_timeout_s=600)


def run_jobs(osc: OscClient, prefix: str, count: int, bars: float) -> tuple[float, list[float]]:
    """Send count jobs at once; (wall seconds for all, each job's latency)."""
    started = time.monotonic()
    for index in range(count):
        osc.send("/continuo/generate", f"{prefix}-{index}", "default", "bench", float(bars))
    latencies = []
    for index in range(count):
        events = osc.wait_job(f"{prefix}-{index}", JOB_TIMEOUT_S)
        if events[-1][0] != "/continuo/done":
            raise RuntimeError(f"benchmark job {prefix}-{index} failed: {events[-1]}")
        latencies.append(time.monotonic() - started)
    return time.monotonic() - started, latencies


def sequential_s(osc: OscClient, prefix: str, repeats: int, bars: float) -> list[float]:
    return [run_jobs(osc, f"{prefix}-{index}", 1, bars)[0] for index in range(repeats)]


def kill_mid_job(process: DaemonProcess, osc: OscClient, bars: float) -> dict:
    """A job undisturbed, then the same job with its replica killed at 10 % progress."""
    undisturbed_s, _ = run_jobs(osc, "undisturbed", 1, bars)
    seen = len(TAKE.findall(process.log))
    started = time.monotonic()
    osc.send("/continuo/generate", "killed", "default", "bench", float(bars))
    osc.wait_for(lambda a, args: a == "/continuo/queued" and args[:1] == ["killed"], 60)  # accepted
    osc.wait_for(lambda a, args: a == "/continuo/progress" and args[:1] == ["killed"] and args[1] >= 0.1, 300)
    deadline = time.monotonic() + 30
    while len(TAKE.findall(process.log)) <= seen and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = int(TAKE.findall(process.log)[seen][1])
    os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # Windows: SIGTERM is TerminateProcess, as abrupt
    killed = time.monotonic()
    queued_again = osc.wait_for(lambda a, args: a == "/continuo/queued" and args[:1] == ["killed"], 300)
    requeued_s = time.monotonic() - killed
    events = osc.wait_job("killed", JOB_TIMEOUT_S)
    done = time.monotonic()
    assert queued_again and events[-1][0] == "/continuo/done", events[-1]
    return {"undisturbed_job_s": round(undisturbed_s, 2), "killed_at_s": round(killed - started, 2),
            "kill_to_requeued_s": round(requeued_s, 3), "kill_to_done_s": round(done - killed, 2),
            "job_wall_s": round(done - started, 2)}


def bench_cluster_throughput(*, jobs: int = 8, bars: float = 4.0, repeats: int = 5, kill_bars: float = 16.0,
                             emit: Callable[[dict], None] = print) -> None:
    from inference.musicgen.tiny import build_tiny_musicgen

    with tempfile.TemporaryDirectory(prefix="continuo-bench-cluster-") as tmp:
        model = build_tiny_musicgen(Path(tmp) / "tiny", seed=0)
        base: dict[str, float] = {}
        for cluster in ("", "local:1", "local:2"):
            name = cluster or "in-process"
            with gateway(model, Path(tmp) / (cluster.replace(":", "-") or "local"), cluster) as process, \
                    OscClient(process.host, process.port) as osc:
                osc.hello()
                run_jobs(osc, "warm", 1, bars)  # first render pays its set-up
                result = {"suite": "throughput-cluster", "gateway": name, "jobs": jobs, "bars": bars,
                          "startup_to_ready_s": round(process.startup_s, 1)}
                if cluster != "local:2":
                    seen = len(TAKE_DONE.findall(process.log))
                    base[name] = statistics.median(sequential_s(osc, "one", repeats, bars))
                    result["one_job_median_s"] = round(base[name], 3)
                    if cluster:  # per take: the gateway's wall time minus the replica's engine time
                        overheads = [float(m[2]) for m in TAKE_DONE.findall(process.log)[seen:]]
                        result["ray_overhead_per_request_s"] = round(statistics.median(overheads), 4)
                        result["one_job_vs_in_process_s"] = round(base[name] - base["in-process"], 3)
                wall_s, latencies = run_jobs(osc, "many", jobs, bars)
                result.update(wall_s=round(wall_s, 2), jobs_per_min=round(60 * jobs / wall_s, 1),
                              latency_median_s=round(statistics.median(latencies), 2),
                              latency_max_s=round(max(latencies), 2), load_avg=load_average())
                if cluster == "local:2":
                    result["replica_killed"] = kill_mid_job(process, osc, kill_bars)
                emit(result | {"machine": machine()})
