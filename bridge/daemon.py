"""The daemon: startup -> run -> shutdown, and the OSC handlers.

Receivers only parse, validate and enqueue; the model is touched by the worker
thread alone. Handlers run on the OSC receive thread and must return quickly.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.context import MusicalContext
from bridge.errors import BadRequest, BridgeError, Busy, NotFound
from bridge.events import EventSink
from bridge.jobs import Address, Job, JobQueue, JobStatus, Priority
from bridge.journal import Journal, JobRecord
from bridge.osc_udp import OscUdpServer
from bridge.plan import build_plan, job_params
from bridge.presets import Preset, builtin_presets_dir, load_presets
from bridge.protocol import Request, Schema, load_schema
from bridge.settings import Settings
from bridge.worker import Worker
from inference.engine import TransformersMusicGen
from inference.loading import load_engine, resolve_model

log = logging.getLogger("continuo.daemon")

JOB_OPS = ("generate", "continue")
NOT_BUILT_OPS = {
    "variations": "variations are not built yet; send /continuo/generate several times with different job ids",
    "stems": "stem separation is not built yet",
    "load_model": "switching models at run time is not built yet; restart with `continuo serve --model NAME`",
}


@dataclass
class ClientSession:
    """What the daemon knows of one sender (host, source port)."""

    name: str
    reply_to: Address
    context: MusicalContext
    jobs: set[str] = field(default_factory=set)


class Daemon:
    def __init__(self, settings: Settings, *, engine_loader: Callable[[Settings], TransformersMusicGen] | None = None):
        self.settings = settings
        self.schema: Schema = load_schema()
        self.stop_requested = threading.Event()
        self.sessions: dict[Address, ClientSession] = {}
        self._engine_loader = engine_loader or load_model
        self.handlers: dict[str, Callable[[Request, Address], None]] = {
            "hello": self.on_hello, "ping": self.on_ping, "context": self.on_context,
            "generate": self.on_job, "continue": self.on_job, "cancel": self.on_cancel, "get": self.on_get,
            "ack": self.on_ack, "status": self.on_status, "presets": self.on_presets, "models": self.on_models,
        }

    # -- phases -----------------------------------------------------------------------------
    def startup(self) -> None:
        started = time.monotonic()
        settings = self.settings
        self.output_root = settings.resolved_output_root
        self.output_root.mkdir(parents=True, exist_ok=True)
        self.input_roots = settings.resolved_input_roots
        self.journal = Journal(settings.resolved_journal_path)
        for job_id in self.journal.unfinished():
            self.journal.finish(job_id, JobStatus.INTERRUPTED, error_code="interrupted",
                                error_message="the daemon stopped before this job finished; send it again with a new id")
            log.warning("job=%s interrupted by the last shutdown", job_id)
        self.presets: dict[str, Preset] = load_presets(self.preset_dirs())
        log.info("presets loaded: %s", ", ".join(sorted(self.presets)))
        self.engine = self._engine_loader(settings)
        self.queue = JobQueue(settings.max_queue)
        self.transport = OscUdpServer(settings.osc_host, settings.osc_port, self.on_message)
        self.events = EventSink(self.schema, self.transport.send)
        self.worker = Worker(queue=self.queue, journal=self.journal, events=self.events, engine=self.engine,
                             presets=lambda: self.presets, input_roots=self.input_roots, output_root=self.output_root)
        self.worker.start()
        self.transport.start()
        host, port = self.transport.address
        info = self.engine.info
        print(
            f"continuo ready: osc=udp://{host}:{port} model={info.name} device={info.device} "
            f"output_root={self.output_root} startup_s={time.monotonic() - started:.1f}",
            flush=True,
        )

    def run(self) -> None:
        self.stop_requested.wait()

    def shutdown(self) -> None:
        log.info("shutting down")
        # Keep the socket open until the worker is done, so the last events still reach their clients;
        # requests that arrive meanwhile are answered `busy` by the closed queue.
        self.worker.stop()
        for job in self.queue.drain():
            self.worker.fail(job, "interrupted", "the daemon stopped before this job started; send it again")
        self.worker.join(self.settings.shutdown_timeout_s)
        if self.worker.is_alive():
            log.warning("the running job did not stop within %.0f s; leaving it", self.settings.shutdown_timeout_s)
        self.transport.stop()
        self.journal.close()
        log.info("stopped")

    def preset_dirs(self) -> list[Path]:
        dirs = [builtin_presets_dir()]
        user = self.settings.user_presets_dir.expanduser()
        if user.is_dir():
            dirs.append(user)
        return dirs

    # -- receiving --------------------------------------------------------------------------
    def on_message(self, address: str, args: list[Any], sender: Address) -> None:
        session = self.sessions.get(sender)
        reply_to = session.reply_to if session else sender
        request = None
        try:
            request = self.schema.parse(address, args)
            handler = self.handlers.get(request.op)
            if handler is None:
                raise BadRequest(NOT_BUILT_OPS.get(request.op, f"{address} is not handled"), job_id=request.job_id)
            handler(request, sender)
        except BridgeError as exc:
            if not exc.job_id and request is not None:
                exc.job_id = request.job_id
            log.info("job=%s rejected %s %s: %s", exc.job_id or "-", address, exc.code, exc.message)
            self.events.error(reply_to, exc.job_id, exc.code, exc.message)

    def session(self, sender: Address) -> ClientSession:
        if sender not in self.sessions:
            context = MusicalContext(bpm=self.settings.bpm, sample_rate=self.settings.sample_rate)
            self.sessions[sender] = ClientSession(name="", reply_to=sender, context=context)
        return self.sessions[sender]

    # -- handlers ---------------------------------------------------------------------------
    def on_hello(self, request: Request, sender: Address) -> None:
        session = self.session(sender)
        session.name = request.args["client"]
        port = request.args["reply_port"] or sender[1]
        session.reply_to = (sender[0], port)
        info = self.engine.info
        log.info("client %s at %s:%d replies to port %d", session.name, sender[0], sender[1], port)
        self.events.emit(session.reply_to, "/continuo/welcome", __version__, info.name,
                         session.context.sample_rate, info.device)

    def on_ping(self, request: Request, sender: Address) -> None:
        self.events.emit(self.session(sender).reply_to, "/continuo/pong", request.args["seq"])

    def on_context(self, request: Request, sender: Address) -> None:
        session = self.session(sender)
        session.context = session.context.replace(**request.args)
        c = session.context
        self.events.emit(session.reply_to, "/continuo/context", c.bpm, c.beats_per_bar, c.beat_unit, c.key,
                         c.sample_rate)

    def on_job(self, request: Request, sender: Address) -> None:
        self.submit(request.op, request.job_id, request.args, request.settings, sender)

    def submit(self, op: str, job_id: str, args: Mapping[str, Any], settings: Mapping[str, Any], sender: Address,
               *, priority: Priority = Priority.INTERACTIVE, slot: int | None = None) -> None:
        """Validate, journal, enqueue and announce one job; every transport and MIDI come through here."""
        session = self.session(sender)
        existing = self.journal.get(job_id)
        if existing is not None:
            self.report_existing(existing, session.reply_to)
            return
        params = job_params(op, args, settings, session.context)
        plan = build_plan(op, params, self.presets, self.input_roots)
        self.check_limits(plan.bars, plan.duration_s, plan.preset.prompt_seconds if plan.input_path else 0.0, job_id)
        if len(self.queue) >= self.queue.max_length:
            raise Busy(f"the queue is full ({self.queue.max_length} waiting); send again after a /continuo/done",
                       job_id=job_id)
        job = Job(job_id=job_id, op=op, params=params, reply_to=session.reply_to, client_key=sender,
                  priority=priority, slot=slot)
        self.journal.insert_job(job.job_id, job.op, params, job.reply_to)
        position = self.queue.put(job)
        session.jobs.add(job.job_id)
        self.events.queued(job.reply_to, job.job_id, position, self.eta_s(position))
        log.info("job=%s queued op=%s preset=%s bars=%g position=%d priority=%s", job.job_id, job.op,
                 plan.preset.name, plan.bars, position, priority.value)

    def check_limits(self, bars: float, duration_s: float, prompt_s: float, job_id: str) -> None:
        if bars > self.settings.max_bars:
            raise BadRequest(f"{bars:g} bars is more than this daemon allows ({self.settings.max_bars:g}); "
                             "ask for fewer bars or raise max_bars", job_id=job_id)
        limit = self.engine.info.max_duration_s - prompt_s
        if duration_s > limit:
            raise BadRequest(
                f"{bars:g} bars is {duration_s:.1f} s at this tempo; the model renders at most {limit:.1f} s per "
                f"request{' after the prompt' if prompt_s else ''}; ask for fewer bars (longer output is not built yet)",
                job_id=job_id,
            )

    def eta_s(self, position: int) -> float:
        waiting = self.queue.waiting()[: max(position, 0)]
        seconds = sum(MusicalContext(**job.params["context"]).seconds_for_bars(job.params["bars"]) for job in waiting)
        running = self.worker.running_job()
        if running is not None:
            seconds += MusicalContext(**running.params["context"]).seconds_for_bars(running.params["bars"]) / 2
        return seconds * self.worker.seconds_per_audio_s

    def report_existing(self, record: JobRecord, reply_to: Address) -> None:
        """A resent job id never renders twice: report where the first one is."""
        if record.status.terminal:
            self.events.replay(reply_to, record)
            return
        waiting = [job.job_id for job in self.queue.waiting()]
        position = waiting.index(record.job_id) + 1 if record.job_id in waiting else 0
        self.events.queued(reply_to, record.job_id, position, self.eta_s(position))

    def on_cancel(self, request: Request, sender: Address) -> None:
        session = self.session(sender)
        everything = request.args["job_id"] == "*"
        targets = sorted(session.jobs) if everything else [request.job_id]
        for job_id in targets:
            self.cancel(job_id, session.reply_to, quiet=everything)

    def cancel(self, job_id: str, reply_to: Address, *, quiet: bool) -> None:
        job = self.queue.remove(job_id)
        if job is not None:
            job.cancel()
            self.worker.fail(job, "cancelled", "cancelled before it started")
            return
        running = self.worker.running_job()
        if running is not None and running.job_id == job_id:
            running.cancel()  # the worker reports `cancelled` after the current step
            return
        if not quiet:
            record = self.journal.get(job_id)
            if record is None:
                raise BadRequest(f"no job {job_id!r} to cancel", job_id=job_id)
            self.events.replay(reply_to, record)

    def on_get(self, request: Request, sender: Address) -> None:
        reply_to = self.session(sender).reply_to
        record = self.journal.get(request.job_id)
        if record is None:
            raise NotFound(f"no job {request.job_id!r} in the journal", job_id=request.job_id)
        self.report_existing(record, reply_to)

    def on_ack(self, request: Request, sender: Address) -> None:
        """Terminal events are sent once for now; an ack is accepted and needs no reply."""

    def on_status(self, request: Request, sender: Address) -> None:
        used_gb, total_gb = memory_gb()
        state = "busy" if self.worker.running_job() is not None else "idle"
        self.events.emit(self.session(sender).reply_to, "/continuo/status", state, self.engine.info.name,
                         used_gb, total_gb, len(self.queue))

    def on_presets(self, request: Request, sender: Address) -> None:
        reply_to = self.session(sender).reply_to
        for name in sorted(self.presets):
            self.events.emit(reply_to, "/continuo/presets", name, self.presets[name].description)

    def on_models(self, request: Request, sender: Address) -> None:
        info = self.engine.info
        self.events.emit(self.session(sender).reply_to, "/continuo/models", info.name, info.source_kind,
                         info.sample_rate, info.channels)


def load_model(settings: Settings) -> TransformersMusicGen:
    if settings.cpu_threads:
        import torch

        torch.set_num_threads(settings.cpu_threads)
    source = resolve_model(settings.model, tiny_dir=settings.smoke_model_dir.expanduser(),
                           allow_tiny_fallback=settings.allow_smoke_model)
    return load_engine(source, device=settings.device)


def memory_gb() -> tuple[float, float]:
    """(resident memory of this process, total memory of the machine) in GB."""
    used = 0.0
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    used = int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return used, total


@contextmanager
def stop_on_signals(daemon: Daemon) -> Iterator[None]:
    """SIGINT and SIGTERM ask the daemon to stop; the previous handlers come back afterwards."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        daemon.stop_requested.set()

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(settings: Settings) -> int:
    daemon = Daemon(settings)
    with stop_on_signals(daemon):
        daemon.startup()
        try:
            daemon.run()
        finally:
            daemon.shutdown()
    return 0
