"""`continuo bench soak`: does the daemon's memory stay flat over many short jobs from several clients at once?

A real `continuo serve` (the tiny random smoke model unless ``--model`` names one; stems with random HDemucs
weights, ``stems_model_size low``) gets ``jobs`` short jobs (1-2 bars) from five clients at the same time, each
on its own thread: OSC over UDP, OSC over TCP, ZeroMQ (inline PCM inputs and outputs now and then), HTTP (the
control room's calls: POST /api/jobs, the SSE stream, polling GET /api/jobs/{id}, the history, downloads,
uploads) and the CLI (a `continuo generate|continue|variations|stems` process per job). Each client cycles through
the job kinds (generate, with loop, streamed previews or stems now and then; continue; variations; stems) and,
between jobs, polls like its front end does: status, get, the history.

The daemon's resident memory (VmRSS, and RssAnon: the heap without the mapped files) is sampled every second and
after every job. Warm-up is the first ``warmup_jobs`` jobs (by default a fifth, and at least one of every kind
from every client): what loads once (the separator, code paths, the decode caches at their largest batch) loads
then. Three times the soak lets the daemon go quiet (no new job until every job out has ended, then 2 s): after
warm-up, halfway through the rest and at the end; RSS then is what the daemon keeps, not the activations of the
jobs running at that instant, so the three compare like with like. The result is one JSON line: those three
(``rss_start_mb``, ``rss_middle_mb``, ``rss_end_mb``), the peak and the mean while jobs ran, the growth in % (end
over start) and per 100 jobs, jobs done and failed by kind, and ``passed``: growth within ``TARGET_GROWTH``
(10 %). A target lives in this benchmark, not in a timed test.

Where memory goes when it grows: docs/benchmarks.md, "Soak", has the causes found with it and how they were found.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bridge.clients.process import DaemonProcess
from bridge.tools.machine import load_average, machine

TARGET_GROWTH = 0.10  # RSS at the end may exceed RSS after warm-up by at most this fraction
KINDS = ("generate", "continue", "variations", "stems")
CLIENTS = ("osc_udp", "osc_tcp", "zmq", "http", "cli")
INPUT_SECONDS, INPUT_RATE = 2.0, 48000
JOB_TIMEOUT_S = 600.0  # one short job on a shared 2-core machine, queued behind the others
SAMPLE_INTERVAL_S = 1.0
SETTLE_S = 2.0  # at a quiet checkpoint, the wait after the last job's end before RSS is read
ROOT = Path(__file__).resolve().parents[2]


def read_rss_mb(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of process pid in MB (MiB), from /proc/<pid>/status; off Linux the resident size
    alone (psutil), the other two 0."""
    from inference.runtime.memory import proc_status_bytes, resident_bytes

    values = {name: (proc_status_bytes(name, pid) or 0) / 2**20 for name in ("RssAnon", "RssFile")}
    return {"rss_mb": (resident_bytes(pid) or 0) / 2**20, "anon_mb": values["RssAnon"], "file_mb": values["RssFile"]}


@dataclass
class Sample:
    t_s: float
    jobs_done: int
    rss_mb: float
    anon_mb: float


class Tally:
    """Hands out job numbers until ``jobs`` are out or the deadline passes, and counts the ends. With a warm-up it
    pauses twice: after handing out job ``warmup_jobs`` and halfway through the rest (by count; with a deadline, by
    time), no job goes out until every job out has ended; then ``on_quiet(label)`` runs ("start", "middle") and
    handing goes on. Thread-safe."""

    def __init__(self, jobs: int, deadline: float | None, on_done: Callable[[int], None], *, warmup_jobs: int = 0,
                 on_quiet: Callable[[str], None] | None = None) -> None:
        self.jobs, self.deadline, self.on_done = jobs, deadline, on_done
        self.warmup_jobs, self.on_quiet = warmup_jobs, on_quiet
        paused = warmup_jobs > 0 and deadline is None  # no warm-up: no quiet checkpoints
        self.middle_job = warmup_jobs + (jobs - warmup_jobs) // 2 if paused else None
        self.middle_time: float | None = None  # with a deadline: set when warm-up ends
        self.handed = 0
        self.done = 0
        self.pause: str | None = None  # the quiet checkpoint being waited for
        self.quiet: list[str] = []  # the checkpoints reached
        self.by_kind: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()  # "<kind>:<error code>"
        self.client_errors: list[str] = []
        self._cond = threading.Condition()

    def take(self) -> int | None:
        with self._cond:
            while self.pause is not None:
                self._cond.wait()
            now = time.monotonic()
            if self.handed >= self.jobs or (self.deadline is not None and now > self.deadline):
                return None
            self.handed += 1
            if self.handed == self.warmup_jobs > 0:
                self.pause = "start"
            elif "middle" not in self.quiet and self.handed > self.warmup_jobs and (
                    self.handed == self.middle_job or (self.middle_time is not None and now >= self.middle_time)):
                self.pause = "middle"
            return self.handed

    def finish(self, kind: str, error_code: str = "") -> None:
        with self._cond:
            self.done += 1
            self.by_kind[kind] += 1
            if error_code:
                self.failed[f"{kind}:{error_code}"] += 1
            done = self.done
            quiet = self.pause if self.pause is not None and done == self.handed else None
        self.on_done(done)
        if quiet is None:
            return
        if self.on_quiet is not None:
            self.on_quiet(quiet)
        with self._cond:
            self.quiet.append(quiet)
            if quiet == "start" and self.deadline is not None:
                self.middle_time = time.monotonic() + (self.deadline - time.monotonic()) / 2
            self.pause = None
            self._cond.notify_all()

    def client_error(self, client: str, error: BaseException) -> None:
        with self._cond:
            self.client_errors.append(f"{client}: {type(error).__name__}: {str(error)[:200]}")


class RssSampler(threading.Thread):
    """Samples the daemon's RSS every interval (and on demand) until stopped."""

    def __init__(self, pid: int, tally: Tally, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__(name="soak-rss", daemon=True)
        self.pid, self.tally, self.interval_s = pid, tally, interval_s
        self.started = time.monotonic()
        self.samples: list[Sample] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def sample(self) -> Sample:
        rss = read_rss_mb(self.pid)
        sample = Sample(time.monotonic() - self.started, self.tally.done, rss["rss_mb"], rss["anon_mb"])
        with self._lock:
            self.samples.append(sample)
        return sample

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            try:
                self.sample()
            except OSError:  # the daemon is gone; the bench reports it
                return

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


@dataclass
class Job:
    """One job as a client sends it: its kind and the arguments every front end can express."""

    kind: str
    job_id: str
    bars: float
    settings: dict[str, Any] = field(default_factory=dict)
    count: int = 2  # variations
    stems: str = "drums,bass"  # stems

    @property
    def prompt(self) -> str:
        return "soak: warm lo-fi piano"


def plan_job(client: str, index: int, number: int, rng: random.Random) -> Job:
    """The client's index-th job (number: its place among all jobs, for a unique id). Kinds cycle, shifted per
    client so that every kind runs from every client early; some generate jobs loop, stream or split stems."""
    kind = KINDS[(index + CLIENTS.index(client)) % len(KINDS)]
    job = Job(kind, f"soak-{os.getpid()}-{number:05d}-{client.replace('_', '')}-{kind}", bars=rng.choice((1.0, 2.0)))
    if kind == "generate":
        job.settings = rng.choice(({}, {"loop": 1}, {"stream": 1}, {"stems": "drums,bass"}))
    elif kind == "variations":
        job.bars = 1.0
    return job


# -- the clients (each runs on its own thread until the tally runs out) ------------------------------------------
class SoakClient:
    name = ""

    def __init__(self, daemon: DaemonProcess, inbox_input: Path, tally: Tally, seed: int) -> None:
        self.daemon, self.input, self.tally = daemon, inbox_input, tally
        self.rng = random.Random(seed)

    def loop(self) -> None:
        for index in itertools.count():
            number = self.tally.take()
            if number is None:
                return
            job = plan_job(self.name, index, number, self.rng)
            try:
                code = self.run(job)
            except Exception as error:  # noqa: BLE001 — reported in the result; the soak goes on with this client
                self.tally.client_error(self.name, error)
                code = "client_error"
            self.tally.finish(job.kind, code)

    def run(self, job: Job) -> str:
        """Send job, wait for its end, poll as the front end would; the error code, "" when done."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class OscSoakClient(SoakClient):
    """OSC over UDP or TCP: hello, jobs with their settings as name/value pairs, ack, then get and status."""

    def __init__(self, *args: Any, tcp: bool) -> None:
        super().__init__(*args)
        from bridge.clients.osc import OscClient, OscTcpClient

        self.name = "osc_tcp" if tcp else "osc_udp"
        self.client = OscTcpClient(self.daemon.host, self.daemon.tcp_port, name=f"soak-{self.name}") if tcp \
            else OscClient(self.daemon.host, self.daemon.port, name=f"soak-{self.name}")
        self.client.hello()

    def run(self, job: Job) -> str:
        path = self.input.as_posix()
        args = {"generate": ("default", job.prompt, job.bars), "continue": ("default", path, job.bars),
                "variations": ("default", "", job.count, job.bars), "stems": (path, job.stems)}[job.kind]
        pairs = [value for item in job.settings.items() for value in item]
        self.client.send(f"/continuo/{job.kind}", job.job_id, *args, *pairs)
        events = self.client.wait_job(job.job_id, JOB_TIMEOUT_S, ack=True)
        self.client.send("/continuo/get", job.job_id)  # the replay of its end
        self.client.wait_for(lambda a, args: a in ("/continuo/done", "/continuo/error") and args[:1] == [job.job_id],
                             30)
        self.client.send("/continuo/status")
        self.client.wait_for(lambda a, _: a == "/continuo/limits", 30)
        last = events[-1]
        return "" if last[0] == "/continuo/done" else str(last[1][1])

    def close(self) -> None:
        self.client.close()


class ZmqSoakClient(SoakClient):
    """ZeroMQ: continue and stems send their input as inline PCM every other time; every third job asks for its
    outputs inline."""

    name = "zmq"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from bridge.clients.zmq import ZmqClient

        self.client = ZmqClient(self.daemon.zmq_endpoint)
        self.client.request("hello", {"client": "soak-zmq"})
        self.client.wait_for(lambda r: r.event == "welcome", 30)
        self.audio = sf.read(self.input, dtype="float32", always_2d=True)[0]
        self.jobs = 0

    def run(self, job: Job) -> str:
        self.jobs += 1
        args: dict[str, Any] = {"job_id": job.job_id}
        inline = job.kind in ("continue", "stems") and self.jobs % 2 == 0
        inputs = [("input_path", self.audio, INPUT_RATE)] if inline else []
        path = "" if inline else self.input.as_posix()
        if job.kind == "generate":
            args |= {"preset": "default", "prompt": job.prompt, "bars": job.bars}
        elif job.kind == "continue":
            args |= {"preset": "default", "input_path": path, "bars": job.bars}
        elif job.kind == "variations":
            args |= {"preset": "default", "input_path": "", "count": job.count, "bars": job.bars}
        else:
            args |= {"input_path": path, "stems": job.stems}
        settings = job.settings if job.kind != "stems" else None
        self.client.request(job.kind, args, settings, inputs=inputs, outputs="inline" if self.jobs % 3 == 0 else "path")
        replies = self.client.wait_job(job.job_id, JOB_TIMEOUT_S, ack=True)
        self.client.status(30)
        self.client.request("get", {"job_id": job.job_id})
        self.client.wait_for(lambda r: r.event in ("done", "error") and r.job_id == job.job_id, 30)
        self.client._pending.clear()  # progress of other ids that arrived meanwhile: nothing to wait for
        last = replies[-1]
        return "" if last.event == "done" else str(last.args.get("code", "error"))

    def close(self) -> None:
        self.client.close()


class HttpSoakClient(SoakClient):
    """The control room's calls: the SSE stream open throughout, POST /api/jobs, the job's end from the stream
    (even jobs) or by polling GET /api/jobs/{id} (odd ones), then the mix's download, the status and the history.
    Continue and stems upload their input first every third time (as a file dropped on the page)."""

    name = "http"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from bridge.tools.bench_bridge import HttpBench

        self.web = HttpBench(self.daemon.http_url)  # keeps an SSE stream open and notes each job event's arrival
        self.jobs = 0

    def run(self, job: Job) -> str:
        self.jobs += 1
        path = self.upload() if job.kind in ("continue", "stems") and self.jobs % 3 == 0 else self.input.as_posix()
        body: dict[str, Any] = {"op": job.kind, "job_id": job.job_id}
        if job.kind == "generate":
            body |= {"preset": "default", "prompt": job.prompt, "bars": job.bars, "settings": job.settings}
        elif job.kind == "continue":
            body |= {"preset": "default", "input_path": path, "bars": job.bars, "settings": job.settings}
        elif job.kind == "variations":
            body |= {"preset": "default", "input_path": "", "count": job.count, "bars": job.bars}
        else:
            body |= {"input_path": path, "stems": job.stems}
        reply = self.web.call("POST", "/api/jobs", body)
        if reply.get("error"):
            return str(reply["error"].get("code", "refused"))
        code = self.wait_stream(job.job_id) if self.jobs % 2 == 0 else self.poll(job.job_id)
        self.web.call("POST", "/api/requests/ack", {"job_id": job.job_id})
        if not code:
            self.download(job.job_id)
        self.web.call("GET", "/api/status")
        self.web.call("GET", "/api/jobs?limit=50")
        return code

    def wait_stream(self, job_id: str) -> str:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            arrived = self.web.arrived
            if ("done", job_id) in arrived:
                self.forget(job_id)
                return ""
            if ("error", job_id) in arrived:
                self.forget(job_id)
                return "error"
            time.sleep(0.05)
        raise TimeoutError(f"no done or error for {job_id} on the SSE stream within {JOB_TIMEOUT_S:g} s")

    def forget(self, job_id: str) -> None:
        for key in [key for key in self.web.arrived if key[1] == job_id]:
            self.web.arrived.pop(key, None)

    def poll(self, job_id: str) -> str:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            job = self.web.call("GET", f"/api/jobs/{job_id}").get("job", {})
            if job.get("status") == "done":
                self.forget(job_id)
                return ""
            if job.get("status") in ("failed", "cancelled", "interrupted"):
                self.forget(job_id)
                return str(job.get("error_code") or job["status"])
            time.sleep(0.25)
        raise TimeoutError(f"job {job_id} still not finished after {JOB_TIMEOUT_S:g} s of polling")

    def download(self, job_id: str) -> None:
        conn = self.web.conn
        conn.request("GET", f"/api/jobs/{job_id}")
        record = json.loads(conn.getresponse().read()).get("job", {})
        for output in record.get("outputs", [])[:1]:
            conn.request("GET", output["url"])
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"download of {output['url']} answered {response.status}")

    def upload(self) -> str:
        conn = http.client.HTTPConnection(self.web.host, self.web.port, timeout=60)
        try:
            conn.request("POST", "/api/inputs?name=soak-drop.wav", body=self.input.read_bytes(),
                         headers={"content-type": "application/octet-stream"})
            reply = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        return reply["path"]


class CliSoakClient(SoakClient):
    """One `continuo <op> ... --json` process per job (a new OSC sender each time, as a user in a shell), and a
    `continuo status` every fourth job."""

    name = "cli"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.jobs = 0

    def run(self, job: Job) -> str:
        self.jobs += 1
        base = ["--port", str(self.daemon.port), "--json", "--job-id", job.job_id, "--timeout", str(JOB_TIMEOUT_S)]
        if job.kind == "generate":
            extra = ["--loop"] if job.settings.get("loop") else []
            if job.settings.get("stems"):
                extra += ["--stems", job.settings["stems"]]
            command = ["generate", job.prompt, "--bars", str(job.bars), *extra]
        elif job.kind == "continue":
            command = ["continue", str(self.input), "--bars", str(job.bars)]
        elif job.kind == "variations":
            command = ["variations", "--prompt", job.prompt, "--count", str(job.count), "--bars", str(job.bars)]
        else:
            command = ["stems", str(self.input), "--stems", job.stems]
        code = self.cli(*command, *base)
        if self.jobs % 4 == 0:
            self.cli("status", "--port", str(self.daemon.port), "--json")
        return code

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=JOB_TIMEOUT_S + 60)
        if done.returncode == 0:
            return ""
        for line in reversed(done.stdout.splitlines()):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("event") == "error":
                return str(event.get("code") or event.get("args", {}).get("code") or f"exit_{done.returncode}")
        return f"exit_{done.returncode}"


CLIENT_TYPES: dict[str, Callable[..., SoakClient]] = {
    "osc_udp": lambda *args: OscSoakClient(*args, tcp=False),
    "osc_tcp": lambda *args: OscSoakClient(*args, tcp=True),
    "zmq": ZmqSoakClient,
    "http": HttpSoakClient,
    "cli": CliSoakClient,
}


# -- the run --------------------------------------------------------------------------------------------------
def write_input(path: Path) -> Path:
    """A 2 s stereo 48 kHz input (a chord and a little noise) for continue and stems."""
    t = np.arange(int(INPUT_SECONDS * INPUT_RATE)) / INPUT_RATE
    tone = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 330.0))
    noise = 0.02 * np.random.default_rng(0).standard_normal((t.size, 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (tone[:, None] + noise).astype(np.float32), INPUT_RATE, subtype="PCM_16")
    return path


def daemon_flags(model: Path | str, root: Path, extra: list[str]) -> list[str]:
    return ["--model", str(model), "--osc-port", "0", "--zmq-port", "0", "--zmq-pub-port", "0", "--http-port", "0",
            "--output-root", str(root / "renders"), "--user-presets-dir", str(root / "presets"),
            "--stems-weights", "random", "--stems-model-size", "low", "--log-level", "WARNING", *extra]


def served_model(daemon: DaemonProcess) -> str:
    """The model the daemon's ready line names."""
    found = re.search(r"continuo ready: .* model=(.+?) device=", daemon.log)
    return found[1] if found else "?"


def growth_figures(samples: list[Sample], quiet: dict[str, Sample]) -> dict[str, Any]:
    """RSS with no job running (the quiet samples: after warm-up, halfway, at the end), the growth end over start in
    % and in MB per 100 jobs, the peak and the mean while jobs ran after warm-up."""
    if "start" not in quiet or "end" not in quiet:
        raise RuntimeError(f"the soak ended before its quiet samples after warm-up and at the end ({sorted(quiet)})")
    start, end = quiet["start"], quiet["end"]
    middle = quiet.get("middle")
    growth = (end.rss_mb - start.rss_mb) / start.rss_mb
    after = [s for s in samples if s.t_s >= start.t_s]
    per_job = (end.rss_mb - start.rss_mb) / max(1, end.jobs_done - start.jobs_done)
    figures = {"rss_ready_mb": round(samples[0].rss_mb, 1)}
    for name, sample in (("start", start), ("middle", middle), ("end", end)):
        figures[f"rss_{name}_mb"] = None if sample is None else round(sample.rss_mb, 1)
        figures[f"anon_{name}_mb"] = None if sample is None else round(sample.anon_mb, 1)
        figures[f"jobs_at_{name}"] = None if sample is None else sample.jobs_done
    return figures | {
        "rss_peak_mb": round(max(s.rss_mb for s in samples), 1),
        "rss_busy_mean_mb": round(float(np.mean([s.rss_mb for s in after])), 1),
        "growth_pct": round(100 * growth, 1), "growth_mb_per_100_jobs": round(100 * per_job, 1),
        "passed": growth <= TARGET_GROWTH,
    }


def bench_soak(*, jobs: int = 200, duration_s: float = 0.0, warmup_jobs: int = 0, model: str | None = None,
               clients: tuple[str, ...] = CLIENTS, daemon_extra: list[str] | None = None,
               env: dict[str, str] | None = None, progress: Callable[[int, int, float], None] | None = None,
               keep_dir: Path | None = None) -> dict[str, Any]:
    """Run the soak; the result as one JSON-ready dict. duration_s > 0 stops handing out jobs after that long.
    progress(jobs_done, jobs, rss_mb) after each job ends."""
    if not warmup_jobs:  # a fifth of the jobs, or with a deadline (jobs then only a cap) twice every kind per client
        warmup_jobs = max(len(clients) * len(KINDS), jobs // 5) if duration_s <= 0 else 2 * len(clients) * len(KINDS)
    if warmup_jobs >= jobs:
        raise ValueError(f"{jobs} jobs leave nothing after a warm-up of {warmup_jobs}; ask for more --jobs")
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="continuo-soak-", dir=keep_dir) as tmp:
        root = Path(tmp)
        if model is None:
            from inference.musicgen.tiny import build_tiny_musicgen

            model = str(build_tiny_musicgen(root / "tiny-musicgen", seed=0))
        with DaemonProcess(daemon_flags(model, root, daemon_extra or []), env=env) as daemon:
            return run_clients(daemon, root, jobs=jobs, duration_s=duration_s, warmup_jobs=warmup_jobs,
                               clients=clients, progress=progress) | {
                "model": served_model(daemon),
                "load_before": load_before, "load_after": load_average(),
                "machine": machine(), "cpu_count": os.cpu_count()}


def run_clients(daemon: DaemonProcess, root: Path, *, jobs: int, duration_s: float, warmup_jobs: int,
                clients: tuple[str, ...], progress: Callable[[int, int, float], None] | None) -> dict[str, Any]:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    inbox_input = write_input(root / "inbox" / "soak-input.wav")  # the default input roots: output root, inbox/
    started = time.monotonic()
    sampler: RssSampler | None = None

    def on_done(done: int) -> None:
        sample = sampler.sample() if sampler is not None else None
        if progress is not None:
            progress(done, jobs, sample.rss_mb if sample else 0.0)

    quiet: dict[str, Sample] = {}

    def on_quiet(label: str) -> None:  # no job runs now: let the last one's acks, downloads and trim settle
        time.sleep(SETTLE_S)
        quiet[label] = sampler.sample()

    tally = Tally(jobs, started + duration_s if duration_s > 0 else None, on_done, warmup_jobs=warmup_jobs,
                  on_quiet=on_quiet)
    sampler = RssSampler(pid, tally)
    sampler.sample()
    sampler.start()
    made = [CLIENT_TYPES[name](daemon, inbox_input, tally, seed) for seed, name in enumerate(clients)]
    threads = [threading.Thread(target=client.loop, name=f"soak-{client.name}", daemon=True) for client in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    on_quiet("end")
    sampler.stop()
    for client in made:
        client.close()
    wall_s = time.monotonic() - started
    if daemon.proc.poll() is not None:
        raise RuntimeError(f"the daemon exited ({daemon.proc.returncode}) during the soak:\n{daemon.log[-4000:]}")
    return {
        "suite": "soak", "jobs": tally.done, "jobs_asked": jobs, "warmup_jobs": warmup_jobs,
        "clients": list(clients), "by_kind": dict(tally.by_kind), "failed": dict(tally.failed),
        "client_errors": tally.client_errors[:20], "wall_s": round(wall_s, 1),
        "target_growth_pct": round(100 * TARGET_GROWTH), **growth_figures(sampler.samples, quiet),
        "samples": [[round(s.t_s, 1), s.jobs_done, round(s.rss_mb, 1)] for s in sampler.samples[::10]],
    }
