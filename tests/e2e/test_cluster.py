"""`continuo serve --cluster`: the engine as Ray Serve replicas, the front door (OSC, journal, files) unchanged.

Slow (each gateway starts Ray and loads the tiny model in every replica), and run in CI. Ray's object store is
capped at OBJECT_STORE_MB and every replica uses one torch thread, so the cluster stays small. Skipped only
where Ray Serve is not installed (`pip install 'continuo[cluster]'`).
"""

from __future__ import annotations

import json
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

import numpy as np
import pytest
import soundfile

from bridge.audio.files import daw_file_name
from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from tests.daemons import daemon_flags

pytest.importorskip("ray.serve", reason="Ray Serve is not installed here: pip install 'continuo[cluster]'")

pytestmark = pytest.mark.slow

OBJECT_STORE_MB = 80  # Ray's minimum is about 75 MiB
CLUSTER_FLAGS = ("--cluster-object-store-mb", str(OBJECT_STORE_MB), "--ack-resends", "0")
TAKE = re.compile(r"take on replica=(\S+) node=\S+ pid=(\d+)")
TRAINING = re.compile(r"training on replica=(\S+) node=\S+ pid=(\d+)")
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
    flags = daemon_flags(tiny_model_dir, root, "--cluster", "local:2", "--lora-dir", str(root / "loras"),
                         *CLUSTER_FLAGS)
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


def test_a_style_training_runs_on_a_replica_and_its_adapter_renders(cluster_gateway, chord_recordings):
    """train_style on a --cluster gateway: the steps run in a replica's process, the adapter lands in the
    gateway's lora_dir, and a render with it differs from one without."""
    folder = cluster_gateway.root / "inbox" / "band"
    shutil.copytree(chord_recordings, folder)  # under the gateway's input roots
    with OscClient(cluster_gateway.host, cluster_gateway.port) as osc:
        osc.hello()
        osc.send("/continuo/train_style", "style-1", str(folder), "band", "soft chords", 2, 0.03)
        events = osc.wait_job("style-1", JOB_TIMEOUT_S)
        assert events[-1][0] == "/continuo/done", (events[-1], cluster_gateway.log[-3000:])
        steps = [args for address, args in events if address == "/continuo/training"]
        assert steps and steps[-1][1:5] == [2, 2, steps[-1][4], steps[-1][4]]  # epoch 2/2, the last step
        renders = {}
        for job_id, settings in [("plain-1", []), ("styled-1", ["lora", "band"])]:
            osc.send("/continuo/generate", job_id, "default", "warm piano", 1.0, "seed", 3, *settings)
            done = osc.wait_job(job_id, JOB_TIMEOUT_S)
            assert done[-1][0] == "/continuo/done", done[-1]
            output = [args for address, args in done if address == "/continuo/output"][0][2]
            renders[job_id] = soundfile.read(output, dtype="float32")[0]
    (_, pid), = TRAINING.findall(cluster_gateway.log)
    assert int(pid) != cluster_gateway.proc.pid  # trained in a replica's process, not the gateway's
    adapter = cluster_gateway.root / "loras" / "band"
    card = json.loads((adapter / "card.json").read_text())
    assert card["steps"] == steps[-1][4] and card["source_files"][1]["name"] == "take 0.wav"
    assert not (cluster_gateway.root / "loras" / ".training" / "band").exists()  # its checkpoint went
    plain, styled = renders["plain-1"], renders["styled-1"]
    assert plain.shape == styled.shape and not np.allclose(plain, styled)


def test_a_cancelled_training_stops_on_its_replica_and_frees_it(cluster_gateway):
    folder = cluster_gateway.root / "inbox" / "band"  # the test above put the recordings there
    with OscClient(cluster_gateway.host, cluster_gateway.port) as osc:
        osc.hello()
        osc.send("/continuo/train_style", "long-1", str(folder), "long", "", 100, 0.001)
        for _ in range(2):
            osc.wait_for(lambda a, args: a == "/continuo/training" and args[:1] == ["long-1"], JOB_TIMEOUT_S)
        osc.send("/continuo/cancel", "long-1")
        cancelled = osc.wait_job("long-1", 60)
        assert cancelled[-1][0] == "/continuo/error" and cancelled[-1][1][1] == "cancelled", cancelled[-1]
        assert re.search(r"cancelled after \d+ of 200 steps; no checkpoint yet", cancelled[-1][1][2]), cancelled[-1]
        for job_id in ("after-1", "after-2"):  # both replicas take renders again: the training's stopped
            osc.send("/continuo/generate", job_id, "default", "warm piano", 2.0)
        for job_id in ("after-1", "after-2"):
            assert osc.wait_job(job_id, JOB_TIMEOUT_S)[-1][0] == "/continuo/done"
    trained_on = TRAINING.findall(cluster_gateway.log)[-1]
    ran = takes(cluster_gateway)[-2:]
    assert len({replica for replica, _ in ran}) == 2 and trained_on[0] in {replica for replica, _ in ran}, ran
    assert "long" not in os.listdir(cluster_gateway.root / "loras")


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
    daw_name = daw_file_name("long-drone", "mix", bars=24.0, bpm=120.0)  # the prompt's words; no key given: none
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
