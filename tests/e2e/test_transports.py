"""The real daemon (tiny model) over every transport, under load, killed mid-job, and locked down.

All traffic is loopback. Every wait is bounded. Marked slow: each test starts daemons.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.clients.osc import OscClient, OscTcpClient
from bridge.clients.process import DaemonProcess
from bridge.clients.zmq import ZmqClient
from bridge.tools.keys import load_keys, make_keys
from tests.bridge.transports.test_fuzz import fuzz_packet
from tests.daemons import JOB_TIMEOUT_S, daemon_flags

pytestmark = pytest.mark.slow

def udp_socket_drops() -> dict[int, int]:
    """{local port: datagrams the kernel dropped for that UDP socket (a full receive buffer)}; {} off Linux."""
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:] + Path("/proc/net/udp6").read_text().splitlines()[1:]
    except OSError:
        return {}
    return {int(fields[1].rsplit(":", 1)[1], 16): int(fields[-1]) for fields in map(str.split, lines)}


@pytest.mark.parametrize("framing", ["slip", "length"])
def test_a_job_over_osc_tcp_replies_on_the_connection(daemon_process, framing):
    with OscTcpClient(daemon_process.host, daemon_process.tcp_port, framing=framing) as client:
        client.hello()
        client.send("/continuo/generate", f"tcp-{framing}", "default", "x", 0.5)
        events = client.wait_job(f"tcp-{framing}", JOB_TIMEOUT_S, ack=True)
    assert events[0][0] == "/continuo/queued" and events[-1][0] == "/continuo/done"
    assert Path(next(args for a, args in events if a == "/continuo/output")[2]).is_file()


def test_a_job_over_zmq_with_inline_input_and_output(daemon_process):
    t = np.arange(48000 * 2) / 48000
    clip = np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
    with ZmqClient(daemon_process.zmq_endpoint) as client:
        client.request("continue", {"job_id": "zmq-inline", "preset": "default", "bars": 0.5},
                       inputs=[("input_path", clip, 48000)], outputs="both")
        replies = client.wait_job("zmq-inline", JOB_TIMEOUT_S, ack=True)
    assert replies[0].event == "accepted" and replies[-1].event == "done", replies[-1]
    output = next(r for r in replies if r.event == "output" and r.args["name"] == "mix")
    on_disk, rate = sf.read(output.args["path"], dtype="float32", always_2d=True)
    assert output.pcm[0].shape == on_disk.shape and np.allclose(output.pcm[0], on_disk)


def test_zmq_status_snapshot_names_the_limits(daemon_process):
    with ZmqClient(daemon_process.zmq_endpoint) as client:
        status = client.status()
    assert status["state"] in ("idle", "busy") and status["max_queue"] == 16 and status["max_messages_per_s"] == 1000


MAX_UDP_PAYLOAD = 65507  # IPv4: 65535 - 8 (UDP header) - 20 (IP header)


def test_random_packets_over_real_sockets_then_a_real_job(daemon_process):
    rng = random.Random(5)
    with OscClient(daemon_process.host, daemon_process.port) as udp:
        for _ in range(3000):
            packet = fuzz_packet(rng)
            if len(packet) > MAX_UDP_PAYLOAD:  # a deep random bundle can outgrow what one datagram carries
                continue
            udp.send_raw(packet)
            time.sleep(0.0002)  # stay under the per-client rate limit
        assert udp.ping(1, timeout_s=10) == 1
    for framing in ("slip", "length"):
        with OscTcpClient(daemon_process.host, daemon_process.tcp_port, framing=framing) as tcp:
            for _ in range(200):
                if not tcp.connected:
                    break
                try:
                    tcp.send_raw(fuzz_packet(rng))
                except OSError:
                    break  # the daemon closed a connection whose framing broke
    with ZmqClient(daemon_process.zmq_endpoint) as client:
        for _ in range(500):
            client.send_frames([bytes(rng.randrange(256) for _ in range(rng.randint(0, 30)))
                                for _ in range(rng.randint(1, 4))])
        assert client.ping(2, timeout_s=10) == 2
    with OscClient(daemon_process.host, daemon_process.port) as osc:
        osc.hello()
        osc.send("/continuo/generate", "after-socket-fuzz", "default", "x", 0.5)
        assert osc.wait_job("after-socket-fuzz", JOB_TIMEOUT_S, ack=True)[-1][0] == "/continuo/done"
    assert daemon_process.proc.poll() is None


def snapshot(client: OscClient) -> list:
    """The client's queued events, copied under its lock (its receive thread appends meanwhile)."""
    with client._cond:
        return list(client._events)


def test_20000_control_messages_in_a_burst(daemon_process):
    # 1000 each: within the rate limit
    clients = [OscClient(daemon_process.host, daemon_process.port) for _ in range(20)]
    try:
        for index, client in enumerate(clients):
            for seq in range(1000):
                if seq % 10 == 9:
                    client.send("/continuo/status")
                else:
                    client.send("/continuo/ping", index * 1000 + seq)
        deadline = time.monotonic() + 60
        answered = 0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            counts = [Counter(a for a, _ in snapshot(client)) for client in clients]
            answered = sum(c["/continuo/pong"] + c["/continuo/status"] for c in counts)
            if answered >= 20000:
                break
        drops = udp_socket_drops()  # which side lost datagrams, if any: the daemon's socket or the clients'
        assert answered >= 0.999 * 20000, (
            f"{answered} answered; datagrams the kernel dropped: daemon {drops.get(daemon_process.port, '?')}, "
            f"clients {sum(drops.get(client.reply_address[1], 0) for client in clients)}")
    finally:
        for client in clients:
            client.close()


def test_200_jobs_from_4_clients_each_reach_exactly_one_terminal_event(tiny_model_dir, tmp_path):
    per_client = 50
    with DaemonProcess(daemon_flags(tiny_model_dir, tmp_path, "--max-queue", "24")) as process:
        udp_a, udp_b = OscClient(process.host, process.port), OscClient(process.host, process.port)
        tcp = OscTcpClient(process.host, process.tcp_port, framing="length")
        zmq_client = ZmqClient(process.zmq_endpoint)
        results: dict[str, list[tuple[str, str]]] = defaultdict(list)
        lock = threading.Lock()

        def run_osc(client, name):
            client.hello()
            ids = [f"{name}-{i}" for i in range(per_client)]
            for job_id in ids:
                client.send("/continuo/generate", job_id, "default", "x", 0.25)
            for job_id in ids:
                events = client.wait_job(job_id, 300, ack=True)
                with lock:
                    results[job_id].append((events[-1][0], events[-1][1][1] if events[-1][0].endswith("error") else ""))

        def run_zmq():
            ids = [f"zmq-{i}" for i in range(per_client)]
            for job_id in ids:
                zmq_client.request("generate", {"job_id": job_id, "preset": "default", "prompt": "x", "bars": 0.25})
            for job_id in ids:
                replies = zmq_client.wait_job(job_id, 300, ack=True)
                last = replies[-1]
                with lock:
                    results[job_id].append(("/continuo/" + last.event, last.args.get("code", "")))

        threads = [threading.Thread(target=run_osc, args=(udp_a, "udp-a")),
                   threading.Thread(target=run_osc, args=(udp_b, "udp-b")),
                   threading.Thread(target=run_osc, args=(tcp, "tcp")),
                   threading.Thread(target=run_zmq)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(400)
        time.sleep(2.5)  # late re-sends arrive by now
        extra = {c: [e for e in c.drain() if e[0] in ("/continuo/done", "/continuo/error")]
                 for c in (udp_a, udp_b, tcp)}
        for client in (udp_a, udp_b, tcp):
            client.close()
        zmq_client.close()
        journal = sqlite3.connect(str(tmp_path / "renders" / "journal.sqlite3"))
        rows = dict(journal.execute("SELECT job_id, status FROM jobs").fetchall())
        journal.close()
    assert len(results) == 4 * per_client, sorted(results)[:5]
    assert all(len(outcomes) == 1 for outcomes in results.values())
    outcomes = Counter(outcome for (outcome,) in results.values())
    assert set(outcomes) <= {("/continuo/done", ""), ("/continuo/error", "busy")}, outcomes
    assert outcomes[("/continuo/done", "")] >= 24 and outcomes[("/continuo/error", "busy")] >= 1, outcomes
    done_ids = {job_id for job_id, (outcome,) in results.items() if outcome[0] == "/continuo/done"}
    assert {job_id for job_id, status in rows.items() if status == "done"} == done_ids  # busy is never journalled
    for events in extra.values():  # late re-sends (acked after the interval) repeat the same outcome, never another
        for address, args in events:
            code = args[1] if address.endswith("error") else ""
            assert results[args[0]] == [(address, code)], (args, results[args[0]])


def kill_during(process: DaemonProcess, osc: OscClient, job_id: str, stage: str) -> None:
    osc.send("/continuo/generate", job_id, "default", "x", 8.0)
    osc.wait_for(lambda a, args: a == "/continuo/progress" and args[0] == job_id and args[2] == stage, JOB_TIMEOUT_S)
    process.stop(signal.SIGKILL)


@pytest.mark.parametrize("stage", ["generating", "writing"])
def test_kill_9_mid_job_leaves_no_partial_file_and_a_consistent_journal(tiny_model_dir, tmp_path, stage):
    run_flags = daemon_flags(tiny_model_dir, tmp_path)
    with DaemonProcess(run_flags) as first, OscClient(first.host, first.port) as osc:
        osc.hello()
        osc.send("/continuo/generate", "kept", "default", "x", 0.5)
        kept = osc.wait_job("kept", JOB_TIMEOUT_S, ack=True)
        kill_during(first, osc, "cut", stage)
    renders = tmp_path / "renders"
    for wav in renders.rglob("*.wav"):  # whatever is under a final name is a whole file
        info = sf.info(str(wav))
        assert info.frames > 0 and info.duration > 0
    with DaemonProcess(run_flags) as second, OscClient(second.host, second.port) as osc:
        osc.hello()
        osc.send("/continuo/get", "kept")
        replay = osc.wait_job("kept", 10)
        assert [e for e in replay if e[0] == "/continuo/output"] == [e for e in kept if e[0] == "/continuo/output"]
        for _, args in (e for e in replay if e[0] == "/continuo/output"):
            assert sf.info(args[2]).frames == round(args[5] * args[3])
        osc.send("/continuo/get", "cut")
        cut = osc.wait_job("cut", 10)
        if cut[-1][0] == "/continuo/error":
            assert cut[-1][1][1] == "interrupted"
        else:  # killed after the done was journalled: then every announced file is there
            assert all(Path(args[2]).is_file() for a, args in cut if a == "/continuo/output")
        assert not list(renders.rglob("*.partial"))
        assert second.stop(signal.SIGTERM) == 0
    journal = sqlite3.connect(str(renders / "journal.sqlite3"))
    assert journal.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0] == 0
    for path, in journal.execute("SELECT path FROM outputs"):
        assert Path(path).is_file()
    journal.close()


def test_a_job_that_asked_for_retries_is_rerun_after_kill_9(tiny_model_dir, tmp_path):
    run_flags = daemon_flags(tiny_model_dir, tmp_path)
    with OscClient("127.0.0.1", 9) as osc:  # its reply port outlives both daemons
        with DaemonProcess(run_flags) as first:
            osc.dest = (first.host, first.port)
            osc.hello()
            osc.send("/continuo/generate", "again", "default", "x", 8.0, "retries", 1)
            osc.wait_for(lambda a, args: a == "/continuo/progress" and args[0] == "again", JOB_TIMEOUT_S)
            first.stop(signal.SIGKILL)
        osc.drain()
        with DaemonProcess(run_flags) as second:
            events = osc.wait_job("again", JOB_TIMEOUT_S, ack=True)  # sent to the journalled reply address
            assert events[-1][0] == "/continuo/done", events[-1]
            assert "re-run after the last shutdown" in second.log


def test_non_loopback_zmq_with_curve_refuses_a_client_without_the_server_key(tiny_model_dir, tmp_path):
    keys = make_keys(tmp_path / "keys")
    with DaemonProcess(daemon_flags(tiny_model_dir, tmp_path, "--zmq-host", "0.0.0.0", "--zmq-keys-dir",
                                    str(tmp_path / "keys"), "--osc-host", "0.0.0.0",
                                    "--osc-allowed-hosts", "10.11.12.13")) as process:
        port = process.zmq_endpoint.rsplit(":", 1)[1]
        endpoint = f"tcp://127.0.0.1:{port}"  # loopback traffic only
        with ZmqClient(endpoint) as stranger, pytest.raises(TimeoutError):
            stranger.ping(1, timeout_s=2)
        server_public, _ = load_keys(keys["server_public"])
        with ZmqClient(endpoint, server_public_key=server_public,
                       client_keys=load_keys(keys["client_secret"])) as friend:
            assert friend.ping(2, timeout_s=10) == 2


@pytest.mark.parametrize("transport", ["tcp", "zmq"])
def test_continuo_send_over_tcp_and_zmq(daemon_process, transport):
    import subprocess
    import sys

    where = (["--port", str(daemon_process.tcp_port)] if transport == "tcp"
             else ["--zmq-port", daemon_process.zmq_endpoint.rsplit(":", 1)[1]])
    result = subprocess.run([sys.executable, "-m", "bridge.cli", "send", "--transport", transport, *where,
                             "/continuo/generate", f"send-{transport}", "default", "x", "0.5"],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert f"/continuo/done 'send-{transport}'" in result.stdout
