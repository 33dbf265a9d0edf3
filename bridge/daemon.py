"""The daemon: startup -> run -> shutdown, and the OSC handlers.

Receivers only parse, validate and enqueue; the model is touched by the worker threads alone (one per job the
engine takes at once), through the engine's own compute thread (inference/api.py:Engine). Handlers run on the
OSC receive thread and must return quickly.
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
from bridge.audio.context import MusicalContext
from bridge.audio.presets import Preset, PresetError, builtin_presets_dir, load_presets
from bridge.audio.stems import LazySeparator, separator_config
from bridge.errors import BadRequest, BridgeError, Busy, NotFound
from bridge.jobs.admission import admit
from bridge.jobs.events import EventSink
from bridge.jobs.job_ids import check_resend, check_same_model, files_gone, find_job
from bridge.jobs.journal import JobRecord, Journal
from bridge.jobs.model_switch import ModelSwitch, UnloadedEngine
from bridge.jobs.queue import Destination, Job, JobQueue, JobStatus, Priority
from bridge.jobs.retention import RetentionTimer, remove_partials
from bridge.jobs.trash import Report, Rules, send_report, send_storage
from bridge.jobs.worker import Worker
from bridge.midi import MidiController, MidiMap, load_midi_maps, midi_map_dirs, mix_path, open_midi_input, pick_midi_map
from bridge.protocol.schema import Request, Schema, load_schema
from bridge.settings import Settings
from bridge.transports.hub import Transports
from bridge.transports.limits import RateLimiter
from bridge.transports.peers import is_peer
from inference.adapters import find_adapters
from inference.api import Compute, Engine
from inference.loading import load_engine, resolve_model
from inference.runtime.memory import freeze_heap

log = logging.getLogger("continuo.daemon")

NOT_BUILT_OPS: dict[str, str] = {}  # op -> why it is refused: requests the schema has and this daemon does not build


@dataclass
class ClientSession:
    """What the daemon knows of one sender (host, source port)."""

    name: str
    reply_to: Destination
    context: MusicalContext
    jobs: set[str] = field(default_factory=set)  # this client's jobs that may still be waiting or running
    last_seen: float = field(default_factory=time.monotonic)


# Sessions are kept for as long as the daemon runs (a set left open overnight keeps its tempo and reply
# port), but not without bound: past MAX_SESSIONS senders (every TCP reconnect is a new sender) the one
# heard from longest ago is forgotten, and a session's job list drops finished jobs past MAX_SESSION_JOBS.
MAX_SESSIONS = 1024
MAX_SESSION_JOBS = 256


class Daemon:
    def __init__(self, settings: Settings, *, engine_loader: Callable[[Settings], Engine] | None = None,
                 compute_on_main_thread: bool = False):
        self.settings = settings
        # True for `continuo serve`: the job loop runs on the main thread, the one that loaded the model, so
        # torch's OpenMP threads have one master. A second master (a worker thread) makes libgomp throttle
        # its spin-waits once it manages more threads than cores: every parallel region then sleeps and
        # wakes through the kernel, and on 2 cores decoding ran at half speed (32 vs 67 steps/s).
        # In-process users (tests) keep the worker thread so startup() returns.
        self.compute_on_main_thread = compute_on_main_thread
        self.schema: Schema = load_schema()
        self.stop_requested = threading.Event()
        self.sessions: dict[Destination, ClientSession] = {}
        self._engine_loader = engine_loader or load_model
        self._receive_lock = threading.RLock()  # UDP, TCP and ZeroMQ threads take turns in the handlers
        self.handlers: dict[str, Callable[[Request, Destination], None]] = {
            "hello": self.on_hello, "ping": self.on_ping, "context": self.on_context,
            "generate": self.on_job, "continue": self.on_job, "cancel": self.on_cancel, "get": self.on_get,
            "ack": self.on_ack, "status": self.on_status, "presets": self.on_presets, "models": self.on_models,
            "load_model": self.on_load_model,
        }
        self.handlers.update(stems=self.on_job, reload_presets=self.on_reload_presets, variations=self.on_job)
        # ACE-Step edits (bridge/jobs/song.py)
        self.handlers.update(repaint=self.on_job, extract=self.on_job, layer=self.on_job, cover=self.on_job)
        # freeing space, explicitly (bridge/jobs/trash.py)
        self.handlers.update(prune=self.on_prune, trash_restore=self.on_trash_restore, trash_empty=self.on_trash_empty)
        self.midi_maps: dict[str, MidiMap] = {}
        self.midi_controller: MidiController | None = None  # with settings.midi: set by start_midi
        self.midi_port: Any = None  # the open mido input that feeds midi_controller

    # -- phases -----------------------------------------------------------------------------
    def startup(self) -> None:
        started = time.monotonic()
        settings = self.settings
        self.output_root = settings.resolved_output_root
        self.output_root.mkdir(parents=True, exist_ok=True)
        self.input_roots = settings.resolved_input_roots
        self.journal = Journal(settings.resolved_journal_path)
        retry = self.interrupt_unfinished()
        remove_partials(self.output_root)
        # Inline ZeroMQ inputs land here, and /continuo/welcome names it for clients that copy inputs in.
        self.inbox = inbox = next((r for r in self.input_roots if r.name == "inbox"),
                                  self.input_roots[0] / ".zmq-inbox")
        self.retention = RetentionTimer(self.journal, self.output_root, settings, inbox=inbox,
                                        in_use=self.inputs_in_use)
        self.retention.prune()
        self.presets: dict[str, Preset] = load_presets(self.preset_dirs())
        log.info("presets loaded: %s", ", ".join(sorted(self.presets)))
        self.midi_maps = load_midi_maps(midi_map_dirs(self.preset_dirs()), list(self.presets))
        self.engine = self._engine_loader(settings)
        self.model_spec = settings.model  # what the served engine was loaded from (a switch changes both)
        self.queue = JobQueue(settings.max_queue, on_superseded=self.on_superseded)
        self.transports = Transports(settings, self.on_message, inbox=inbox, journal=self.journal, about=self.about)
        self.events = EventSink(self.schema, self.transports.send, resends=settings.ack_resends,
                                resend_interval_s=settings.ack_interval_s)
        self.rate_limiter = RateLimiter(settings.max_messages_per_s)
        self.compute = self.compute_for(self.engine)
        # One separator for every worker, loaded on the first stems job: separations run one at a time on the
        # compute thread anyway, and one per worker grew the soak's RSS by a model at each worker's first
        # stems job, after warm-up (bridge/tools/bench_soak.py; docs/benchmarks.md, "Soak").
        self.separator = LazySeparator(separator_config(settings.stems_weights, settings.stems_model_size,
                                                        settings.device))
        self.worker = self.new_worker()
        # Jobs at once: our engine decodes up to max_batch together (continuous batching), a cluster engine
        # takes one per replica; one worker thread per job, and one more kept for live jobs where they batch.
        jobs = concurrent_jobs(self.engine)
        self.workers = [self.worker] + [self.new_worker() for _ in range(jobs - 1)]
        if jobs > 1 and self.engine_serves():
            self.workers.append(self.new_worker(live_only=True))
        self.switch = ModelSwitch(settings=settings, loader=self.load_on_compute, queue=self.queue,
                                  journal=self.journal, events=self.events, install=self.install_engine,
                                  served=lambda: (self.engine, self.model_spec), answer=self.answer_model)
        for worker in self.workers:  # a cluster does not switch; the last idle worker runs a switch
            worker.between_jobs = self.between_jobs
        take_lock = threading.Lock()  # the live worker counts against no one: it keeps its own
        for worker in self.workers:
            worker.may_take = lambda worker=worker: self.may_take(worker)
            if not worker.live_only:
                worker.take_lock = take_lock
        if not self.compute_on_main_thread:
            self.start_workers()  # `continuo serve` starts them in run(), beside the engine's compute loop
        if settings.stems_prepare_at_start:
            self.separator.start_background_preparation()  # a stems job meanwhile waits for it
        if settings.midi:
            self.start_midi()
        self.requeue(retry)
        self.retention.start()
        if self.compute_on_main_thread:
            # before the ready line: its full collection stops every thread for 0.3-0.5 s, and a client that
            # bursts on "ready" lost 9,918 of 20,000 datagrams to it at the daemon's socket
            freeze_heap()
        self.transports.start()
        info = self.engine.info
        print(
            f"continuo ready: {self.transports.ready_text()} model={info.name} device={info.device} "
            f"output_root={self.output_root} renders=kept auto_trash="
            f"{f'{settings.auto_trash_days:g}d' if settings.auto_trash_days else 'off'} "
            f"startup_s={time.monotonic() - started:.1f}",
            flush=True,
        )

    def new_worker(self, *, live_only: bool = False) -> Worker:
        worker = Worker(queue=self.queue, journal=self.journal, events=self.events, engine=self.engine,
                        presets=lambda: self.presets, input_roots=self.input_roots, output_root=self.output_root,
                        separator=self.separator, live_only=live_only)
        worker.compute = self.compute
        return worker

    def compute_for(self, engine: Engine) -> Compute | None:
        """The thread that runs engine's torch calls and the workers' other torch work (stems): the engine's own
        (our engine's batch scheduler; the reference's and ACE-Step's); None for a cluster engine (its replicas
        compute)."""
        return engine.compute

    def load_on_compute(self, settings: Settings) -> Engine:
        """A model switch's load, on the compute thread (the main thread in `continuo serve`), like the first."""
        return self.compute.call(lambda: self._engine_loader(settings)) if self.compute else \
            self._engine_loader(settings)

    def engine_serves(self) -> bool:
        """The engine decodes jobs together on its own compute thread (our engine's batch scheduler)."""
        return self.engine.compute is not None and concurrent_jobs(self.engine) > 1

    def all_workers(self) -> list[Worker]:
        """The worker, and one more per extra replica of a cluster engine."""
        return getattr(self, "workers", None) or [self.worker]

    def running_jobs(self) -> list[Job]:
        return [job for worker in self.all_workers() if (job := worker.running_job()) is not None]

    def run(self) -> None:
        """Until a stop is requested. `continuo serve`: this (main) thread, the one that loaded the model, runs
        every torch call of the engine and the workers (the engine's compute thread, following a model switch),
        and the workers start once it serves. In process: just waiting (the callers compute themselves)."""
        if not self.compute_on_main_thread:
            self.stop_requested.wait()
            return
        while not self.stop_requested.is_set():
            compute = self.compute
            if compute is None:  # a cluster: the replicas compute
                self.start_workers()
                self.stop_requested.wait()
                break
            # returns once stopping (or switched to another engine) and nothing runs; the workers start once it
            # serves (before, their first torch call would run on their own thread)
            compute.serve(ServingStop(self, compute), on_ready=self.start_workers)
            del compute  # a switched-out engine must not be held here

    def may_take(self, worker: Worker) -> bool:
        """Whether worker may take a job now: fewer jobs run than the engine takes at once (a model switch can
        change that); the live worker only beside an engine that decodes jobs together."""
        jobs = concurrent_jobs(self.engine)
        if worker.live_only:
            return jobs > 1 and self.engine_serves()
        return sum(1 for other in self.workers if not other.live_only and other.running_job()) < jobs

    def between_jobs(self) -> None:
        """A worker's hook between jobs: a waiting model switch runs once no job runs (the queue is held)."""
        if self.switch.active and not self.running_jobs():
            self.switch.run_pending()

    def start_workers(self, workers: list[Worker] | None = None) -> None:
        for worker in self.workers if workers is None else workers:
            if worker.ident is None:
                worker.start()

    def request_stop(self) -> None:
        """Safe from a signal handler: it only sets events; the worker and run() notice them."""
        self.stop_requested.set()
        for worker in self.all_workers():
            worker.stopping.set()

    def shutdown(self) -> None:
        log.info("shutting down")
        if self.midi_port is not None:
            self.midi_port.close()
        # Keep the socket open until the worker is done, so the last events still reach their clients;
        # requests that arrive meanwhile are answered `busy` by the closed queue.
        for worker in self.all_workers():
            worker.stop()
        self.switch.abandon()
        for job in self.queue.drain():
            self.worker.fail(job, "interrupted", "the daemon stopped before this job started; send it again")
        for worker in self.all_workers():
            if worker.ident is not None:  # a started thread (not the main-thread loop)
                worker.join(self.settings.shutdown_timeout_s)
            if worker.is_alive():
                log.warning("the running job did not stop within %.0f s; leaving it", self.settings.shutdown_timeout_s)
        self.engine.close()  # a cluster engine leaves (or stops) its cluster
        self.transports.stop()
        self.events.stop()
        self.retention.stop()
        self.journal.close()
        log.info("stopped")

    def about(self) -> dict[str, Any]:
        """What the control room shows at the top and beside the presets (any thread; reads only)."""
        info = self.engine.info
        return {"version": __version__, "model": info.name, "device": info.device, "smoke_model": info.is_random,
                "model_sample_rate": info.sample_rate, "capabilities": sorted(c.value for c in info.capabilities),
                "session_sample_rate": self.settings.sample_rate, "session_bpm": self.settings.bpm,
                "midi_maps": [{"name": m.name, "description": m.description} for m in self.midi_maps.values()],
                "lora_adapters": self.adapter_names()}

    def adapter_names(self) -> list[str]:
        """The LoRA adapters in lora_dir, by name: what /continuo/models lists (and HTTP with it)."""
        return list(find_adapters(self.settings.resolved_lora_dir))

    def install_engine(self, engine: Engine, spec: str) -> None:
        """The switch's last step (worker thread, between jobs): the daemon and every worker serve engine."""
        self.engine, self.model_spec = engine, spec
        self.compute = self.compute_for(engine)
        for worker in self.all_workers():
            worker.engine, worker.compute = engine, self.compute

    def preset_dirs(self) -> list[Path]:
        dirs = [builtin_presets_dir()]
        user = self.settings.user_presets_dir.expanduser()
        if user.is_dir():
            dirs.append(user)
        return dirs

    def interrupt_unfinished(self) -> list[JobRecord]:
        """Jobs the last run left queued or running: interrupted, or (when the client asked for retries) kept."""
        retry = []
        for job_id in self.journal.unfinished():
            record = self.journal.get(job_id)
            if record is not None and int(record.params.get("retries", 0)) > 0:
                retry.append(record)
                continue
            self.journal.finish(
                job_id, JobStatus.INTERRUPTED, error_code="interrupted",
                error_message="the daemon stopped before this job finished; send it again with a new id")
            log.warning("job=%s interrupted by the last shutdown", job_id)
        return retry

    def requeue(self, records: list[JobRecord]) -> None:
        """Run interrupted jobs again that asked for retries (one retry used each time)."""
        for record in records:
            params = {**record.params, "retries": int(record.params["retries"]) - 1}
            self.journal.update_params(record.job_id, params)
            self.journal.set_status(record.job_id, JobStatus.QUEUED)
            job = Job(job_id=record.job_id, op=record.op, params=params, reply_to=record.reply_to,
                      client_key=record.reply_to, priority=Priority(params.get("priority", "interactive")))
            try:
                self.queue.put(job)
            except Busy as exc:
                self.worker.fail(job, "interrupted", f"not re-run after the restart: {exc.message}")
                continue
            log.warning("job=%s re-run after the last shutdown (%d retries left)", job.job_id, params["retries"])

    def start_midi(self) -> None:
        """Listen to the MIDI port settings.midi names, with the map settings.midi_map names."""
        self.midi_controller = self.build_midi_controller()
        self.midi_port = open_midi_input(self.settings.midi, self.midi_controller)
        log.info("midi: listening to %r with map %s; events to %s:%d", self.settings.midi, self.settings.midi_map,
                 *self.midi_controller.sender)

    def build_midi_controller(self) -> MidiController:
        """A controller whose jobs, tempo and cancels come here, as the client 127.0.0.1:<midi_reply_port>.

        Its events (queued, output, /continuo/slot, done) go to that port, and the MIDI clock sets that
        session's tempo. Its calls hold the receive lock, like every transport's messages.
        """
        sender = ("127.0.0.1", self.settings.midi_reply_port)
        return MidiController(
            pick_midi_map(self.midi_maps, self.settings.midi_map), sender=sender, submit=self.submit,
            set_tempo=lambda bpm: self.set_tempo(sender, bpm),
            cancel=lambda job_id: self.cancel(job_id, self.session(sender).reply_to, quiet=True),
            result_path=lambda job_id: mix_path(self.journal.get(job_id)), lock=self._receive_lock,
        )

    def set_tempo(self, sender: Destination, bpm: float) -> None:
        """The MIDI clock's tempo for sender's session (later jobs of that session use it)."""
        session = self.session(sender)
        session.context = session.context.replace(bpm=bpm)
        log.info("job=- midi clock tempo %.2f bpm for %s:%d", bpm, sender[0], sender[1])

    def on_superseded(self, old: Job, new: Job) -> None:
        self.worker.fail(old, "cancelled", f"replaced by the newer live job {new.job_id} for slot {new.slot}")

    # -- receiving --------------------------------------------------------------------------
    def on_message(self, address: str, args: list[Any], sender: Destination) -> None:
        """Every transport's entry: rate limit, then one message at a time through the handlers."""
        if not self.rate_limiter.allow(sender):
            session = self.sessions.get(sender)
            self.events.error(session.reply_to if session else self.default_reply_to(sender), "", "busy",
                              f"over {self.settings.max_messages_per_s:g} messages per second from this client; "
                              "slow down and send again")
            return
        with self._receive_lock:
            try:
                self.handle_message(address, args, sender)
            except Exception as exc:  # a handler bug: answer it, keep serving
                log.exception("job=- handling %s failed", address)
                session = self.sessions.get(sender)
                self.events.error(session.reply_to if session else self.default_reply_to(sender), "", "model_error",
                                  f"internal error handling {address}: {type(exc).__name__}: {exc}")

    def handle_message(self, address: str, args: list[Any], sender: Destination) -> None:
        session = self.sessions.get(sender)
        reply_to = session.reply_to if session else self.default_reply_to(sender)
        request = None
        try:
            request = self.schema.parse(address, args)
            reply_to = self.request_reply_to(request, sender) or reply_to
            handler = self.handlers.get(request.op)
            if handler is None:
                raise BadRequest(NOT_BUILT_OPS.get(request.op, f"{address} is not handled"), job_id=request.job_id)
            handler(request, sender)
        except BridgeError as exc:
            if not exc.job_id and request is not None:
                exc.job_id = request.job_id
            log.info("job=%s rejected %s %s: %s", exc.job_id or "-", address, exc.code, exc.message)
            self.events.error(reply_to, exc.job_id, exc.code, exc.message)

    def session(self, sender: Destination) -> ClientSession:
        session = self.sessions.get(sender)
        if session is None:
            if len(self.sessions) >= MAX_SESSIONS:
                self.forget_least_recent_session()
            context = MusicalContext(bpm=self.settings.bpm, sample_rate=self.settings.sample_rate)
            session = self.sessions[sender] = ClientSession(name="", reply_to=self.default_reply_to(sender),
                                                            context=context)
        session.last_seen = time.monotonic()
        return session

    def default_reply_to(self, sender: Destination) -> Destination:
        """Where a sender that never said hello is answered: its source port, or (UDP, with the
        default_reply_port setting) that port on its host, for hosts that listen on a fixed port."""
        port = self.settings.default_reply_port
        return sender if is_peer(sender) or not port else (sender[0], port)

    @staticmethod
    def request_reply_to(request: Request, sender: Destination) -> Destination | None:
        """A job request's own reply port (the reply_port setting) on the sender's host, for senders whose
        source port changes with every message; None without one, or for TCP and ZeroMQ (their connection)."""
        port = request.settings.get("reply_port")
        return None if not port or is_peer(sender) else (sender[0], port)

    def forget_least_recent_session(self) -> None:
        sender, session = min(self.sessions.items(), key=lambda item: item[1].last_seen)
        del self.sessions[sender]
        log.info("job=- forgot client %s (%s), silent for %.0f s: over %d clients", session.name or "-", sender,
                 time.monotonic() - session.last_seen, MAX_SESSIONS)

    def active_job_ids(self) -> set[str]:
        return {job.job_id for job in self.queue.waiting()} | {job.job_id for job in self.running_jobs()}

    def inputs_in_use(self) -> set[Path]:
        """The input files queued and running jobs read: retention leaves those inbox copies alone."""
        jobs = [*self.queue.waiting(), *self.running_jobs()] if hasattr(self, "queue") else []
        return {Path(path) for job in jobs for path in (job.params.get("input_path"),
                                                        job.params.get("settings", {}).get("melody")) if path}

    # -- handlers ---------------------------------------------------------------------------
    def on_hello(self, request: Request, sender: Destination) -> None:
        session = self.session(sender)
        session.name = request.args["client"]
        port = request.args["reply_port"] or sender[1]
        session.reply_to = sender if is_peer(sender) else (sender[0], port)  # TCP/ZeroMQ: on the connection
        info = self.engine.info
        log.info("client %s at %s:%d replies to port %d", session.name, sender[0], sender[1], port)
        self.events.emit(session.reply_to, "/continuo/welcome", __version__, info.name,
                         session.context.sample_rate, info.device, self.inbox.as_posix())

    def on_ping(self, request: Request, sender: Destination) -> None:
        self.events.emit(self.session(sender).reply_to, "/continuo/pong", request.args["seq"])

    def on_context(self, request: Request, sender: Destination) -> None:
        session = self.session(sender)
        session.context = session.context.replace(**request.args)
        c = session.context
        self.events.emit(session.reply_to, "/continuo/context", c.bpm, c.beats_per_bar, c.beat_unit, c.key,
                         c.sample_rate)

    def on_job(self, request: Request, sender: Destination) -> None:
        settings = dict(request.settings)
        priority = Priority(settings.pop("priority", Priority.INTERACTIVE.value))
        slot = settings.pop("slot", None)
        retries = settings.pop("retries", 0)
        settings.pop("reply_port", None)
        self.submit(request.op, request.job_id, request.args, settings, sender, priority=priority, slot=slot,
                    retries=retries, reply_to=self.request_reply_to(request, sender))

    def submit(self, op: str, job_id: str, args: Mapping[str, Any], settings: Mapping[str, Any], sender: Destination,
               *, priority: Priority = Priority.INTERACTIVE, slot: int | None = None, retries: int = 0,
               reply_to: Destination | None = None) -> None:
        """Admit, journal, enqueue and announce one job; every transport and MIDI come through here.

        The job's events go to reply_to when given (a request's reply_port), else to the session's reply port.
        """
        session = self.session(sender)
        reply_to = reply_to or session.reply_to
        existing = find_job(self.journal, self.output_root, job_id)
        if existing is not None:  # a resend is told where its job is; another request gets id_conflict
            check_resend(existing, op, args, settings, session.context)
            self.report_existing(existing, reply_to)
            return
        admitted = admit(op, job_id, args, settings, context=session.context, presets=self.presets,
                         input_roots=self.input_roots, limits=self.settings,
                         model=None if self.switch.active else self.engine.info,  # a switch: checked at the start
                         queue=self.queue, priority=priority, slot=slot, retries=retries)
        job = Job(job_id=job_id, op=op, params=admitted.params, reply_to=reply_to, client_key=sender,
                  priority=priority, slot=slot)
        self.journal.insert_job(job.job_id, job.op, job.params, job.reply_to)
        position = self.queue.put(job)
        session.jobs.add(job.job_id)
        if len(session.jobs) > MAX_SESSION_JOBS:
            session.jobs &= self.active_job_ids()
        self.events.queued(job.reply_to, job.job_id, position, self.eta_s(position))
        log.info("job=%s queued op=%s preset=%s bars=%g position=%d priority=%s", job.job_id, job.op,
                 admitted.plan.preset.name, admitted.plan.bars, position, priority.value)

    def eta_s(self, position: int) -> float:
        waiting = self.queue.waiting()[: max(position, 0)]
        seconds = sum(MusicalContext(**job.params["context"]).seconds_for_bars(job.params["bars"]) for job in waiting)
        for running in self.running_jobs():
            seconds += MusicalContext(**running.params["context"]).seconds_for_bars(running.params["bars"]) / 2
        return seconds * self.worker.seconds_per_audio_s / concurrent_jobs(self.engine)

    def report_existing(self, record: JobRecord, reply_to: Destination) -> None:
        """A resent job id never renders twice: report where the first one is (or where its files went)."""
        if record.status.terminal:
            self.journal.mark_used(record.job_id)  # fetched: a prune leaves it alone for a while
            gone = files_gone(record, self.output_root)
            if gone is not None:
                self.events.error(reply_to, record.job_id, "not_found", gone, replay=True)
                return
            self.events.replay(reply_to, record)
            return
        waiting = [job.job_id for job in self.queue.waiting()]
        position = waiting.index(record.job_id) + 1 if record.job_id in waiting else 0
        self.events.queued(reply_to, record.job_id, position, self.eta_s(position))

    def on_cancel(self, request: Request, sender: Destination) -> None:
        session = self.session(sender)
        everything = request.args["job_id"] == "*"
        targets = sorted(session.jobs) if everything else [request.job_id]
        for job_id in targets:
            self.cancel(job_id, session.reply_to, quiet=everything)

    def cancel(self, job_id: str, reply_to: Destination, *, quiet: bool) -> None:
        if self.switch.cancel(job_id):  # a model switch job that has not started
            return
        job = self.queue.remove(job_id)
        if job is not None:
            job.cancel()
            self.worker.fail(job, "cancelled", "cancelled before it started")
            return
        running = next((job for job in self.running_jobs() if job.job_id == job_id), None)
        if running is not None:
            running.cancel()  # the worker reports `cancelled` after the current step
            return
        if not quiet:
            record = self.journal.get(job_id)
            if record is None:
                raise BadRequest(f"no job {job_id!r} to cancel", job_id=job_id)
            self.events.replay(reply_to, record)

    def on_get(self, request: Request, sender: Destination) -> None:
        reply_to = self.session(sender).reply_to
        record = find_job(self.journal, self.output_root, request.job_id)
        if record is None:
            raise NotFound(f"no job {request.job_id!r} in the journal or under {self.output_root}",
                           job_id=request.job_id)
        self.report_existing(record, reply_to)

    def on_ack(self, request: Request, sender: Destination) -> None:
        """The client has the terminal events: stop re-sending them. No reply."""
        if self.events.ack(request.job_id):
            log.info("job=%s acknowledged", request.job_id)

    def on_status(self, request: Request, sender: Destination) -> None:
        self.send_status(self.session(sender).reply_to)

    def send_status(self, reply_to: Destination) -> None:
        used_gb, total_gb = memory_gb()
        state = "loading" if self.switch.active else "busy" if self.running_jobs() else "idle"
        self.events.emit(reply_to, "/continuo/status", state, self.engine.info.name,
                         used_gb, total_gb, len(self.queue))
        s = self.settings
        self.events.emit(reply_to, "/continuo/limits", s.max_queue, float(s.max_bars), s.max_variations,
                         s.max_input_bytes, float(s.max_input_s), float(s.max_messages_per_s),
                         float(self.worker.seconds_per_audio_s))
        self.send_storage(reply_to)

    def send_storage(self, reply_to: Destination) -> None:
        send_storage(self.events, reply_to, self.retention.space, output_root=self.output_root,
                     auto_trash_days=self.settings.auto_trash_days)

    def on_prune(self, request: Request, sender: Destination) -> None:
        """/continuo/prune: select finished jobs and (apply 1) move them to the trash (bridge/jobs/trash.py)."""
        a = request.args
        rules = Rules(older_than_days=a["older_than_days"], keep_newest=a["keep_newest"],
                      max_total_gb=a["max_total_gb"], keep_used_days=a["keep_used_days"])
        self.answer_trash(sender, self.retention.trash.prune(rules, apply=bool(a["apply"]),
                                                             active=self.active_job_ids()))

    def on_trash_restore(self, request: Request, sender: Destination) -> None:
        self.answer_trash(sender, self.retention.trash.restore(request.args["job_id"]))

    def on_trash_empty(self, request: Request, sender: Destination) -> None:
        self.answer_trash(sender, self.retention.trash.empty(apply=bool(request.args["apply"])))

    def answer_trash(self, sender: Destination, report: Report) -> None:
        reply_to = self.session(sender).reply_to
        send_report(self.events, reply_to, report)
        self.retention.measure()
        self.send_storage(reply_to)

    def on_presets(self, request: Request, sender: Destination) -> None:
        reply_to = self.session(sender).reply_to
        for name in sorted(self.presets):
            self.events.emit(reply_to, "/continuo/presets", name, self.presets[name].description)

    def on_reload_presets(self, request: Request, sender: Destination) -> None:
        """Read the preset folders again; on any problem keep the old presets and report each one."""
        reply_to = self.session(sender).reply_to
        try:
            presets = load_presets(self.preset_dirs())
            self.midi_maps = load_midi_maps(midi_map_dirs(self.preset_dirs()), list(presets))
        except PresetError as exc:
            log.warning("preset reload refused, keeping the old presets: %s", exc)
            for problem in exc.problems:
                self.events.error(reply_to, "", "bad_request", f"presets not reloaded: {problem}")
            return
        self.presets = presets
        if self.midi_controller is not None and self.settings.midi_map in self.midi_maps:
            self.midi_controller.map = self.midi_maps[self.settings.midi_map]
        log.info("presets reloaded: %s", ", ".join(sorted(presets)))
        self.on_presets(request, sender)

    def on_models(self, request: Request, sender: Destination) -> None:
        self.send_models(self.session(sender).reply_to)

    def send_models(self, reply_to: Destination) -> None:
        """The served model (family, capabilities), then one /continuo/adapters event per LoRA adapter."""
        info = self.engine.info
        adapters = self.adapter_names()
        self.events.emit(reply_to, "/continuo/models", info.name, info.source_kind, info.sample_rate, info.channels,
                         info.family, ",".join(sorted(c.value for c in info.capabilities)), len(adapters))
        for name in adapters:
            self.events.emit(reply_to, "/continuo/adapters", name)

    def answer_model(self, reply_to: Destination, models: bool) -> None:
        """A switch's answers: the status (and limits), and once it is done the models listing."""
        self.send_status(reply_to)
        if models:
            self.send_models(reply_to)

    def on_load_model(self, request: Request, sender: Destination) -> None:
        """/continuo/model/load NAME [JOB_ID]: switch the served model between jobs (bridge/jobs/model_switch.py)."""
        reply_to = self.session(sender).reply_to
        name, job_id = request.args["name"].strip(), request.args["job_id"] or ""
        existing = find_job(self.journal, self.output_root, job_id) if job_id else None
        if existing is not None:
            check_same_model(existing, name)
            self.report_existing(existing, reply_to)
            return
        if self.settings.cluster:
            raise BadRequest("switching models is not built for a cluster engine (--cluster: each replica keeps "
                             f"its models, cluster_models_per_replica); restart with --model {name}", job_id=job_id)
        served = not isinstance(self.engine, UnloadedEngine) and name in (self.model_spec, self.engine.info.name)
        if served and not self.switch.active:
            log.info("job=%s model %s is already served", job_id or "-", name)
            if job_id:
                self.journal.insert_job(job_id, "load_model", {"model": name}, reply_to)
                self.journal.finish(job_id, JobStatus.DONE, seed=0, elapsed_s=0.0)
                self.events.done(reply_to, job_id, 0, 0, 0.0)
            self.answer_model(reply_to, True)
            return
        self.switch.request(name, reply_to, job_id)


def load_model(settings: Settings) -> Engine:
    if settings.cluster:  # the engine as Ray Serve replicas; Ray is imported only here
        from bridge.cluster.connection import connect_engine

        return connect_engine(settings)
    if settings.cpu_threads:
        import torch

        torch.set_num_threads(settings.cpu_threads)
    source = resolve_model(settings.model, tiny_dir=settings.smoke_model_dir.expanduser(),
                           allow_tiny_fallback=settings.allow_smoke_model)
    return load_engine(source, device=settings.device, backend=settings.backend, weights=settings.weights,
                       kv_cache=settings.kv_cache, attention=settings.attention, compile=settings.compile_decode,
                       max_batch=settings.max_batch, memory_budget_gb=settings.memory_budget_gb)


class ServingStop:
    """The stop of one compute thread's loop: the daemon stops, or a model switch installed another."""

    def __init__(self, daemon: Daemon, compute: Compute) -> None:
        self.daemon, self.compute = daemon, compute

    def is_set(self) -> bool:
        return self.daemon.stop_requested.is_set() or self.daemon.compute is not self.compute


def concurrent_jobs(engine: Engine) -> int:
    """Jobs the engine runs at once: our engine's max_batch (1 when compiled); a cluster engine's replicas;
    1 for the others."""
    return max(1, int(engine.concurrent_jobs))


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
        daemon.request_stop()

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(settings: Settings, *,
          engine_loader: Callable[[Settings], Engine] | None = None) -> int:
    """startup -> run -> shutdown, stopped by SIGINT/SIGTERM; engine_loader swaps the model (benchmarks)."""
    daemon = Daemon(settings, engine_loader=engine_loader, compute_on_main_thread=True)
    with stop_on_signals(daemon):
        daemon.startup()
        try:
            daemon.run()
        finally:
            daemon.shutdown()
    return 0
