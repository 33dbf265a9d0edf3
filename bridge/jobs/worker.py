"""A worker thread: takes jobs off the queue and runs each (the daemon runs one per job the engine takes at
once, bridge/jobs/pool.py; the engine's torch work runs on its own compute thread, inference/api.py:Engine.compute).

Steps of a job: plan (again: the model may have been switched since admission) -> the free-space check -> the
renderer the op names (`RENDERERS`, over a bridge/jobs/job_context.py:JobContext: read the input, generate, render,
write atomically, journal, announce) -> done. Each output is in the journal before its /continuo/output event is
sent (bridge/jobs/outputs.py). A cancel or a stop is noticed at the job's next progress step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

from bridge.audio.analysis import GridCheck
from bridge.audio.files import disk_error
from bridge.audio.presets import Preset
from bridge.audio.render import RenderedAudio
from bridge.audio.transcription import StemMidi
from bridge.errors import BridgeError, Busy, IoError, ReplicaLost
from bridge.jobs.admission import check_model
from bridge.jobs.events import EventSink
from bridge.jobs.job_context import JobContext, Separation
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.notes import render_midi
from bridge.jobs.outputs import Outputs
from bridge.jobs.plan import RenderPlan, build_plan
from bridge.jobs.preview import PreviewWriter
from bridge.jobs.queue import Job, JobQueue, JobStatus
from bridge.jobs.song import render_cover, render_extract, render_layer, render_repaint
from bridge.jobs.storage import check_room
from bridge.jobs.style_training import STYLE_OP, run_style_job
from bridge.jobs.takes import render_input_stems, render_take, render_variations
from inference.api import Compute, Engine
from inference.errors import Cancelled, InferenceError
from inference.runtime.memory import trim_heap
from inference.stems.separator import EXPORT_TYPICAL

log = logging.getLogger("continuo.worker")

# Overall progress: each stage owns a slice of [0, 1].
STAGE_SPANS = {
    "loading": (0.0, 0.02),
    "conditioning": (0.02, 0.05),
    "generating": (0.05, 0.85),
    "decoding": (0.85, 0.88),
    "effects": (0.88, 0.9),
    "preparing": (0.9, 0.9),  # the stems path's one-time export (minutes): no fractions, it reports its start
    "separating": (0.9, 0.97),
    "transcribing": (0.97, 0.97),  # audio to MIDI: a few seconds a stem; its fractions stay in the slice's start
    "writing": (0.97, 1.0),
}


class Interrupted(Exception):
    """The daemon is stopping while this job runs."""


Renderer = Callable[[JobContext, RenderPlan], list[OutputRecord]]
RENDERERS: dict[str, Renderer] = {
    "generate": render_take, "continue": render_take, "variations": render_variations, "stems": render_input_stems,
    "repaint": render_repaint, "extract": render_extract, "layer": render_layer, "cover": render_cover,
    "midi": render_midi,
}
MAX_LOST_REPLICAS = 1  # a job whose cluster replica dies mid-take is re-queued this often
STOP_POLL_S = 0.25  # how often an idle worker looks at `stopping`


class Worker(threading.Thread):
    def __init__(
        self,
        *,
        queue: JobQueue,
        journal: Journal,
        events: EventSink,
        engine: Engine,
        presets: Callable[[], Mapping[str, Preset]],
        input_roots: Sequence[Path],
        output_root: Path,
        separator: Callable[[], object] | None = None,
        live_only: bool = False,
        compute: Compute | None = None,
        may_take: Callable[[], bool] | None = None,
        between_jobs: Callable[[], None] | None = None,
        take_lock: threading.Lock | None = None,
        finished: Callable[[float, float], None] | None = None,
        trains: bool | None = None,
    ) -> None:
        """The hooks come from the pool (bridge/jobs/pool.py): compute, where torch runs (the engine's compute
        thread; None: on this thread); may_take, whether a job may start now (None: always); between_jobs, run
        before each job (a model switch's turn); take_lock, shared by the workers that count against one another
        (None: one of its own); finished(elapsed_s, audio_s) after each job done (the pool's RealTime: ETAs);
        trains: True takes train_style jobs only (the pool's training worker), False never, None any job."""
        name = "continuo-live-worker" if live_only else "continuo-training-worker" if trains else "continuo-worker"
        super().__init__(name=name, daemon=True)
        self.live_only = live_only  # takes live jobs only: one never waits behind a batch of others
        self.trains = trains
        self.queue = queue
        self.journal = journal
        self.events = events
        self.engine = engine
        self.presets = presets
        self.input_roots = input_roots
        self.output_root = output_root
        self.outputs = Outputs(output_root, journal, events)
        self.separator = separator  # () -> inference.stems.separator.StemSeparator, loaded on first use
        self.current: Job | None = None
        self.stopping = threading.Event()
        self.finished = finished
        self.compute = compute
        self.may_take = may_take
        self.between_jobs = between_jobs
        self.take_lock = take_lock or threading.Lock()
        self._lock = threading.Lock()
        self.running_jobs: Callable[[], list[Job]] | None = None  # every worker's running job (the pool's)

    # -- the loop ---------------------------------------------------------------------------
    def accepts(self, job: Job) -> bool:
        """Whether this worker takes job (trains: module docstring of bridge/jobs/pool.py)."""
        return self.trains is None or (job.op == STYLE_OP) is self.trains

    def run(self) -> None:
        """Jobs one at a time until stopping is set or the queue closes (the pool runs one worker thread per job
        the engine takes at once)."""
        while not self.stopping.is_set():
            if self.between_jobs is not None:
                self.between_jobs()
            with self.take_lock:  # workers take turns: at most the engine's number of jobs run at once
                allowed = self.may_take is None or self.may_take()
                # wakes to notice `stopping`, set from a signal handler
                job = self.queue.get(timeout_s=STOP_POLL_S, live_only=self.live_only,
                                     accepts=self.accepts) if allowed else None
                with self._lock:
                    self.current = job
            if job is None:
                if self.queue.closed:
                    break
                if not allowed:
                    self.stopping.wait(STOP_POLL_S)
                continue
            try:
                self.run_job(job)
            finally:
                with self._lock:
                    self.current = None
            self.give_back_memory(job)

    def give_back_memory(self, job: Job) -> None:
        """After a job, when no other waits, the heap it freed goes back to the system
        (inference/runtime/memory.py:trim_heap). glibc keeps a job's peak as free heap otherwise: after one stems
        job on the smoke model 460 MB of the daemon's RSS was free heap (the separation's activations). The trim
        took 10.6 ms at the median, 79 ms at the 90th percentile and 179 ms at most in the soak (60 jobs, 2 shared
        cores); a waiting job does not wait for it, and the next separation runs as fast (docs/benchmarks.md,
        "Soak")."""
        if len(self.queue):
            return
        started = time.monotonic()
        trim_heap(collect=False)
        log.debug("job=%s heap trimmed in %.1f ms", job.job_id, 1000 * (time.monotonic() - started))

    def on_compute(self, function: Callable[[], object]) -> object:
        """function() on the compute thread (every torch call runs there: inference/api.py:Compute), or here."""
        return function() if self.compute is None else self.compute.call(function)

    def stop(self) -> None:
        """Ask the running job to stop at its next step; the loop ends after it."""
        self.stopping.set()
        with self._lock:
            if self.current is not None:
                self.current.cancel()

    def running_job(self) -> Job | None:
        with self._lock:
            return self.current

    # -- one job ----------------------------------------------------------------------------
    def run_job(self, job: Job) -> None:
        started = time.monotonic()
        if self.stopping.is_set():
            self.fail(job, "interrupted", "the daemon stopped before this job started; send it again")
            return
        if job.cancelled:
            self.fail(job, "cancelled", "cancelled before it started")
            return
        self.journal.set_status(job.job_id, JobStatus.RUNNING)
        log.info("job=%s running op=%s", job.job_id, job.op)
        try:
            if job.op == STYLE_OP:  # not a render: a style adapter trained (bridge/jobs/style_training.py)
                try:
                    self.train_style(job)
                except Cancelled as error:  # its message says the checkpoint kept and how to resume
                    if self.stopping.is_set():
                        raise
                    self.fail(job, "cancelled", str(error))
                    return
                elapsed = time.monotonic() - started
                self.journal_end(job, JobStatus.DONE, seed=0, elapsed_s=elapsed)
                self.events.done(job.reply_to, job.job_id, 0, 0, elapsed)
                log.info("job=%s done op=%s elapsed_s=%.2f", job.job_id, job.op, elapsed)
                return
            plan = build_plan(job.op, job.params, self.presets(), self.input_roots)
            check_model(plan, self.engine.info, job.job_id)  # the model may have been switched since admission
            check_room(self.output_root, plan, job.job_id)  # a render that cannot fit fails now, not when written
            outputs = self.render(job, plan)
        except (Cancelled, Interrupted):
            if self.stopping.is_set():
                self.fail(job, "interrupted", "the daemon stopped while this job ran; send it again with a new id")
            else:
                self.fail(job, "cancelled", "cancelled")
            return
        except ReplicaLost as exc:
            self.requeue_lost(job, exc)
            return
        except (BridgeError, InferenceError) as exc:
            self.fail(job, exc.code, getattr(exc, "message", str(exc)))
            return
        except OSError as exc:  # a write outside bridge.audio.files (a folder, a copy): what the disk said
            error = disk_error(exc, Path(exc.filename or self.output_root / job.job_id))
            self.fail(job, error.code, error.message)
            return
        except Exception as exc:  # a bug must not kill the worker: report it and go on
            log.exception("job=%s failed unexpectedly", job.job_id)
            self.fail(job, "model_error", f"internal error: {type(exc).__name__}: {exc}")
            return
        if job.slot is not None and outputs:
            self.events.emit(job.reply_to, "/continuo/slot", job.job_id, job.slot, outputs[0].path)
        elapsed = time.monotonic() - started
        if self.finished is not None:
            self.finished(elapsed, plan.duration_s)
        self.journal_end(job, JobStatus.DONE, seed=plan.seed, elapsed_s=elapsed)
        self.events.done(job.reply_to, job.job_id, len(outputs), plan.seed, elapsed)
        log.info("job=%s done outputs=%d seed=%d elapsed_s=%.2f", job.job_id, len(outputs), plan.seed, elapsed)

    def fail(self, job: Job, code: str, message: str) -> None:
        status = {"cancelled": JobStatus.CANCELLED, "interrupted": JobStatus.INTERRUPTED}.get(code, JobStatus.FAILED)
        self.journal_end(job, status, error_code=code, error_message=message)
        self.events.error(job.reply_to, job.job_id, code, message)
        log.info("job=%s %s: %s", job.job_id, code, message)

    def journal_end(self, job: Job, status: JobStatus, **details) -> None:
        """The job's end in the journal. A journal that cannot be written (its disk is full) loses only this
        row's update: the client still gets its terminal event, the worker goes on, and the row, still
        `running`, becomes `interrupted` at the next start (SQLite keeps the file itself consistent)."""
        try:
            self.journal.finish(job.job_id, status, **details)
        except IoError as exc:
            log.error("job=%s could not journal its end (%s): %s; it stays `running` there until the next start "
                      "marks it interrupted", job.job_id, status.value, exc.message)

    def requeue_lost(self, job: Job, exc: ReplicaLost) -> None:
        """A cluster replica died mid-take: Serve restarts it; the job runs again, once, on a healthy replica.

        Nothing of the take was written (outputs are written after the take), so no output is duplicated; the
        client gets `queued` again and progress restarts from the beginning.
        """
        if job.lost_replicas >= MAX_LOST_REPLICAS or self.stopped(job):
            self.fail(job, exc.code, f"{exc.message}; it was re-run {job.lost_replicas} time(s) already: "
                                     "send it again with a new id")
            return
        job.lost_replicas += 1
        self.journal.set_status(job.job_id, JobStatus.QUEUED)
        try:
            position = self.queue.put(job, front=True)
        except Busy as busy:
            self.fail(job, exc.code, f"{exc.message}; not re-queued: {busy.message}")
            return
        self.events.queued(job.reply_to, job.job_id, position, 0.0)
        log.warning("job=%s re-queued (position %d): %s", job.job_id, position, exc.message)

    def stopped(self, job: Job) -> bool:
        """The job should end now: cancelled by its client, or the daemon is stopping."""
        return job.cancelled or self.stopping.is_set()

    def progress(self, job: Job, stage: str, fraction: float) -> None:
        if self.stopped(job):
            raise Interrupted() if self.stopping.is_set() else Cancelled()
        low, high = STAGE_SPANS[stage]
        self.events.progress(job.reply_to, job.job_id, low + (high - low) * fraction, stage)

    def train_style(self, job: Job) -> None:
        """A train_style job: its torch work on the compute thread, each step after the renders (renders_busy)."""
        run_style_job(job, events=self.events, call=self.on_compute, stopped=partial(self.stopped, job),
                      renders_busy=partial(self.renders_busy, job))

    def renders_busy(self, job: Job) -> bool:
        """A render runs beside this job, or waits in the queue: training waits before its next step."""
        others = [*self.queue.waiting(), *(self.running_jobs() if self.running_jobs is not None else [])]
        return any(other.op != STYLE_OP for other in others if other is not job)

    def render(self, job: Job, plan: RenderPlan) -> list[OutputRecord]:
        """The op's renderer over this job's context. The engine is called here, on this thread: every engine
        hands its torch work to its own compute thread (ours must wait for its steps there, not run inside them),
        or has none (a cluster: its replicas compute)."""
        return RENDERERS[plan.op](self.context(job), plan)

    def context(self, job: Job) -> JobContext:
        return JobContext(job=job, engine=self.engine, progress=partial(self.progress, job),
                          stopped=partial(self.stopped, job), preview=partial(self.preview_writer, job),
                          separate=partial(self.separate, job), write_all=partial(self.write_all, job))

    def preview_writer(self, job: Job, plan: RenderPlan, stream_name: str = "") -> PreviewWriter:
        """Chunks go to <job>/preview/ (or <job>/preview/<stream_name>/ for one of several takes).

        Only for an engine that declares streaming: admission (bridge.jobs.capabilities) refuses the rest.
        """
        folder = self.output_root / job.job_id / "preview"
        return PreviewWriter(job, self.events, folder / stream_name if stream_name else folder,
                             model_rate=self.engine.info.sample_rate, sample_rate=plan.context.sample_rate)

    def write_all(self, job: Job, plan: RenderPlan, rendered: Mapping[str, RenderedAudio], *,
                  midi: Mapping[str, StemMidi] | None = None,
                  checks: Mapping[str, GridCheck] | None = None) -> list[OutputRecord]:
        self.progress(job, "writing", 0.0)
        outputs = self.outputs.write_all(job, plan, rendered, model=self.engine.info, midi=midi or {},
                                         checks=checks or {})
        self.progress(job, "writing", 1.0)
        return outputs

    def load_separator(self):
        if self.separator is None:
            raise BridgeError("stem separation is not configured in this daemon")
        return self.separator()

    def separate(self, job: Job, run: Separation) -> dict[str, RenderedAudio]:
        """run(separator, on_progress, should_cancel) on the compute thread, after the separator's preparation."""
        self.prepare_separator(job)
        self.progress(job, "separating", 0.0)
        started = time.monotonic()
        stems = self.on_compute(lambda: run(self.load_separator(),
                                            lambda fraction: self.progress(job, "separating", fraction),
                                            lambda: self.stopped(job)))
        log.info("job=%s separated stems=%s separating_s=%.2f", job.job_id, ",".join(stems),
                 time.monotonic() - started)
        return stems

    def prepare_separator(self, job: Job) -> None:
        """The separator's path may need a one-time export (minutes): say so with a `preparing` stage, then wait
        for it (a preparation the daemon started in the background included), cancellable. A path that is
        ready or quick to build sends nothing new."""
        if self.separator is None:
            return  # load_separator says it is not configured
        separator = self.load_separator()
        if not separator.needs_preparation():
            return
        self.progress(job, "preparing", 0.0)
        started = time.monotonic()
        log.info("job=%s preparing stems path=%s: a one-time export, %s; later jobs start at once", job.job_id,
                 separator.planned_path(), EXPORT_TYPICAL)
        separator.prepare(should_cancel=lambda: self.stopped(job))
        log.info("job=%s prepared stems path=%s preparing_s=%.1f", job.job_id, separator.path,
                 time.monotonic() - started)
