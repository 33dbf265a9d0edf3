"""The worker pool: the served engine, its compute thread, and the worker threads that run jobs on it.

Jobs at once. One worker thread per job the engine takes at once (`concurrent_jobs`: our engine's max_batch,
1 when compiled; a cluster engine's replicas; 1 for the others), all on the one queue, so priorities and slots
hold. A worker takes a job only while fewer run than the engine takes (`WorkerPool.may_take`, checked under one
lock the counted workers share, so a model switch to a one-at-a-time engine is respected at once). Beside an
engine that batches, one more worker takes live jobs only (bridge/jobs/queue.py:JobQueue.get with live_only):
a MIDI-triggered job never waits behind a batch of others; it joins the running decode at the next step (a
batch may then run max_batch + 1 jobs). Each job keeps its own progress, cancel, previews, journal rows and
render: the worker code is the same as for one job; only the engine shares the steps. max_batch is 4 by
default: measured in docs/benchmarks.md ("Batching").

The main thread runs the model. torch's OpenMP threads belong to the thread that starts a parallel region: a
worker thread that ran torch made a second team, libgomp then managed more threads than the 2 cores and
throttled its spin-waits, and decoding ran at half speed (32 vs 67 steps/s; inference/runtime/compute.py). So in
`continuo serve` `WorkerPool.serve` gives the main thread (the one that loaded the model) to the engine's compute
thread (none for a cluster engine: its replicas compute), following a model switch (`ServingStop`), and the
workers start only once it serves. Workers hand it every torch call: the engine does so itself, stems
separation goes through bridge/jobs/worker.py:Worker.on_compute, a switch's load through `WorkerPool.load`.
In process (tests) there is no serving thread: the calling worker drives the compute thread itself.

Speed. ETAs and /continuo/limits use `RealTime`: seconds of work per second of audio on this machine, from the
engine's measurement at warm-up (inference/api.py:MeasuredSpeed; our MusicGen engine times a 1 s take) until
jobs finish, then from finished jobs (each job's wall over its audio, a running mean). A model switch starts it
afresh from the new engine's warm-up. `continuo doctor` shows the warm-up figure saved on this machine.

Training. A train_style job (bridge/jobs/style_training.py) runs on a worker of its own beside them (`trains`: it
takes training jobs only, one at a time, and counts against no one; the others never take one). Training waits
between its steps while any render runs or waits, so a render is taken by a render worker at once and runs between
two steps: on a one-at-a-time engine (ACE-Step, a compiled MusicGen) a training job on the only worker would wait
for a render that could never start. Its torch work goes to the same compute thread: a render sent during a step
waits for that step to end.

A model switch (bridge/jobs/model_switch.py) runs in a worker's place between jobs, once none runs
(`WorkerPool.between_jobs`), and installs the new engine into the pool and every worker (`WorkerPool.install`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bridge.audio.context import MusicalContext
from bridge.jobs.admission import merged_lora
from bridge.jobs.model_switch import ModelSwitch
from bridge.jobs.queue import Job, JobQueue
from bridge.jobs.worker import Worker
from bridge.settings import Settings
from inference.api import Compute, Engine, MeasuredSpeed
from inference.loading import load_engine, resolve_model

log = logging.getLogger("continuo.daemon")


class WorkerPool:
    """worker: builds one Worker from the hooks the pool gives it (engine, compute, live_only, may_take,
    between_jobs, take_lock); everything else (queue, journal, events, roots, separator) is bound by the daemon."""

    def __init__(self, engine: Engine, spec: str, *, loader: Callable[[Settings], Engine], queue: JobQueue,
                 switch: ModelSwitch, worker: Callable[..., Worker]) -> None:
        self.engine, self.spec = engine, spec  # what serves, and what it was loaded from (a switch changes both)
        self.compute: Compute | None = engine.compute
        self.queue, self.switch = queue, switch
        self._loader = loader
        self.real_time = RealTime(engine)
        take_lock = threading.Lock()  # the live worker counts against no one: it keeps its own
        jobs = concurrent_jobs(engine)
        self.workers = [worker(engine=engine, compute=self.compute, may_take=self.may_take, take_lock=take_lock,
                               between_jobs=self.between_jobs, finished=self.real_time.finished, trains=False)
                        for _ in range(jobs)]
        if jobs > 1 and self.engine_serves():
            self.workers.append(worker(engine=engine, compute=self.compute, live_only=True,
                                       may_take=self.may_take_live, between_jobs=self.between_jobs,
                                       finished=self.real_time.finished, trains=False))
        self.workers.append(worker(engine=engine, compute=self.compute, between_jobs=self.between_jobs, trains=True))
        for each in self.workers:
            each.running_jobs = self.running_jobs  # a training job waits for the renders (renders_busy)

    # -- the served engine ------------------------------------------------------------------
    def engine_serves(self) -> bool:
        """The engine decodes jobs together on its own compute thread (our engine's batch scheduler)."""
        return self.engine.compute is not None and concurrent_jobs(self.engine) > 1

    def load(self, settings: Settings) -> Engine:
        """A model switch's load, on the compute thread (the main thread in `continuo serve`), like the first."""
        return self.compute.call(lambda: self._loader(settings)) if self.compute else self._loader(settings)

    def install(self, engine: Engine, spec: str) -> None:
        """The switch's last step (a worker's thread, between jobs): the pool and every worker serve engine."""
        self.engine, self.spec = engine, spec
        self.compute = engine.compute
        self.real_time.restart(engine)
        for worker in self.workers:
            worker.engine, worker.compute = engine, self.compute

    # -- the workers' hooks -----------------------------------------------------------------
    def may_take(self) -> bool:
        """Whether a counted worker may take a job now: fewer run than the engine takes at once (a model switch
        can change that)."""
        return sum(1 for worker in self.workers if not worker.live_only and not worker.trains
                   and worker.running_job()) < concurrent_jobs(self.engine)

    def may_take_live(self) -> bool:
        """The live worker takes a job only beside an engine that decodes jobs together."""
        return concurrent_jobs(self.engine) > 1 and self.engine_serves()

    def between_jobs(self) -> None:
        """A worker's hook between jobs: a waiting model switch runs once no job runs (the queue is held)."""
        if self.switch.active and not self.running_jobs():
            self.switch.run_pending(self)

    # -- running ------------------------------------------------------------------------------
    def start(self) -> None:
        for worker in self.workers:
            if worker.ident is None:
                worker.start()

    def serve(self, stop: threading.Event) -> None:
        """Until stop: this (main) thread, the one that loaded the model, runs every torch call of the engine and
        the workers (the engine's compute thread, following a model switch); the workers start once it serves."""
        while not stop.is_set():
            compute = self.compute
            if compute is None:  # a cluster: the replicas compute
                self.start()
                stop.wait()
                break
            # returns once stopping (or switched to another engine) and nothing runs; the workers start once it
            # serves (before, their first torch call would run on their own thread)
            compute.serve(ServingStop(stop, self, compute), on_ready=self.start)
            del compute  # a switched-out engine must not be held here

    def request_stop(self) -> None:
        """Safe from a signal handler: it only sets events."""
        for worker in self.workers:
            worker.stopping.set()

    def stop(self, timeout_s: float) -> None:
        """Stop the running jobs at their next step; waiting jobs fail `interrupted`; wait for every thread."""
        for worker in self.workers:
            worker.stop()
        self.switch.abandon()
        for job in self.queue.drain():
            self.fail(job, "interrupted", "the daemon stopped before this job started; send it again")
        for worker in self.workers:
            if worker.ident is not None:  # a started thread (not the main-thread loop)
                worker.join(timeout_s)
            if worker.is_alive():
                log.warning("the running job did not stop within %.0f s; leaving it", timeout_s)

    # -- what runs ----------------------------------------------------------------------------
    def running_jobs(self) -> list[Job]:
        return [job for worker in self.workers if (job := worker.running_job()) is not None]

    def active_job_ids(self) -> set[str]:
        return {job.job_id for job in self.queue.waiting()} | {job.job_id for job in self.running_jobs()}

    def inputs_in_use(self) -> set[Path]:
        """The input files queued and running jobs read: retention leaves those inbox copies alone."""
        jobs = [*self.queue.waiting(), *self.running_jobs()]
        return {Path(path) for job in jobs for path in (job.params.get("input_path"),
                                                        job.params.get("settings", {}).get("melody")) if path}

    @property
    def seconds_per_audio_s(self) -> float:
        """Seconds of work per second of audio on this machine (ETAs, /continuo/limits): `RealTime`."""
        return self.real_time.seconds_per_audio_s

    def eta_s(self, position: int) -> float:
        """Seconds until a job at position (1: next) starts and ends: the waiting ones before it, half of each
        running one, at the measured speed, shared by the jobs the engine takes at once."""
        waiting = [job for job in self.queue.waiting()[: max(position, 0)] if "context" in job.params]  # renders
        seconds = sum(MusicalContext(**job.params["context"]).seconds_for_bars(job.params["bars"]) for job in waiting)
        for running in self.running_jobs():
            if "context" in running.params:  # a training job has no length in audio (and waits for renders)
                seconds += MusicalContext(**running.params["context"]).seconds_for_bars(running.params["bars"]) / 2
        return seconds * self.seconds_per_audio_s / concurrent_jobs(self.engine)

    def fail(self, job: Job, code: str, message: str) -> None:
        """A job that never reached a worker ends: journalled, and its client told (bridge/jobs/worker.py)."""
        self.workers[0].fail(job, code, message)


class RealTime:
    """Seconds of work per second of audio for the served engine: its warm-up measurement (engine.measured_speed),
    1.0 where it has none (assumed: real time), then a running mean over finished jobs (each job's wall over its
    audio, recent jobs weighing more). `source` says which: "warm-up", "assumed" or "finished jobs"."""

    WEIGHT = 0.3  # a finished job's share of the running figure

    def __init__(self, engine: Engine) -> None:
        self.lock = threading.Lock()
        self.restart(engine)

    def restart(self, engine: Engine) -> None:
        """Afresh for engine (at start and after a model switch)."""
        speed = engine.measured_speed
        with self.lock:
            self.seconds_per_audio_s = speed.rtf if speed is not None else 1.0
            self.source = speed.source if speed is not None else "assumed"
            self.jobs = 0
            self.audio_s = 0.0  # of the finished jobs
        if speed is not None:
            log.info("model %s: %s", engine.info.name, speed.describe())

    def measured(self) -> MeasuredSpeed | None:
        """The running figure from finished jobs as a MeasuredSpeed; None before the first job finished."""
        with self.lock:
            if self.source != "finished jobs":
                return None
            return MeasuredSpeed(rtf=round(self.seconds_per_audio_s, 3), audio_s=round(self.audio_s, 1),
                                 source=f"{self.jobs} finished jobs")

    def finished(self, elapsed_s: float, audio_s: float) -> None:
        """A job ended after elapsed_s with audio_s of audio."""
        with self.lock:
            rate = elapsed_s / max(audio_s, 0.1)
            self.seconds_per_audio_s += self.WEIGHT * (rate - self.seconds_per_audio_s)
            self.source, self.jobs = "finished jobs", self.jobs + 1
            self.audio_s += audio_s


class ServingStop:
    """The stop of one compute thread's loop: the daemon stops, or a model switch installed another."""

    def __init__(self, stop: threading.Event, pool: WorkerPool, compute: Compute) -> None:
        self.stop, self.pool, self.compute = stop, pool, compute

    def is_set(self) -> bool:
        return self.stop.is_set() or self.pool.compute is not self.compute


def load_local_engine(settings: Settings) -> Engine:
    """The engine settings name, in this process: resolved (the smoke model only where allowed) and loaded with the
    settings' modes (and the `lora` setting's adapter merged at load); torch's thread count first."""
    if settings.cpu_threads:
        import torch

        torch.set_num_threads(settings.cpu_threads)
    source = resolve_model(settings.model, tiny_dir=settings.smoke_model_dir.expanduser(),
                           allow_tiny_fallback=settings.allow_smoke_model)
    return load_engine(source, device=settings.device, backend=settings.backend, weights=settings.weights,
                       kv_cache=settings.kv_cache, attention=settings.attention, compile=settings.compile_decode,
                       max_batch=settings.max_batch, memory_budget_gb=settings.memory_budget_gb,
                       lora=merged_lora(settings))


def concurrent_jobs(engine: Engine) -> int:
    """Jobs the engine runs at once: our engine's max_batch (1 when compiled); a cluster engine's replicas;
    1 for the others."""
    return max(1, int(engine.concurrent_jobs))
