"""A worker thread: takes jobs off the queue and runs each step (the daemon runs one per job the engine takes at
once; the engine's torch work runs on its own compute thread, inference/api.py:Engine.compute).

Steps of a generate/continue job: plan -> (read the input's tail) -> generate ->
render (resample, effects, loudness) -> write atomically -> journal -> announce.
Each output is in the journal before its /continuo/output event is sent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from bridge.audio.files import (
    daw_file_name,
    disk_error,
    link_or_copy_atomic,
    read_audio,
    write_bytes_atomic,
    write_wav_atomic,
)
from bridge.audio.presets import Preset
from bridge.audio.render import LOOP_CROSSFADE_S, map_channels, measured, render_mix, resample
from bridge.audio.stems import input_stems, stem_outputs
from bridge.errors import BridgeError, Busy, IoError, ReplicaLost
from bridge.jobs.admission import check_model
from bridge.jobs.events import EventSink
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.plan import RenderPlan, build_plan
from bridge.jobs.preview import PreviewWriter
from bridge.jobs.queue import Job, JobQueue, JobStatus
from bridge.jobs.song import render_cover, render_extract, render_layer, render_repaint, song_fields
from bridge.jobs.storage import MANIFEST, check_room
from inference.api import Compute, Engine, GenerationRequest
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
    "writing": (0.97, 1.0),
}


class Interrupted(Exception):
    """The daemon is stopping while this job runs."""


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
    ) -> None:
        super().__init__(name="continuo-live-worker" if live_only else "continuo-worker", daemon=True)
        self.live_only = live_only  # takes live jobs only: one never waits behind a batch of others
        self.queue = queue
        self.journal = journal
        self.events = events
        self.engine = engine
        self.presets = presets
        self.input_roots = input_roots
        self.output_root = output_root
        self.separator = separator  # () -> inference.stems.separator.StemSeparator, loaded on first use
        self.current: Job | None = None
        self.stopping = threading.Event()
        self.seconds_per_audio_s = 1.0  # measured; used for ETAs
        self.between_jobs: Callable[[], None] | None = None  # run before each job: a model switch's turn
        self.may_take: Callable[[], bool] | None = None  # whether a job may start now (the daemon's count)
        self.compute: Compute | None = None  # where torch runs (the engine's compute thread); None: on this thread
        self.take_lock = threading.Lock()  # shared by the workers that count against one another
        self._lock = threading.Lock()

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        """Jobs one at a time until stopping is set or the queue closes (the daemon runs one worker thread per
        job the engine takes at once)."""
        while not self.stopping.is_set():
            if self.between_jobs is not None:
                self.between_jobs()
            with self.take_lock:  # workers take turns: at most the engine's number of jobs run at once
                allowed = self.may_take is None or self.may_take()
                # wakes to notice `stopping`, set from a signal handler
                job = self.queue.get(timeout_s=STOP_POLL_S, live_only=self.live_only) if allowed else None
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

    def engine_call(self, function: Callable[[], object]) -> object:
        """function() with the engine, here: every engine hands its torch work to its own compute thread (ours
        must wait for its steps there, not run inside them), or has none (a cluster: its replicas compute)."""
        return function()

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
        self.seconds_per_audio_s = 0.7 * self.seconds_per_audio_s + 0.3 * elapsed / max(plan.duration_s, 0.1)
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

    def render(self, job: Job, plan: RenderPlan) -> list[OutputRecord]:
        if plan.op == "stems":
            return self.render_input_stems(job, plan)
        if plan.op == "repaint":
            return render_repaint(self, job, plan)
        if plan.op == "extract":
            return render_extract(self, job, plan)
        if plan.op == "layer":
            return render_layer(self, job, plan)
        if plan.op == "cover":
            return render_cover(self, job, plan)
        audio_prompt, lead_frames = self.read_prompt(job, plan) if plan.input_path is not None else (None, 0)
        extra_s = lead_frames / plan.context.sample_rate + (LOOP_CROSSFADE_S if plan.loop else 0.0)
        request = GenerationRequest(
            prompt=plan.prompt, duration_s=plan.duration_s + extra_s, seed=plan.seed,
            temperature=plan.preset.temperature, top_k=plan.preset.top_k, top_p=plan.preset.top_p,
            guidance_scale=plan.preset.guidance_scale, audio_prompt=audio_prompt, styles=plan.styles,
            melody=self.read_melody(plan) if plan.melody_path is not None else None, **song_fields(plan),
        )
        if plan.op == "variations":
            return self.render_variations(job, plan, request, lead_frames)
        preview = self.preview_writer(job, plan) if plan.stream else None
        generated = self.engine_call(lambda: self.engine.generate(
            request,
            on_progress=lambda fraction, stage: self.progress(job, stage, fraction),
            should_cancel=lambda: self.stopped(job),
            on_chunk=preview,
        ))
        if preview is not None:
            preview.finish()
        self.progress(job, "effects", 0.0)
        rendered = render_mix(generated.audio, generated.sample_rate, frames=plan.frames,
                              sample_rate=plan.context.sample_rate, preset=plan.preset, loop=plan.loop,
                              hard_cut=plan.hard_cut, lead_frames=lead_frames)
        del generated
        extra = {"mix-tail": measured(rendered.tail, rendered.sample_rate)} if rendered.tail is not None else {}
        if plan.stems:
            extra.update(self.separate(job, lambda progress, cancel: stem_outputs(
                self.load_separator(), rendered, stems=plan.stems, chains=plan.preset.stem_chains, loop=plan.loop,
                hard_cut=plan.hard_cut, on_progress=progress, should_cancel=cancel)))
        return self.write_all(job, plan, {"mix": rendered, **extra})

    def preview_writer(self, job: Job, plan: RenderPlan, stream_name: str = "") -> PreviewWriter:
        """Chunks go to <job>/preview/ (or <job>/preview/<stream_name>/ for one of several takes).

        Only for an engine that declares streaming: admission (bridge.jobs.capabilities) refuses the rest.
        """
        folder = self.output_root / job.job_id / "preview"
        return PreviewWriter(job, self.events, folder / stream_name if stream_name else folder,
                             model_rate=self.engine.info.sample_rate, sample_rate=plan.context.sample_rate)

    def render_variations(self, job: Job, plan: RenderPlan, request: GenerationRequest,
                          lead_frames: int) -> list[OutputRecord]:
        """/continuo/variations: count takes of one request (seeds seed, seed + 1, ...), variation-1..N.

        Our engine decodes them as one batch; the reference renders them one after another.
        """
        seeds = [plan.seed + index for index in range(plan.count)]
        progress = {"on_progress": lambda fraction, stage: self.progress(job, stage, fraction),
                    "should_cancel": lambda: self.stopped(job)}
        previews = [self.preview_writer(job, plan, f"variation-{index}")
                    for index in range(1, plan.count + 1)] if plan.stream else []
        if previews:  # one preview stream per variation: the batch's chunks arrive together, (B, C, samples)
            progress["on_chunk"] = lambda audio: [writer(audio[b]) for b, writer in enumerate(previews)]
        takes = self.engine_call(lambda: self.engine.generate_batch(request, seeds, **progress))
        for writer in previews:
            writer.finish()
        self.progress(job, "effects", 0.0)
        rendered = {f"variation-{index}": render_mix(
            take.audio, take.sample_rate, frames=plan.frames, sample_rate=plan.context.sample_rate,
            preset=plan.preset, loop=plan.loop, hard_cut=plan.hard_cut, lead_frames=lead_frames)
            for index, take in enumerate(takes, start=1)}
        return self.write_all(job, plan, rendered)

    def render_input_stems(self, job: Job, plan: RenderPlan) -> list[OutputRecord]:
        """/continuo/stems: the input file's stems at the session rate and the input's level."""
        assert plan.input_path is not None
        self.progress(job, "loading", 0.0)
        audio, rate = read_audio(plan.input_path)
        stems = self.separate(job, lambda progress, cancel: input_stems(
            self.load_separator(), audio, rate, sample_rate=plan.context.sample_rate, stems=plan.stems,
            source=str(plan.input_path), on_progress=progress, should_cancel=cancel))
        return self.write_all(job, plan, stems)

    def load_separator(self):
        if self.separator is None:
            raise BridgeError("stem separation is not configured in this daemon")
        return self.separator()

    def separate(self, job: Job, run: Callable) -> dict:
        self.prepare_separator(job)
        self.progress(job, "separating", 0.0)
        started = time.monotonic()
        stems = self.on_compute(lambda: run(lambda fraction: self.progress(job, "separating", fraction),
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

    def write_all(self, job: Job, plan: RenderPlan, rendered: Mapping[str, object]) -> list[OutputRecord]:
        """Write each output (journalled before its /continuo/output), then the manifest."""
        self.progress(job, "writing", 0.0)
        bar_s = plan.context.seconds_for_bars(1)
        outputs = [self.write_output(job, plan, name, audio, bars=plan.bars if plan.bars and audio.frames == plan.frames
                                     else audio.seconds / bar_s) for name, audio in rendered.items()]
        self.write_manifest(job, plan, outputs)
        self.progress(job, "writing", 1.0)
        return outputs

    def read_prompt(self, job: Job, plan: RenderPlan) -> tuple[np.ndarray, int]:
        """The input's last prompt_seconds at the model's rate and channel count, and the lead.

        Channels are mapped here, once; the engine only checks the count. The bridge owns channel mapping
        (map_channels also fits every output to the session, and folds any count, surround included), and
        the caller already owes the engine its sample rate, so it owes it the channel count too.

        The lead is how many session-rate frames lie between the input's end and
        the next downbeat (the input is taken to start on a downbeat): the job
        generates them too and drops them, so the output starts on that downbeat.
        """
        self.progress(job, "loading", 0.0)
        assert plan.input_path is not None
        audio, rate = read_audio(plan.input_path)
        tail = audio[:, -max(1, int(round(plan.preset.prompt_seconds * rate))):]
        tail = map_channels(resample(tail, rate, self.engine.info.sample_rate), self.engine.info.channels)
        self.progress(job, "loading", 1.0)
        end_frames = round(audio.shape[1] * plan.context.sample_rate / rate)
        return np.ascontiguousarray(tail, dtype=np.float32), plan.context.frames_to_next_downbeat(end_frames)

    def read_melody(self, plan: RenderPlan) -> np.ndarray:
        """The melody file at the model's rate, its channels as they are: the engine takes the chroma of
        their mono mix (pitch, not timbre), so nothing is mapped here."""
        assert plan.melody_path is not None
        audio, rate = read_audio(plan.melody_path)
        return np.ascontiguousarray(resample(audio, rate, self.engine.info.sample_rate), dtype=np.float32)

    def write_output(self, job: Job, plan: RenderPlan, name: str, rendered, *,
                     bars: float | None = None) -> OutputRecord:
        path = self.output_root / job.job_id / f"{name}.wav"
        write_wav_atomic(path, rendered.audio, rendered.sample_rate, bit_depth=plan.preset.bit_depth)
        record = OutputRecord(
            name=name, path=path.as_posix(), sample_rate=rendered.sample_rate, channels=rendered.audio.shape[0],
            seconds=rendered.audio.shape[1] / rendered.sample_rate, bars=plan.bars if bars is None else bars,
            lufs=rendered.lufs, peak_db=rendered.peak_db,
        )
        link_or_copy_atomic(path, self.daw_path(job, plan, record))  # before the event: both names are there
        self.journal.add_output(job.job_id, record)
        self.events.output(job.reply_to, job.job_id, record)
        log.info("job=%s output name=%s path=%s lufs=%.1f peak_db=%.1f", job.job_id, name, record.path,
                 record.lufs, record.peak_db)
        return record

    def daw_path(self, job: Job, plan: RenderPlan, record: OutputRecord) -> Path:
        """The output's second name, for dropping into a DAW: <job>_<name>_<bars>bars_<bpm>bpm_<key>.wav beside
        the stable <name>.wav that events, the journal and /continuo/get carry."""
        return Path(record.path).with_name(daw_file_name(job.job_id, record.name, bars=record.bars,
                                                         bpm=plan.context.bpm, key=plan.context.key))

    def write_manifest(self, job: Job, plan: RenderPlan, outputs: list[OutputRecord]) -> None:
        info = self.engine.info
        manifest = {
            "job_id": job.job_id,
            "op": job.op,
            "preset": plan.preset.name,
            "prompt": plan.prompt,
            "bars": plan.bars,
            "seed": plan.seed,
            "context": {"bpm": plan.context.bpm, "metre": plan.context.metre, "key": plan.context.key,
                        "sample_rate": plan.context.sample_rate},
            "input_path": plan.input_path.as_posix() if plan.input_path else None,
            "model": {"name": info.name, "source": info.source_kind, "smoke_model": info.is_random,
                      "modes": info.modes},  # weights, cache, calibration figures, DiT linear plan
            "outputs": [{**o.__dict__, "daw_path": self.daw_path(job, plan, o).as_posix()} for o in outputs],
            # the request as journalled: /continuo/get and a resent id find the job here once the journal has
            # forgotten it (bridge/jobs/retention.py)
            "params": job.params,
        }
        if plan.op == "variations":
            manifest["variation_seeds"] = {f"variation-{i + 1}": plan.seed + i for i in range(plan.count)}
        if info.is_random:
            manifest["warning"] = "rendered by a tiny RANDOM smoke model: this is noise, not music"
        write_bytes_atomic(self.output_root / job.job_id / MANIFEST, json.dumps(manifest, indent=2).encode())
