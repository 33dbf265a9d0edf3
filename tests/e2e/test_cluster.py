"""`continuo serve --cluster`: the engine as Ray Serve replicas, the front door (OSC, journal, files) unchanged.

Slow (each gateway starts Ray and loads the tiny model in every replica), and run in CI. Ray's object store is
capped at OBJECT_STORE_MB and every replica uses one torch thread, so the cluster stays small. Skipped only
where Ray Serve is not installed (`pip install 'continuo[cluster]'`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.audio.files import daw_file_name
from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from tests.daemons import daemon_flags

pytest.importorskip("ray.serve", reason="Ray Serve is not installed here: pip install 'continuo[cluster]'")

pytestmark = pytest.mark.slow

OBJECT_STORE_MB = 80  # Ray's minimum is about 75 MiB
CLUSTER_FLAGS = ("--cluster-object-store-mb", str(OBJECT_STORE_MB), "--ack-resends", "0")
TAKE = re.compile(r"take on replica=(\S+) node=\S+ pid=(\d+)")
JOB_TIMEOUT_S = 300


def takes(process: DaemonProcess) -> list[tuple[str, int]]:
    """(replica id, pid) of every take the gateway sent, in order."""
    return [(m[1], int(m[2])) for m in TAKE.finditer(process.log)]


def wait_until(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout_s:g} s")


@pytest.fixture(scope="module")
def cluster_gateway(tiny_model_dir, tmp_path_factory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("cluster")
    flags = daemon_flags(tiny_model_dir, root, "--cluster", "local:2", *CLUSTER_FLAGS)
    with DaemonProcess(flags, ready_timeout_s=300) as process:
        process.root = root
        yield process


def test_two_replicas_serve_two_jobs_at_once_over_osc(cluster_gateway):
    assert "continuo cluster: local:2" in cluster_gateway.log and "replicas=2" in cluster_gateway.log
    with OscClient(cluster_gateway.host, cluster_gateway.port) as osc:
        welcome = osc.hello()
        assert welcome[3] == "ray:cpu"  # the device clients see names the cluster
        for job_id in ("two-a", "two-b"):
            osc.send("/continuo/generate", job_id, "default", "warm piano", 2.0)
        results = {job_id: osc.wait_job(job_id, JOB_TIMEOUT_S) for job_id in ("two-a", "two-b")}
    for job_id, events in results.items():
        assert events[-1][0] == "/continuo/done", events[-1]
        outputs = [args for address, args in events if address == "/continuo/output"]
        assert len(outputs) == 1 and Path(outputs[0][2]).is_file()
    # The gateway ran them at once (a worker per replica), each on its own replica.
    ran = takes(cluster_gateway)[-2:]
    assert len({replica for replica, _ in ran}) == 2, cluster_gateway.log[-3000:]


def test_a_replica_killed_mid_job_is_replaced_and_the_job_runs_once_more(cluster_gateway):
    before = len(takes(cluster_gateway))
    with OscClient(cluster_gateway.host, cluster_gateway.port) as osc:
        osc.hello()
        osc.send("/continuo/generate", "killed", "default", "long drone", 24.0)
        _, mid_job = osc.wait_for(lambda a, args: a == "/continuo/progress" and args[:1] == ["killed"]
                                  and args[1] >= 0.1, JOB_TIMEOUT_S)
        replica, pid = wait_until(lambda: takes(cluster_gateway)[before:], 30, "the take")[0]
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        events = osc.wait_job("killed", JOB_TIMEOUT_S)
        recovered_s = time.monotonic() - killed_at
    addresses = [address for address, _ in events]
    assert addresses[-1] == "/continuo/done", events[-1]
    assert addresses.count("/continuo/queued") == 2, addresses  # accepted, then queued again after the loss
    requeued = addresses.index("/continuo/queued", 1)
    after_loss = [args[1] for address, args in events[requeued:] if address == "/continuo/progress"]
    assert after_loss[0] < mid_job[1], (mid_job, after_loss)  # the client sees progress restart
    assert addresses.count("/continuo/output") == 1, addresses  # no duplicate outputs
    retry = takes(cluster_gateway)[before:]
    assert len(retry) == 2 and retry[1][1] != pid, retry  # one retry, on a live replica
    assert "job=killed re-queued" in cluster_gateway.log
    folder = cluster_gateway.root / "renders" / "killed"
    # One take's files, nothing twice: the mix, its DAW-named link, its waveform's peaks, the manifest.
    daw_name = daw_file_name("killed", "mix", bars=24.0, bpm=120.0)  # no key given: none in the name
    assert sorted(p.name for p in folder.iterdir()) == sorted([daw_name, "manifest.json", "mix.peaks", "mix.wav"])
    print(f"replica killed mid-job: the job completed {recovered_s:.1f} s later")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_head() -> Iterator[str]:
    """A Ray head in its own process group (`ray start --head --block`), stopped by signal at the end.

    Its temp dir is short: Ray's socket paths live under it, and pytest's tmp_path is past the 107-byte limit.
    """
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray), "start", "--head", "--block", f"--port={free_port()}", "--num-cpus=1",
         "--include-dashboard=false", f"--object-store-memory={OBJECT_STORE_MB * 1024 * 1024}",
         "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = []
        for line in head.stdout:
            lines.append(line)
            address = re.search(r"ray start --address='([^']+)'", line)
            if address:
                break
        else:
            raise AssertionError("the Ray head did not start:\n" + "".join(lines))
        threading.Thread(target=head.stdout.read, daemon=True).start()  # keep its pipe drained
        yield address[1]
    finally:
        # SIGTERM first; Ray's graceful stop of a head that served took 39 s here, so after a short grace the
        # group is killed: nothing of it outlives the test (its temp dir, sockets included, goes below).
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_the_gateway_restarts_while_replicas_live(tiny_model_dir, tmp_path, ray_head):
    flags = daemon_flags(tiny_model_dir, tmp_path, "--cluster", ray_head, "--cluster-replicas", "1",
                         "--ack-resends", "0")
    first = DaemonProcess(flags, ready_timeout_s=300).start()
    try:
        assert "deploying 1 replica(s)" in first.log
        with OscClient(first.host, first.port) as osc:
            osc.hello()
            osc.send("/continuo/generate", "survivor", "default", "long drone", 24.0, "retries", 1)
            osc.wait_for(lambda a, args: a == "/continuo/progress" and args[:1] == ["survivor"]
                         and args[2] == "generating", JOB_TIMEOUT_S)
            (_, pid), = wait_until(lambda: takes(first), 30, "the take")
            first.kill()  # kill -9 the gateway mid-job; the replica lives on
            second = DaemonProcess(flags, ready_timeout_s=300).start()
            try:
                assert "attached to the running 'continuo' application" in second.log
                events = osc.wait_job("survivor", JOB_TIMEOUT_S)  # the journal re-runs it (retries 1)
                assert events[-1][0] == "/continuo/done", events[-1]
                assert takes(second)[0][1] == pid  # the same replica process, still warm
                assert "re-run after the last shutdown" in second.log
                doctor = subprocess.run(
                    [sys.executable, "-m", "bridge.cli", "doctor", "--cluster", ray_head,
                     "--model", str(tiny_model_dir)], capture_output=True, text=True, timeout=180)
                cluster = doctor.stdout[doctor.stdout.index("\ncluster:\n"):]
                assert "application 'continuo': RUNNING" in cluster, doctor.stdout + doctor.stderr
                assert f"pid {pid} device cpu idle; warm: {tiny_model_dir}" in cluster, cluster
            finally:
                second.stop()
    finally:
        first.kill()
