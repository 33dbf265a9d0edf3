"""The daemon: startup -> run -> shutdown, and the request handlers.

The composition root: `Daemon.startup` builds the journal, presets, the engine, the queue, the worker pool
(bridge/jobs/pool.py: the threads that run jobs, and the compute thread `continuo serve` gives the main thread),
the jams (bridge/jobs/jams.py: /continuo/jam/..., their torch work on the same compute thread) and the transports,
then prints the ready line. Every transport and MIDI enter through `Daemon.on_message` (rate
limit, then one message at a time under the receive lock: handlers only validate and enqueue, so they return
quickly; a handler bug is answered `model_error` and the daemon keeps serving). Client sessions are
bridge/sessions.py's, restart recovery bridge/jobs/recovery.py's. Signals only set events
(`Daemon.request_stop`); `shutdown` lets the running jobs stop at their next step, fails the waiting ones
`interrupted`, then closes the transports, events, retention and journal.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.audio.presets import Preset, PresetError, load_presets, preset_dirs
from bridge.audio.stems import LazySeparator, separator_config
from bridge.errors import BadRequest, BridgeError
from bridge.jobs.events import EventSink
from bridge.jobs.intake import Intake
from bridge.jobs.jams import Jams
from bridge.jobs.job_ids import check_same_model
from bridge.jobs.journal import Journal, JournalReads
from bridge.jobs.listening import Listening
from bridge.jobs.model_switch import ModelSwitch
from bridge.jobs.pool import WorkerPool, load_local_engine
from bridge.jobs.queue import Job, JobQueue, Priority
from bridge.jobs.recovery import interrupt_unfinished, requeue
from bridge.jobs.retention import RetentionTimer, remove_partials
from bridge.jobs.status import Status
from bridge.jobs.style_training import submit_style
from bridge.jobs.trash import send_report
from bridge.jobs.worker import RENDERERS, Worker
from bridge.midi import MidiController, MidiMap, load_midi_maps, midi_map_dirs, mix_path, open_midi_input, pick_midi_map
from bridge.protocol.destinations import Destination
from bridge.protocol.schema import Request, Schema, load_schema
from bridge.sessions import Sessions
from bridge.settings import Settings
from bridge.transports.hub import Transports
from bridge.transports.limits import RateLimiter
from inference.api import Engine
from inference.loading import quiet_third_party
from inference.runtime.memory import freeze_heap

log = logging.getLogger("continuo.daemon")

NOT_BUILT_OPS: dict[str, str] = {}  # op -> why it is refused: requests the schema has and this daemon does not build


class Daemon:
    def __init__(self, settings: Settings, *, engine_loader: Callable[[Settings], Engine] | None = None,
                 compute_on_main_thread: bool = False):
        self.settings = settings
        # True for `continuo serve`: the main thread, the one that loaded the model, runs the engine's compute
        # thread (bridge/jobs/pool.py). In-process users (tests) keep every thread their own so startup() returns.
        self.compute_on_main_thread = compute_on_main_thread
        self.schema: Schema = load_schema()
        self.stop_requested = threading.Event()
        self.sessions = Sessions(settings)
        self._engine_loader = engine_loader or load_model
        self._receive_lock = threading.RLock()  # UDP, TCP and ZeroMQ threads and MIDI take turns in the handlers
        # a job op is one the worker renders (its op table); the others are answered here
        self.handlers: dict[str, Callable[[Request, Destination], None]] = {op: self.on_job for op in RENDERERS}
        self.handlers.update(
            hello=self.on_hello, ping=self.on_ping, context=self.on_context, cancel=self.on_cancel, get=self.on_get,
            ack=self.on_ack, status=self.on_status, presets=self.on_presets, reload_presets=self.on_reload_presets,
            models=self.on_models, load_model=self.on_load_model,
            prune=self.on_trash, trash_restore=self.on_trash, trash_empty=self.on_trash, analyze=self.on_analyze,
            train_style=self.on_train_style, jam_start=self.on_jam_start, jam_control=self.on_jam,
            jam_stop=self.on_jam, jam_bank=self.on_jam, jam_transport=self.on_jam_transport)
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
        retry = interrupt_unfinished(self.journal)
        remove_partials(self.output_root)
        # Inline ZeroMQ inputs land here, and /continuo/welcome names it for clients that copy inputs in.
        self.inbox = inbox = next((r for r in self.input_roots if r.name == "inbox"),
                                  self.input_roots[0] / ".zmq-inbox")
        self.retention = RetentionTimer(self.journal, self.output_root, settings, inbox=inbox,
                                        in_use=self.inputs_in_use)
        self.retention.prune()
        self.presets, self.midi_maps = self.load_presets()
        log.info("presets loaded: %s", ", ".join(sorted(self.presets)))
        engine = self._engine_loader(settings)
        self.queue = JobQueue(settings.max_queue, on_superseded=self.on_superseded)
        self.transports = Transports(settings, self.on_message, inbox=inbox, jobs=JournalReads(self.journal),
                                     about=lambda: self.status.about(self.midi_maps))
        self.events = EventSink(self.schema, self.transports.send, resends=settings.ack_resends,
                                resend_interval_s=settings.ack_interval_s)
        self.rate_limiter = RateLimiter(settings.max_messages_per_s)
        self.switch = ModelSwitch(settings=settings, queue=self.queue, journal=self.journal, events=self.events,
                                  answer=lambda reply_to, models: self.status.answer_switch(reply_to, models))
        # One separator for every worker: separations run one at a time on the compute thread anyway, and one each
        # grew the soak's RSS by a model at each worker's first stems job (docs/benchmarks.md, "Soak").
        separator = LazySeparator(separator_config(settings.stems_weights, settings.stems_model_size,
                                                   settings.device))
        self.pool = WorkerPool(engine, settings.model, loader=self._engine_loader, queue=self.queue,
                               switch=self.switch, worker=partial(
                                   Worker, queue=self.queue, journal=self.journal, events=self.events,
                                   presets=lambda: self.presets, input_roots=self.input_roots,
                                   output_root=self.output_root, separator=separator))
        del engine  # the pool holds the served engine (a switch replaces it there)
        self.listening = Listening(events=self.events, input_roots=self.input_roots, limits=settings)
        self.intake = Intake(settings=settings, journal=self.journal, events=self.events, queue=self.queue,
                             pool=self.pool, switch=self.switch, presets=lambda: self.presets,
                             input_roots=self.input_roots, output_root=self.output_root, listening=self.listening)
        self.jams = Jams(settings=settings, events=self.events, engine=lambda: self.engine,
                         presets=lambda: self.presets, output_root=self.output_root, journal=self.journal,
                         speed=self.pool.real_time.measured)
        self.status = Status(settings=settings, events=self.events, pool=self.pool, switch=self.switch,
                             retention=self.retention, stems_unavailable=separator.unavailable)
        if not self.compute_on_main_thread:
            self.pool.start()  # `continuo serve` starts them in run(), beside the engine's compute loop
        if settings.stems_prepare_at_start:
            separator.start_background_preparation()  # a stems job meanwhile waits for it
        if settings.midi:
            self.start_midi()
        requeue(retry, self.journal, self.queue, self.pool.fail)
        self.retention.start()
        if self.compute_on_main_thread:
            # before the ready line: its full collection stops every thread for 0.3-0.5 s, and a client that
            # bursts on "ready" lost 9,918 of 20,000 datagrams to it at the daemon's socket
            freeze_heap()
        self.transports.start()
        info, trash_days = self.engine.info, settings.auto_trash_days
        print(f"continuo endpoints: {self.transports.ready_text()} output_root={self.output_root} renders=kept "
              f"auto_trash={f'{trash_days:g}d' if trash_days else 'off'}", flush=True)
        print(ready_line(time.monotonic() - started, self.transports.page_url, self.transports.udp.address,
                         f"{info.name} on {info.device}"), flush=True)

    @property
    def engine(self) -> Engine:
        """The served engine (the pool's: a model switch replaces it there)."""
        return self.pool.engine

    def run(self) -> None:
        """Until a stop is requested. `continuo serve`: this (main) thread serves the engine's compute thread
        (bridge/jobs/pool.py:WorkerPool.serve). In process: just waiting (the callers compute themselves)."""
        if self.compute_on_main_thread:
            self.pool.serve(self.stop_requested)
        else:
            self.stop_requested.wait()

    def request_stop(self) -> None:
        """Safe from a signal handler: it only sets events; the workers and run() notice them."""
        self.stop_requested.set()
        if hasattr(self, "pool"):  # a signal during startup
            self.pool.request_stop()

    def shutdown(self) -> None:
        log.info("shutting down")
        if self.midi_port is not None:
            self.midi_port.close()
        if hasattr(self, "jams"):
            self.jams.close()  # every jam stops now and writes its take
        # The transports stay open until the workers are done, so the last events still reach their clients;
        # requests that arrive meanwhile are answered `busy` by the closed queue.
        self.pool.stop(self.settings.shutdown_timeout_s)
        self.engine.close()  # a cluster engine leaves (or stops) its cluster
        self.transports.stop()
        self.events.stop()
        self.retention.stop()
        self.journal.close()
        log.info("stopped")

    def load_presets(self) -> tuple[dict[str, Preset], dict[str, MidiMap]]:
        """The preset folders' presets and MIDI maps (bridge/midi.py); one PresetError lists every problem."""
        dirs = preset_dirs(self.settings.user_presets_dir)
        presets = load_presets(dirs)
        return presets, load_midi_maps(midi_map_dirs(dirs), list(presets))

    def inputs_in_use(self) -> set[Path]:
        """What retention must leave in the inbox: the inputs of queued and running jobs (none before the pool)."""
        return self.pool.inputs_in_use() if hasattr(self, "pool") else set()

    def start_midi(self) -> None:
        """Listen to the MIDI port settings.midi names, with the map settings.midi_map names."""
        self.midi_controller = self.build_midi_controller()
        self.midi_port = open_midi_input(self.settings.midi, MidiFeed(self.midi_controller, self.jams.feed_midi))
        log.info("midi: listening to %r with map %s; events to %s:%d", self.settings.midi, self.settings.midi_map,
                 *self.midi_controller.sender)

    def build_midi_controller(self) -> MidiController:
        """A controller whose jobs, tempo and cancels come here, as the client 127.0.0.1:<midi_reply_port>: its
        events (queued, output, /continuo/slot, done) go to that port, and the MIDI clock sets that session's
        tempo. It knows no daemon (bridge/midi.py): its calls hold the receive lock, like every transport's."""
        sender = ("127.0.0.1", self.settings.midi_reply_port)
        return MidiController(
            pick_midi_map(self.midi_maps, self.settings.midi_map), sender=sender, submit=self.submit,
            set_tempo=partial(self.sessions.set_tempo, sender), lock=self._receive_lock,
            cancel=lambda job_id: self.intake.cancel(job_id, self.sessions.session(sender).reply_to, quiet=True),
            result_path=lambda job_id: mix_path(self.journal.get(job_id)),
        )

    def on_superseded(self, old: Job, new: Job) -> None:
        self.pool.fail(old, "cancelled", f"replaced by the newer live job {new.job_id} for slot {new.slot}")

    # -- receiving --------------------------------------------------------------------------
    def on_message(self, address: str, args: list[Any], sender: Destination) -> None:
        """Every transport's entry: rate limit, then one message at a time through the handlers."""
        if not self.rate_limiter.allow(sender):
            self.events.error(self.sessions.reply_to(sender), "", "busy",
                              f"over {self.settings.max_messages_per_s:g} messages per second from this client; "
                              "slow down and send again")
            return
        with self._receive_lock:
            try:
                self.handle_message(address, args, sender)
            except Exception as exc:  # a handler bug: answer it, keep serving
                log.exception("job=- handling %s failed", address)
                self.events.error(self.sessions.reply_to(sender), "", "model_error",
                                  f"internal error handling {address}: {type(exc).__name__}: {exc}")

    def handle_message(self, address: str, args: list[Any], sender: Destination) -> None:
        reply_to = self.sessions.reply_to(sender)
        request = None
        try:
            request = self.schema.parse(address, args, limits=self.settings.request_limits)
            reply_to = self.sessions.request_reply_to(request, sender) or reply_to
            handler = self.handlers.get(request.op)
            if handler is None:
                raise BadRequest(NOT_BUILT_OPS.get(request.op, f"{address} is not handled"), job_id=request.job_id)
            handler(request, sender)
        except BridgeError as exc:
            if not exc.job_id and request is not None:
                exc.job_id = request.job_id
            log.info("job=%s rejected %s %s: %s", exc.job_id or "-", address, exc.code, exc.message)
            self.events.error(reply_to, exc.job_id, exc.code, exc.message)

    # -- handlers: the session ------------------------------------------------------------------
    def on_hello(self, request: Request, sender: Destination) -> None:
        session = self.sessions.hello(sender, request.args["client"], request.args["reply_port"])
        info = self.engine.info
        self.events.emit(session.reply_to, "/continuo/welcome", __version__, info.name,
                         session.context.sample_rate, info.device, self.inbox.as_posix())

    def on_ping(self, request: Request, sender: Destination) -> None:
        self.events.emit(self.sessions.session(sender).reply_to, "/continuo/pong", request.args["seq"])

    def on_context(self, request: Request, sender: Destination) -> None:
        session = self.sessions.session(sender)
        session.context = c = session.context.replace(**request.args)
        session.tempo_set = session.tempo_set or "bpm" in request.args
        self.events.emit(session.reply_to, "/continuo/context", c.bpm, c.beats_per_bar, c.beat_unit, c.key,
                         c.sample_rate)

    # -- handlers: jobs -------------------------------------------------------------------------
    def on_job(self, request: Request, sender: Destination) -> None:
        settings = dict(request.settings)
        priority = Priority(settings.pop("priority", Priority.INTERACTIVE.value))
        slot, retries = settings.pop("slot", None), settings.pop("retries", 0)
        settings.pop("reply_port", None)
        self.submit(request.op, request.job_id, request.args, settings, sender, priority=priority, slot=slot,
                    retries=retries, reply_to=self.sessions.request_reply_to(request, sender))

    def submit(self, op: str, job_id: str, args: Mapping[str, Any], settings: Mapping[str, Any], sender: Destination,
               *, priority: Priority = Priority.INTERACTIVE, slot: int | None = None, retries: int = 0,
               reply_to: Destination | None = None) -> None:
        """One job request, from every transport and MIDI (bridge/jobs/intake.py): in sender's session, its events
        to reply_to when given (a request's reply_port), else to the session's reply port."""
        session = self.sessions.session(sender)
        job = self.intake.submit(op, job_id, args, settings, context=session.context, client_key=sender,
                                 reply_to=reply_to or session.reply_to, priority=priority, slot=slot, retries=retries,
                                 tempo_given=session.tempo_set)
        if job is not None:
            session.add_job(job.job_id, self.pool.active_job_ids)

    def on_train_style(self, request: Request, sender: Destination) -> None:
        """/continuo/train_style: a style adapter trained at batch priority (bridge/jobs/style_training.py)."""
        session = self.sessions.session(sender)
        job = submit_style(self.intake, request.job_id, request.args, reply_to=session.reply_to, client_key=sender,
                           settings=self.settings, model_spec=self.pool.spec, device=self.engine.info.device,
                           on_replica=bool(self.settings.cluster))
        if job is not None:
            session.add_job(job.job_id, self.pool.active_job_ids)

    def on_cancel(self, request: Request, sender: Destination) -> None:
        session = self.sessions.session(sender)
        everything = request.args["job_id"] == "*"
        for job_id in sorted(session.jobs) if everything else [request.job_id]:
            self.intake.cancel(job_id, session.reply_to, quiet=everything)

    def on_get(self, request: Request, sender: Destination) -> None:
        self.intake.get(request.job_id, self.sessions.session(sender).reply_to)

    def on_ack(self, request: Request, sender: Destination) -> None:
        """The client has the terminal events: stop re-sending them. No reply."""
        if self.events.ack(request.job_id):
            log.info("job=%s acknowledged", request.job_id)

    # -- handlers: jams (bridge/jobs/jams.py) ----------------------------------------------------------
    def on_jam_start(self, request: Request, sender: Destination) -> None:
        session = self.sessions.session(sender)
        self.jams.start(request.job_id, request.args["prompt"], request.settings,
                        self.sessions.request_reply_to(request, sender) or session.reply_to, session.context)

    def on_jam(self, request: Request, sender: Destination) -> None:
        """/continuo/jam/control, stop and bank: answered by /continuo/jam/scheduled (the bar it lands on)."""
        reply_to, args = self.sessions.session(sender).reply_to, request.args
        if request.op == "jam_control":
            self.jams.control(request.job_id, args["name"], args["value"] or "", reply_to)
        elif request.op == "jam_stop":
            self.jams.stop(request.job_id, reply_to)
        else:
            self.jams.bank(request.job_id, args["action"], args["slot"], reply_to)

    def on_jam_transport(self, request: Request, sender: Destination) -> None:
        args = request.args
        self.jams.transport(args["bpm"], args["beat"], bool(args["playing"]), args["beats_per_bar"], time.monotonic())

    # -- handlers: the daemon's state ---------------------------------------------------------
    def on_status(self, request: Request, sender: Destination) -> None:
        """/continuo/status, limits and storage, then /continuo/session: this client's context and the page's URL."""
        session = self.sessions.session(sender)
        self.status.send(session.reply_to)
        c = session.context
        self.events.emit(session.reply_to, "/continuo/session", c.bpm, c.beats_per_bar, c.beat_unit, c.key,
                         c.sample_rate, self.transports.page_url)

    def on_analyze(self, request: Request, sender: Destination) -> None:
        """/continuo/analyze: what is heard in the file (bridge/jobs/listening.py), on this thread."""
        self.listening.answer(request.args["input_path"], self.sessions.session(sender).reply_to)

    def on_trash(self, request: Request, sender: Destination) -> None:
        """/continuo/prune, /continuo/trash/restore and /continuo/trash/empty (bridge/jobs/trash.py): the report,
        then the space the renders take now."""
        reply_to = self.sessions.session(sender).reply_to
        report = self.retention.trash.answer(request.op, request.args, active=self.pool.active_job_ids)
        send_report(self.events, reply_to, report)
        self.retention.measure()
        self.status.send_storage(reply_to)

    def on_presets(self, request: Request, sender: Destination) -> None:
        reply_to = self.sessions.session(sender).reply_to
        for name in sorted(self.presets):
            self.events.emit(reply_to, "/continuo/presets", name, self.presets[name].description)

    def on_reload_presets(self, request: Request, sender: Destination) -> None:
        """Read the preset folders again; on any problem keep the old presets and report each one."""
        reply_to = self.sessions.session(sender).reply_to
        try:
            presets, midi_maps = self.load_presets()
        except PresetError as exc:
            log.warning("preset reload refused, keeping the old presets: %s", exc)
            for problem in exc.problems:
                self.events.error(reply_to, "", "bad_request", f"presets not reloaded: {problem}")
            return
        self.presets, self.midi_maps = presets, midi_maps
        if self.midi_controller is not None and self.settings.midi_map in self.midi_maps:
            self.midi_controller.map = self.midi_maps[self.settings.midi_map]
        log.info("presets reloaded: %s", ", ".join(sorted(presets)))
        self.on_presets(request, sender)

    # -- handlers: the model --------------------------------------------------------------------
    def on_models(self, request: Request, sender: Destination) -> None:
        self.status.send_models(self.sessions.session(sender).reply_to)

    def on_load_model(self, request: Request, sender: Destination) -> None:
        """/continuo/model/load NAME [JOB_ID]: switch the served model between jobs (bridge/jobs/model_switch.py)."""
        reply_to = self.sessions.session(sender).reply_to
        name, job_id = request.args["name"].strip(), request.args["job_id"] or ""
        existing = self.intake.find(job_id) if job_id else None
        if existing is not None:
            check_same_model(existing, name)
            self.intake.report(existing, reply_to)
            return
        self.switch.request(name, reply_to, job_id, self.pool)


class MidiFeed:
    """The daemon's MIDI input: every message to the controller (keys, knobs, its clock), then to the jams' clock."""

    def __init__(self, controller: MidiController, jams: Callable[..., None]) -> None:
        self.controller, self.jams = controller, jams

    def feed(self, message: Any, now_s: float | None = None) -> None:
        now_s = time.monotonic() if now_s is None else now_s
        self.controller.feed(message, now_s)
        self.jams(message, now_s)


def load_model(settings: Settings) -> Engine:
    """The engine settings name: as Ray Serve replicas with --cluster (Ray is imported only then), else here."""
    if settings.cluster:
        from bridge.cluster.connection import connect_engine

        return connect_engine(settings)
    return load_local_engine(settings)


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGBREAK")  # Ctrl+C; kill and service managers; Ctrl+Break (Windows)


@contextmanager
def stop_on_signals(daemon: Daemon) -> Iterator[None]:
    """SIGINT (Ctrl+C), SIGTERM and, on Windows, SIGBREAK (Ctrl+Break, what DaemonProcess.stop sends there: Windows
    has no way to send another process SIGTERM but killing it) ask the daemon to stop; whichever of them this
    platform has. The previous handlers come back afterwards."""
    found = (getattr(signal, name, None) for name in STOP_SIGNALS)
    previous = {sig: signal.getsignal(sig) for sig in found if sig is not None}

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


def ready_line(startup_s: float, page_url: str, osc: tuple[str, int], model: str) -> str:
    """What a musician reads when the daemon is up, the page first: 'continuo ready in 7.0 s: open
    http://127.0.0.1:9080/, OSC on udp://127.0.0.1:9000, model ... on cpu'. Every endpoint and
    the output root are on the line before it ('continuo endpoints: osc=udp://… http=… output_root=…', which
    bridge/clients/process.py reads)."""
    page = f"open {page_url}, " if page_url else ""
    return f"continuo ready in {startup_s:.1f} s: {page}OSC on udp://{osc[0]}:{osc[1]}, model {model}"


def serve(settings: Settings, *, engine_loader: Callable[[Settings], Engine] | None = None) -> int:
    """startup -> run -> shutdown, stopped by stop_on_signals; engine_loader swaps the model (benchmarks)."""
    quiet_third_party()  # a start log of ours alone (no transformers pad-token warnings, no loading bars)
    daemon = Daemon(settings, engine_loader=engine_loader, compute_on_main_thread=True)
    with stop_on_signals(daemon):
        daemon.startup()
        try:
            daemon.run()
        finally:
            daemon.shutdown()
    return 0
