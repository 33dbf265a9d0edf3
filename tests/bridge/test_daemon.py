"""In-process daemon (tiny model, events recorded): out of memory, rate limit, limits in status, live slots."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from bridge.daemon import NOT_BUILT_OPS, Daemon, load_model
from bridge.jobs.worker import RENDERERS
from inference.errors import OutOfMemory
from inference.runtime.compute import ComputeThread, runs_on_compute
from tests.daemons import daemon_settings

SENDER = ("127.0.0.1", 41000)


class OomOnce:
    """Wraps the real engine; the first generate runs out of memory."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.failed = False

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, request, **kwargs):
        if "HOLD" in request.prompt:  # keeps the worker busy until cancelled
            from inference.errors import Cancelled

            while not kwargs["should_cancel"]():
                time.sleep(0.02)
            raise Cancelled("cancelled")
        if not self.failed:
            self.failed = True
            raise OutOfMemory("out of memory on cpu while generating; try a smaller preset, int8 weights, "
                              "fewer variations or fewer bars")
        return self._engine.generate(request, **kwargs)


@pytest.fixture
def daemon(make_daemon_in_process):
    """The tiny model behind OomOnce, 20 messages a second per client, at most 3 variations, one job at a time
    (max_batch 1: a running job occupies the worker, and the others wait)."""
    return make_daemon_in_process(engine_loader=lambda settings: OomOnce(load_model(settings)),
                                  max_messages_per_s=20, max_variations=3, max_batch=1)


def test_out_of_memory_fails_the_job_with_a_hint_and_the_next_job_runs(daemon):
    daemon.on_message("/continuo/generate", ["oom-1", "default", "x", 0.5], SENDER)
    address, args = daemon.sent.wait_terminal("oom-1")
    assert address == "/continuo/error" and args[1] == "out_of_memory" and "smaller" in args[2]
    daemon.on_message("/continuo/generate", ["oom-2", "default", "x", 0.5], SENDER)
    assert daemon.sent.wait_terminal("oom-2")[0] == "/continuo/done"
    assert daemon.journal.get("oom-1").error_code == "out_of_memory"


def test_every_request_of_the_schema_is_handled_and_every_job_op_rendered(tiny_model_dir, tmp_path):
    """A request the schema has is handled, or refused with a reason (NOT_BUILT_OPS); the ops the handlers queue
    are the worker's op table (bridge/jobs/worker.py:RENDERERS), so a new job request needs its renderer."""
    daemon = Daemon(daemon_settings(tiny_model_dir, tmp_path))  # not started: the handler table alone
    assert {spec.op for spec in daemon.schema.requests.values()} == set(daemon.handlers) | set(NOT_BUILT_OPS)
    assert {op for op, handler in daemon.handlers.items() if handler == daemon.on_job} == set(RENDERERS)
    assert {"generate", "continue", "variations", "stems", "repaint", "extract", "layer", "cover",
            "midi"} == set(RENDERERS)


def test_status_is_followed_by_the_limits(daemon):
    daemon.on_message("/continuo/status", [], SENDER)
    names = [address for address, _ in daemon.sent]
    assert names == ["/continuo/status", "/continuo/limits", "/continuo/storage", "/continuo/session"]
    limits = daemon.sent[1][1]
    assert limits[:3] == [16, 64.0, 3] and limits[5] == 20.0
    # the client's session (a new one: the daemon's defaults, no key) and the page's address (HTTP is off here)
    assert daemon.sent[3][1] == [120.0, 4, 4, "", 48000, ""]


def test_a_client_over_its_message_rate_gets_busy(daemon):
    for seq in range(40):
        daemon.on_message("/continuo/ping", [seq], SENDER)
    pongs = sum(1 for address, _ in daemon.sent if address == "/continuo/pong")
    busy = [args for address, args in daemon.sent if address == "/continuo/error" and args[1] == "busy"]
    assert 20 <= pongs < 40 and pongs + len(busy) == 40
    daemon.on_message("/continuo/ping", [99], ("127.0.0.1", 41001))  # another client is not affected
    assert daemon.sent[-1] == ("/continuo/pong", [99])


def test_too_many_variations_are_refused_before_queueing(daemon):
    with pytest.raises(Exception) as info:
        daemon.submit("generate", "var-1", {"preset": "default", "prompt": "x", "bars": 0.5, "count": 4}, {}, SENDER)
    assert getattr(info.value, "code", "") == "bad_request" and "max_variations" in info.value.message
    assert daemon.journal.get("var-1") is None


def test_live_slots_keep_only_the_newest_waiting_job(daemon):
    daemon.engine.failed = True  # no out-of-memory in this one
    daemon.on_message("/continuo/generate", ["hold", "default", "HOLD", 8.0], SENDER)  # occupies the worker
    deadline = time.monotonic() + 30
    while daemon.pool.workers[0].running_job() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    for n in range(3):
        daemon.on_message("/continuo/generate", [f"pad-{n}", "default", "x", 0.5, "priority", "live", "slot", 5],
                          SENDER)
    daemon.on_message("/continuo/cancel", ["hold"], SENDER)
    outcomes = {job_id: daemon.sent.wait_terminal(job_id) for job_id in ("pad-0", "pad-1", "pad-2")}
    assert [outcomes[f"pad-{n}"][1][1] for n in (0, 1)] == ["cancelled", "cancelled"]
    assert "replaced by the newer live job" in outcomes["pad-0"][1][2]
    assert outcomes["pad-2"][0] == "/continuo/done"


def test_a_sessions_job_list_keeps_only_live_jobs_past_its_cap(daemon, monkeypatch):
    import bridge.sessions

    monkeypatch.setattr(bridge.sessions, "MAX_SESSION_JOBS", 2)
    for index in range(3):
        daemon.on_message("/continuo/generate", [f"cap-{index}", "default", "x", 0.25], SENDER)
        daemon.sent.wait_terminal(f"cap-{index}")
    daemon.on_message("/continuo/generate", ["cap-3", "default", "HOLD", 0.25], SENDER)
    jobs = daemon.sessions[SENDER].jobs
    assert "cap-3" in jobs and not jobs & {"cap-0", "cap-1"} and len(jobs) <= 2  # finished ones went at the cap
    daemon.on_message("/continuo/cancel", ["*"], SENDER)
    assert daemon.sent.wait_terminal("cap-3")[0] == "/continuo/error"


def test_every_worker_shares_one_stems_separator(make_daemon_in_process):
    """One separator however many workers: one each grew the daemon's RSS by a model at each worker's first stems
    job, long after warm-up (the soak, docs/benchmarks.md)."""
    daemon = make_daemon_in_process(max_batch=2, stems_weights="random", stems_model_size="low")
    assert len(daemon.pool.workers) >= 2
    separators = {id(worker.load_separator()) for worker in daemon.pool.workers}
    assert len(separators) == 1


# -- capabilities: a request the loaded model cannot serve is refused at admission ---------------------------
@pytest.fixture
def serve_model(make_daemon_in_process):
    """start(model_dir, backend) -> an in-process daemon serving that model (events recorded in .sent)."""
    return lambda model_dir, backend="engine": make_daemon_in_process(model=str(model_dir), backend=backend)


def assert_refused_before_journalling(daemon, job_id: str, capability: str) -> str:
    """The request got a bad_request naming the model and the capability; nothing of it was journalled."""
    errors = [args for address, args in daemon.sent if address == "/continuo/error" and args[0] == job_id]
    assert len(errors) == 1 and errors[0][1] == "bad_request", daemon.sent
    message = errors[0][2]
    assert daemon.engine.info.name in message and f"'{capability}'" in message
    assert daemon.journal.get(job_id) is None
    assert "/continuo/queued" not in [address for address, _ in daemon.sent]
    return message


def test_the_reference_backend_refuses_a_stream_request(serve_model, tiny_model_dir):
    daemon = serve_model(tiny_model_dir, backend="transformers")
    daemon.on_message("/continuo/generate", ["ref-stream", "default", "x", 0.5, "stream", 1], SENDER)
    assert "--backend engine" in assert_refused_before_journalling(daemon, "ref-stream", "streaming")


def test_a_plain_model_refuses_a_melody_request(serve_model, tiny_model_dir, tmp_path):
    import numpy as np
    import soundfile

    tune = tmp_path / "inbox" / "tune.wav"  # the inbox beside the output root is an input root
    tune.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(tune, 0.3 * np.sin(np.arange(32000) / 10.0), 32000)
    daemon = serve_model(tiny_model_dir)
    daemon.on_message("/continuo/generate", ["plain-melody", "default", "x", 0.5, "melody", str(tune)], SENDER)
    assert "MusicGen-melody" in assert_refused_before_journalling(daemon, "plain-melody", "melody")


class OneAtATime:
    """An in-process engine that renders one request at a time on a compute thread of its own, as ACE-Step and
    the reference do (inference/runtime/compute.py:runs_on_compute): records the thread of each generate."""

    concurrent_jobs = 1
    measured_speed = None

    def __init__(self, engine) -> None:
        self._engine, self.info, self.threads = engine, engine.info, []
        self.compute = ComputeThread()

    def close(self) -> None:
        pass

    def warm_up(self) -> float:
        return 0.0

    @runs_on_compute
    def generate(self, request, **kwargs):
        self.threads.append(threading.get_ident())
        return self._engine.generate(request, **kwargs)

    @runs_on_compute
    def generate_batch(self, request, seeds, **kwargs):
        self.threads.append(threading.get_ident())
        return self._engine.generate_batch(request, seeds, **kwargs)


@pytest.mark.parametrize("own_compute", [True, False], ids=["our-engine", "one-at-a-time"])
def test_serve_runs_every_torch_call_on_the_serving_thread(make_daemon_in_process, own_compute):
    """As `continuo serve`: run() on a thread of its own stands for the main thread; the workers are other
    threads, and neither the decode (our engine's codec here) nor another engine's generate runs on them."""
    wrap = (lambda engine: engine) if own_compute else OneAtATime
    daemon = make_daemon_in_process(engine_loader=lambda settings: wrap(load_model(settings)), worker_thread=False)
    seen: list[int] = []
    if own_compute:
        real = daemon.engine.codec_decode  # the fast codec or transformers' EnCodec: every decode goes through it
        daemon.engine.codec_decode = lambda *args, **kwargs: (seen.append(threading.get_ident()), real(*args,
                                                                                                      **kwargs))[1]
    # frozen by startup, before the ready line: a client that bursts on "ready" meets no full collection
    assert gc.get_freeze_count() > 0
    main = threading.Thread(target=daemon.run, name="stands-for-main")
    main.start()
    for index in range(2):
        daemon.on_message("/continuo/generate", [f"on-main-{index}", "default", "x", 0.5], SENDER)
    for index in range(2):
        assert daemon.sent.wait_terminal(f"on-main-{index}")[0] == "/continuo/done"
    threads = seen if own_compute else daemon.engine.threads
    assert threads and set(threads) == {main.ident}, "torch ran on a worker's thread"
    assert main.ident not in {worker.ident for worker in daemon.pool.workers}
    assert gc.get_freeze_count() > 0  # still frozen while serving: no full collection stalls a step or the sockets
    daemon.request_stop()
    main.join(30)
    assert not main.is_alive()
