"""`continuo bench bridge`: what the bridge adds to a request, per transport, on loopback.

For each of OSC/UDP, OSC/TCP (SLIP) and ZeroMQ the client sends N requests one at a
time and times request -> reply:
- `status`: receive, validate, answer (two events back);
- `generate`: receive, validate, build the plan, journal (SQLite, synchronous=FULL),
  enqueue, answer `queued` -- the full accept path.
The daemon runs in its own process with a held engine (its first job waits, doing
no work, so every later job only queues and the CPU stays free for the
measurement). A bare python-osc echo server (UDP, BlockingOSCUDPServer) and a bare
pyzmq ROUTER echo, each in its own process, are timed in the same run: overhead =
daemon minus bare echo, per percentile. Also the inline PCM round trip of 8 bars
of 48 kHz stereo (16 s at 120 BPM, 6.1 MB of float32) over ZeroMQ: upload as a
`continue` input (written to the inbox, validated, queued) and download of an
8-bar output as a /continuo/get reply.

HTTP (keep-alive http.client, the daemon's Starlette on uvicorn) in the same interleaved blocks: ping
(POST /api/requests/ping), status (GET /api/status), generate (POST /api/jobs), against a bare Starlette +
uvicorn echo; an SSE client on /api/events times request sent -> its event (queued, and the terminal
`cancelled` error of DELETE /api/jobs/{id}) arriving on the stream; and the download of the 8-bar 48 kHz
stereo output (GET /api/jobs/{id}/files/mix).
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bridge.clients.process import ENDPOINT_PATTERNS, ENDPOINTS_PATTERN
from bridge.tools.machine import load_average, machine
from inference.api import Capability, ModelInfo

PCM_BARS, PCM_RATE, PCM_SECONDS = 8, 48000, 16.0


HELD_INFO = ModelInfo(name="held-engine (bench: renders nothing)", source_kind="bench", sample_rate=32000,
                      channels=1, frame_rate=50.0, max_duration_s=30.0, is_random=True, device="cpu", parameters=0,
                      capabilities=frozenset({Capability.TEXT, Capability.CONTINUATION, Capability.VARIATIONS}))


class HeldEngine:
    """An Engine whose every render waits until its job is cancelled: jobs queue, nothing renders."""

    info = HELD_INFO
    concurrent_jobs = 1
    measured_speed = None
    compute = None  # it computes nothing: a render waits on the calling worker

    def close(self) -> None:
        """Nothing to let go of."""

    def warm_up(self) -> float:
        return 0.0

    def generate(self, request, *, on_progress=None, should_cancel=None, on_chunk=None):
        from inference.errors import Cancelled

        while should_cancel is None or not should_cancel():
            time.sleep(0.05)
        raise Cancelled("cancelled")

    def generate_batch(self, request, seeds, *, on_progress=None, should_cancel=None, on_chunk=None):
        return [self.generate(request, should_cancel=should_cancel)]

    def open_stream(self, *, max_frames: int = 0):
        from inference.runtime.request_checks import unsupported

        raise unsupported(self.info, Capability.CODE_STREAM)


def percentiles_ms(samples_s: list[float]) -> dict[str, float]:
    values = np.asarray(samples_s) * 1000
    return {"p50_ms": round(float(np.percentile(values, 50)), 3), "p99_ms": round(float(np.percentile(values, 99)), 3),
            "n": len(values)}


# -- the servers (each runs as `python -m bridge.tools.bench_bridge NAME ...`) -----------------------------
def serve_held_daemon(root: str) -> None:
    import soundfile as sf

    from bridge.daemon import serve
    from bridge.jobs.journal import Journal, OutputRecord
    from bridge.jobs.queue import JobStatus
    from bridge.settings import load_settings

    settings = load_settings({
        "osc_port": "0", "zmq_port": "0", "zmq_pub_port": "0", "http_port": "0", "output_root": f"{root}/renders",
        "user_presets_dir": f"{root}/presets", "max_queue": "1000000", "max_messages_per_s": "0",
        "log_level": "WARNING", "ack_resends": "0",
    })
    # One finished 8-bar job to download inline.
    journal = Journal(settings.resolved_journal_path)
    folder = settings.resolved_output_root / "bench-pcm"
    folder.mkdir(parents=True, exist_ok=True)
    audio = (0.1 * np.random.default_rng(0).standard_normal((int(PCM_SECONDS * PCM_RATE), 2))).astype(np.float32)
    sf.write(folder / "mix.wav", audio, PCM_RATE, subtype="FLOAT")
    if journal.get("bench-pcm") is None:
        journal.insert_job("bench-pcm", "generate", {"bars": 8.0}, ("127.0.0.1", 0))
        journal.add_output("bench-pcm", OutputRecord("mix", (folder / "mix.wav").as_posix(), PCM_RATE, 2,
                                                     PCM_SECONDS, 8.0, -20.0, -3.0))
        journal.finish("bench-pcm", JobStatus.DONE, seed=1, elapsed_s=1.0)
    journal.close()
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    serve(settings, engine_loader=lambda _settings: HeldEngine())


def serve_osc_echo() -> None:
    from pythonosc import dispatcher, osc_server, udp_client

    clients: dict[tuple, udp_client.SimpleUDPClient] = {}

    def echo(client_address, address, *args):
        client = clients.get(client_address)
        if client is None:
            client = clients[client_address] = udp_client.SimpleUDPClient(*client_address)
        client.send_message("/continuo/pong", args[0] if args else 0)

    table = dispatcher.Dispatcher()
    table.map("/continuo/ping", echo, needs_reply_address=True)
    server = osc_server.BlockingOSCUDPServer(("127.0.0.1", 0), table)
    print(f"echo ready: udp={server.server_address[1]}", flush=True)
    server.serve_forever()


def serve_zmq_echo() -> None:
    import zmq

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    print(f"echo ready: zmq={port}", flush=True)
    while True:
        router.send_multipart(router.recv_multipart(copy=False), copy=False)


def serve_http_echo() -> None:
    import asyncio
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"events": [{"event": "pong", "args": await request.json()}]})

    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the daemon's (bridge/transports/http.py)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"echo ready: http={sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/echo", echo, methods=["POST"])]),
                                           log_level="warning", access_log=False, lifespan="off",
                                           timeout_keep_alive=60))
    asyncio.run(server.serve(sockets=[sock]))


class HttpBench:
    """A keep-alive HTTP client of the daemon, and an SSE reader noting when each job's events arrive."""

    def __init__(self, base: str) -> None:
        url = base.removeprefix("http://").rstrip("/")
        self.host, port = url.rsplit(":", 1)
        self.port = int(port)
        self.conn = _connect(self.host, self.port)
        self.arrived: dict[tuple[str, str], float] = {}
        self._stream = http.client.HTTPConnection(self.host, self.port, timeout=None)
        self._stream.request("GET", "/api/events")
        self._response = self._stream.getresponse()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name = ""
        for raw in self._response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                job_id = json.loads(line[6:])["args"].get("job_id", "")
                self.arrived[(name, job_id)] = time.perf_counter()

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={"content-type": "application/json"} if data else {})
        response = self.conn.getresponse()
        payload = response.read()
        return json.loads(payload) if response.headers.get("content-type", "").startswith("application/json") else {}

    def wait_event(self, name: str, job_id: str, timeout_s: float = 5.0) -> float:
        deadline = time.monotonic() + timeout_s
        while (name, job_id) not in self.arrived:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {name} event for {job_id} on the SSE stream")
            time.sleep(0.0002)
        return self.arrived.pop((name, job_id))

    def ops(self, k: int, first: int, sse: dict[str, list[float]]) -> dict[str, list[float]]:
        ping = time_requests(lambda i: self.call("POST", "/api/requests/ping", {"seq": first + i}), lambda i: None, k)
        status = time_requests(lambda i: self.call("GET", "/api/status"), lambda i: None, k)
        job = lambda i: f"http-{first + i}"  # noqa: E731
        sent: dict[str, float] = {}

        def post(i: int) -> None:
            sent[job(i)] = time.perf_counter()
            reply = self.call("POST", "/api/jobs", {"op": "generate", "job_id": job(i), "preset": "default",
                                                     "prompt": "bench", "bars": 1.0, "settings": {"priority": "batch"}})
            if reply["events"][0]["event"] != "queued":
                raise RuntimeError(f"HTTP generate refused: {reply}")

        def cancel(i: int) -> None:
            sse["queued"].append(self.wait_event("queued", job(i)) - sent[job(i)])
            started = time.perf_counter()
            self.call("DELETE", f"/api/jobs/{job(i)}")
            sse["cancelled"].append(self.wait_event("error", job(i)) - started)

        generate = time_requests(post, lambda i: None, k, cancel)
        return {"ping": ping, "status": status, "generate": generate}

    def download(self, repeats: int) -> dict:
        samples, size = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            self.conn.request("GET", "/api/jobs/bench-pcm/files/mix")
            response = self.conn.getresponse()
            size = len(response.read())
            samples.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"HTTP download failed: {response.status}")
        return {"bytes": size, **percentiles_ms(samples),
                "mb_per_s_p50": round(size / float(np.median(samples)) / 1e6, 1)}


def _connect(host: str, port: int) -> http.client.HTTPConnection:
    """A keep-alive connection with TCP_NODELAY, as browsers and HTTP libraries use (without it a small request
    written in two segments waits for the peer's delayed ACK, about 40 ms on Linux)."""
    import socket

    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _http_echo(conn: http.client.HTTPConnection, k: int, first: int) -> list[float]:
    def send(i: int) -> None:
        conn.request("POST", "/echo", body=json.dumps({"seq": first + i}).encode(),
                     headers={"content-type": "application/json"})
        conn.getresponse().read()

    return time_requests(send, lambda i: None, k)


# -- the client side ------------------------------------------------------------------------------------
class Child:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge.tools.bench_bridge", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True,
                                     cwd=Path(__file__).resolve().parents[2])
        self.line = ""  # its lines up to its ready line (the daemon's endpoints line comes just before it)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.line += line
            if "ready" in line:
                break
        if "ready" not in self.line:
            self.stop()
            raise RuntimeError(f"bench server {args[0]} did not start")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def time_requests(send, wait, n: int, after=None) -> list[float]:
    """Times send(i) -> wait(i); after(i) runs untimed (e.g. cancel, so the queue stays short as in a session)."""
    samples = []
    for i in range(n):
        started = time.perf_counter()
        send(i)
        wait(i)
        samples.append(time.perf_counter() - started)
        if after is not None:
            after(i)
    return samples


def bench_pcm(client, inbox: Path, repeats: int) -> dict:
    audio = (0.1 * np.random.default_rng(1).standard_normal((int(PCM_SECONDS * PCM_RATE), 2))).astype(np.float32)
    up, down = [], []
    for i in range(repeats):
        started = time.perf_counter()
        job_id = f"pcm-up-{i}"
        client.request("continue", {"job_id": job_id, "preset": "default", "bars": 1.0},
                       {"priority": "batch"}, inputs=[("input_path", audio, PCM_RATE)])
        reply = client.wait_for(lambda r: r.event in ("accepted", "error"), 30)
        up.append(time.perf_counter() - started)
        if reply.event != "accepted":
            raise RuntimeError(f"inline upload refused: {reply.args}")
        client.request("cancel", {"job_id": job_id})
        client.wait_for(lambda r: r.event == "error" and r.job_id == job_id, 30)
        started = time.perf_counter()
        client.request("get", {"job_id": "bench-pcm"}, outputs="inline")
        output = client.wait_for(lambda r: r.event == "output" and r.job_id == "bench-pcm", 30)
        client.wait_for(lambda r: r.event == "done" and r.job_id == "bench-pcm", 30)
        down.append(time.perf_counter() - started)
        if not output.pcm or output.pcm[0].shape != audio.shape:
            raise RuntimeError("inline download came back without the expected PCM frame")
    return {"bytes": audio.nbytes, "upload": percentiles_ms(up), "download": percentiles_ms(down),
            "round_trip_p50_ms": round(float(np.median(up) + np.median(down)) * 1000, 1)}


def run_bridge_bench(n: int = 2000, pcm_repeats: int = 5, block: int = 100) -> dict:
    """Every server runs at once; measurements go in interleaved blocks of `block` requests, so the
    bare echo servers and the daemon sample the same moments of a shared machine's noise."""
    import zmq

    from bridge.clients.osc import OscClient, OscTcpClient
    from bridge.clients.zmq import ZmqClient

    result: dict = {"suite": "bridge", "n": n, "block": block, "load": load_average(), "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="continuo-bench-bridge-") as tmp, \
            _children(Child("osc-echo"), Child("zmq-echo"), Child("http-echo"), Child("held-daemon", tmp)) as \
            (echo_udp, echo_zmq, echo_http, daemon):
        line = daemon.line
        ctx = zmq.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        echo_zmq_port = int(re.search(r"zmq=(\d+)", echo_zmq.line)[1])
        dealer.connect(f"tcp://127.0.0.1:{echo_zmq_port}")
        payload = [b"CONTINUO/1", b'{"op":"ping","args":{"seq":1}}']
        with OscClient("127.0.0.1", int(re.search(r"udp=(\d+)", echo_udp.line)[1])) as bare_udp, \
                OscClient("127.0.0.1", int(ENDPOINTS_PATTERN.search(line)["port"])) as udp, \
                OscTcpClient("127.0.0.1", int(ENDPOINT_PATTERNS["tcp_port"].search(line)[1])) as tcp, \
                ZmqClient(ENDPOINT_PATTERNS["zmq_endpoint"].search(line)[1]) as zmq_client:
            udp.hello()
            tcp.hello()
            udp.send("/continuo/generate", "hold", "default", "hold", 1.0)  # the held job: later jobs only queue
            udp.wait_for(lambda a, args: a == "/continuo/queued", 10)
            web = HttpBench(ENDPOINT_PATTERNS["http_url"].search(line)[1])
            bare_http = _connect("127.0.0.1", int(re.search(r"http=(\d+)", echo_http.line)[1]))
            sse: dict[str, list[float]] = {"queued": [], "cancelled": []}
            suites = {
                "bare_python_osc_udp_echo": lambda k, first: {"ping": _osc_ping(bare_udp, k, first)},
                "bare_pyzmq_router_echo": lambda k, first: {"ping": time_requests(
                    lambda i: dealer.send_multipart(payload), lambda i: dealer.recv_multipart(), k)},
                "daemon_osc_udp": lambda k, first: _osc_ops(udp, k, first, "udp"),
                "daemon_osc_tcp": lambda k, first: _osc_ops(tcp, k, first, "tcp"),
                "daemon_zmq": lambda k, first: _zmq_ops(zmq_client, k, first, "zmq"),
                "bare_starlette_uvicorn_echo": lambda k, first: {"ping": _http_echo(bare_http, k, first)},
                "daemon_http": lambda k, first: web.ops(k, first, sse),
            }
            samples: dict[str, dict[str, list[float]]] = {name: {} for name in suites}
            for name, run in suites.items():  # warm-up, not recorded
                run(50, 10_000_000)
            sse["queued"].clear()
            sse["cancelled"].clear()
            for first in range(0, n, block):
                for name, run in suites.items():
                    for op, values in run(min(block, n - first), first).items():
                        samples[name].setdefault(op, []).extend(values)
            for name, ops in samples.items():
                result[name] = {op: percentiles_ms(values) for op, values in ops.items()}
            pcm = np.zeros((int(PCM_SECONDS * PCM_RATE), 2), np.float32)
            result["bare_pyzmq_router_echo"]["pcm_8_bars"] = percentiles_ms(time_requests(
                lambda i: dealer.send_multipart([payload[0], payload[1], pcm], copy=False),
                lambda i: dealer.recv_multipart(copy=False), pcm_repeats))
            result["daemon_zmq_inline_pcm_8_bars_48k_stereo"] = bench_pcm(zmq_client, Path(tmp), pcm_repeats)
            result["daemon_http_sse_event_after_request_sent"] = {name: percentiles_ms(values)
                                                                 for name, values in sse.items()}
            result["daemon_http_download_8_bars_48k_stereo_float32"] = web.download(max(pcm_repeats, 20))
        dealer.close(0)
        ctx.term()
    for name, bare in (("daemon_osc_udp", "bare_python_osc_udp_echo"), ("daemon_osc_tcp", "bare_python_osc_udp_echo"),
                       ("daemon_zmq", "bare_pyzmq_router_echo"), ("daemon_http", "bare_starlette_uvicorn_echo")):
        base = result[bare]["ping"]
        result[name]["overhead_vs_bare_echo_ms"] = {
            op: {"p50": round(result[name][op]["p50_ms"] - base["p50_ms"], 3),
                 "p99": round(result[name][op]["p99_ms"] - base["p99_ms"], 3)}
            for op in ("ping", "status", "generate")
        }
    result["load_after"] = load_average()
    return result


class _children:
    def __init__(self, *children: Child) -> None:
        self.children = children

    def __enter__(self) -> tuple[Child, ...]:
        return self.children

    def __exit__(self, *exc: object) -> None:
        for child in self.children:
            child.stop()


def _osc_ping(client, k: int, first: int) -> list[float]:
    return time_requests(lambda i: client.send("/continuo/ping", first + i),
                         lambda i: client.wait_for(lambda a, args: a == "/continuo/pong" and args == [first + i], 5), k)


def _osc_ops(client, k: int, first: int, prefix: str) -> dict[str, list[float]]:
    ping = _osc_ping(client, k, first)
    status = time_requests(lambda i: client.send("/continuo/status"),
                           lambda i: (client.wait_for(lambda a, _: a == "/continuo/status", 5),
                                      client.wait_for(lambda a, _: a == "/continuo/limits", 5)), k)
    job = lambda i: f"{prefix}-{first + i}"  # noqa: E731
    generate = time_requests(
        lambda i: client.send("/continuo/generate", job(i), "default", "bench", 1.0, "priority", "batch"),
        lambda i: client.wait_for(lambda a, args: a == "/continuo/queued" and args[0] == job(i), 5), k,
        lambda i: (client.send("/continuo/cancel", job(i)),
                   client.wait_for(lambda a, args: a == "/continuo/error" and args[0] == job(i), 5)))
    client.drain()
    return {"ping": ping, "status": status, "generate": generate}


def _zmq_ops(client, k: int, first: int, prefix: str) -> dict[str, list[float]]:
    ping = time_requests(lambda i: client.request("ping", {"seq": first + i}),
                         lambda i: client.wait_for(lambda r: r.event == "pong" and r.args.get("seq") == first + i, 5),
                         k)
    status = time_requests(lambda i: client.status(), lambda i: None, k)
    job = lambda i: f"{prefix}-{first + i}"  # noqa: E731
    generate = time_requests(
        lambda i: client.request("generate", {"job_id": job(i), "preset": "default", "prompt": "bench", "bars": 1.0},
                                 {"priority": "batch"}),
        lambda i: client.wait_for(lambda r: r.event == "accepted" and r.job_id == job(i), 5), k,
        lambda i: (client.request("cancel", {"job_id": job(i)}),
                   client.wait_for(lambda r: r.event == "error" and r.job_id == job(i), 5)))
    client._pending.clear()
    return {"ping": ping, "status": status, "generate": generate}


def main(argv: list[str]) -> int:
    if argv[:1] == ["held-daemon"]:
        serve_held_daemon(argv[1])
    elif argv[:1] == ["osc-echo"]:
        serve_osc_echo()
    elif argv[:1] == ["zmq-echo"]:
        serve_zmq_echo()
    elif argv[:1] == ["http-echo"]:
        serve_http_echo()
    else:
        print(json.dumps(run_bridge_bench()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
