"""Switching the served model at run time (/continuo/model/load): asked on the receive thread, done on a
worker's thread between jobs, never while a job runs.

`ModelSwitch.request` holds the queue (jobs are still admitted, their model checks left to the worker) and
answers `status loading`. The workers' between-jobs hook (bridge/jobs/pool.py:WorkerPool.between_jobs) runs it
through `ModelSwitch.run_pending` once no job runs and before any waiting job: resolve the model (local directory,
Hugging Face cache, download; no smoke-model fallback: a switch loads what was asked for or fails), choose the
memory order (`switch_order`), load it with the daemon's loader on the compute thread (the config decides the
family), install it in the pool and every worker (`Serving`), then release the queue: the jobs that waited run
on the new model, checked against it when they start (`bridge/jobs/admission.py:check_model`). A failed load
leaves the old model served and the daemon up.

Memory: the new model loads beside the old one when it fits (free memory, and memory_budget_gb when set), so a
failed load costs nothing. When it does not fit (a large model beside the DAW), the old one is released first
and, should the new one fail, loaded again from its spec; if even that fails, the daemon serves no model
(`UnloadedEngine`: every job fails with model_error saying so) until a /continuo/model/load succeeds.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from bridge.errors import BadRequest, Busy
from bridge.jobs.events import EventSink
from bridge.jobs.journal import Journal
from bridge.jobs.queue import JobQueue, JobStatus
from bridge.protocol.destinations import Destination
from bridge.settings import Settings
from inference.api import CodeStream, Engine, GeneratedAudio, ModelInfo
from inference.errors import InferenceError
from inference.runtime.compute import ComputeThread

log = logging.getLogger("continuo.switch")

OP = "load_model"
STAGE = "loading"
BESIDE_MARGIN = 1.25  # the new model loads beside the old one only with this much more free than its weights
CPU_LOAD_FACTOR = 2.0  # on the CPU a checkpoint's weights take up to twice their file size while loading
# (half-precision files become fp32; the loader holds the checkpoint and its own copy for a moment)
GB = 1e9


class SwitchOrder(str, Enum):
    BESIDE = "beside"  # load the new model, then release the old one: a failed load leaves the old one serving
    RELEASE_FIRST = "release-first"  # release the old one, then load: only when both do not fit


def switch_order(new_bytes: int, free_bytes: int, *, old_bytes: int = 0, budget_bytes: int = 0) -> SwitchOrder:
    """BESIDE when the new model's estimate (with BESIDE_MARGIN) fits in what is free and, with a memory budget,
    old and new fit in it together; RELEASE_FIRST otherwise (free memory unknown (0) included)."""
    if new_bytes * BESIDE_MARGIN > free_bytes:
        return SwitchOrder.RELEASE_FIRST
    if budget_bytes and old_bytes + new_bytes > budget_bytes:
        return SwitchOrder.RELEASE_FIRST
    return SwitchOrder.BESIDE


def estimate_bytes(directory, device: str) -> int:
    """Memory a model from directory takes on device while it loads: its weight files, doubled on the CPU."""
    from inference.runtime.memory import weight_bytes

    size = weight_bytes(directory)
    return int(size * (1.0 if device.startswith("cuda") else CPU_LOAD_FACTOR))


class UnloadedEngine:
    """Stands in while no model is loaded (between releasing the old model and installing the new one, or after
    both failed to load): it keeps the last model's info for status and admission; a job fails saying why."""

    info: ModelInfo
    concurrent_jobs = 1
    measured_speed = None
    compute: ComputeThread

    def __init__(self, info: ModelInfo, reason: str) -> None:
        self.info, self.reason = info, reason
        self.compute = ComputeThread()  # idle: the next model loads on it (served by the main thread meanwhile)

    def close(self) -> None:
        """Nothing to let go of."""

    def warm_up(self) -> float:
        return 0.0

    def generate(self, request, *, on_progress=None, should_cancel=None, on_chunk=None) -> GeneratedAudio:
        raise InferenceError(self.reason)

    def open_stream(self, *, max_frames: int = 0) -> CodeStream:
        raise InferenceError(self.reason)

    def generate_batch(self, request, seeds: Sequence[int], *, on_progress=None, should_cancel=None,
                       on_chunk=None) -> list[GeneratedAudio]:
        raise InferenceError(self.reason)


@dataclass
class PendingSwitch:
    spec: str
    reply_to: Destination
    job_id: str  # "" when the client sent none: status events only
    asked_at: float
    started: bool = False


class Serving(Protocol):
    """What a switch changes (bridge/jobs/pool.py:WorkerPool): the served engine and the spec it was loaded from;
    `load` runs the daemon's loader on the compute thread, `install` puts an engine in the pool and every worker."""

    engine: Engine
    spec: str

    def load(self, settings: Settings) -> Engine: ...

    def install(self, engine: Engine, spec: str) -> None: ...


class ModelSwitch:
    """One switch at a time. `answer(dest, models)` (the daemon's) sends the status and limits events, and with
    models the /continuo/models listing; what it switches comes to `run_pending` (a `Serving`)."""

    def __init__(self, *, settings: Settings, queue: JobQueue, journal: Journal, events: EventSink,
                 answer: Callable[[Destination, bool], None], free_bytes: Callable[[str], int] | None = None) -> None:
        self.settings, self.queue, self.journal, self.events = settings, queue, journal, events
        self.answer = answer
        self.free_bytes = free_bytes or default_free_bytes
        self._pending: PendingSwitch | None = None
        self._lock = threading.RLock()  # request answers under it; the answer reads `active`

    # -- the receive thread -------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """A switch waits or runs: jobs are admitted without model checks, status says loading."""
        with self._lock:
            return self._pending is not None

    @property
    def loading(self) -> bool:
        with self._lock:
            return self._pending is not None and self._pending.started

    def request(self, spec: str, reply_to: Destination, job_id: str, serving: Serving) -> None:
        """Switch serving to spec: refused for a cluster engine; done at once when spec already serves and no switch
        waits; else hold the queue and announce the switch: it runs in a worker's place once no job runs."""
        if self.settings.cluster:
            raise BadRequest("switching models is not built for a cluster engine (--cluster: each replica keeps "
                             f"its models, cluster_models_per_replica); restart with --model {spec}", job_id=job_id)
        engine = serving.engine
        if not isinstance(engine, UnloadedEngine) and spec in (serving.spec, engine.info.name) and not self.active:
            log.info("job=%s model %s is already served", job_id or "-", spec)
            if job_id:
                self.journal.insert_job(job_id, OP, {"model": spec}, reply_to)
                self.journal.finish(job_id, JobStatus.DONE, seed=0, elapsed_s=0.0)
                self.events.done(reply_to, job_id, 0, 0, 0.0)
            self.answer(reply_to, True)
            return
        with self._lock:
            if self._pending is not None:
                raise Busy(f"a switch to {self._pending.spec} is under way; send /continuo/model/load again after "
                           "its /continuo/status idle (or its done or error)", job_id=job_id)
            self._pending = PendingSwitch(spec, reply_to, job_id, time.monotonic())
            if job_id:
                self.journal.insert_job(job_id, OP, {"model": spec}, reply_to)
            self.queue.hold()
            log.info("job=%s model switch to %s asked; it runs before any waiting job", job_id or "-", spec)
            # answered under the lock, so the worker cannot start (and end) the switch before these events leave
            if job_id:
                self.events.queued(reply_to, job_id, 0, -1.0)
            self.answer(reply_to, False)

    def cancel(self, job_id: str) -> bool:
        """Cancel the switch job job_id before it starts (True); once loading it cannot be stopped (BadRequest)."""
        with self._lock:
            pending = self._pending
            if pending is None or not job_id or pending.job_id != job_id:
                return False
            if pending.started:
                raise BadRequest(f"the switch to {pending.spec} is loading and cannot be stopped midway; it ends "
                                 "with /continuo/done or /continuo/error", job_id=job_id)
            self._pending = None
            self.queue.release()
        self.finish(pending, "cancelled", "cancelled before it started; the old model stays served")
        return True

    def abandon(self) -> None:
        """At shutdown: a switch that has not started ends interrupted."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None and not pending.started:
            self.finish(pending, "interrupted", "the daemon stopped before the switch ran; send it again")

    # -- the worker's thread ------------------------------------------------------------------
    def run_pending(self, serving: Serving) -> None:
        """The workers' between-jobs turn: run the waiting switch, if any, on serving, then let the jobs go."""
        with self._lock:
            pending = self._pending
            if pending is None or pending.started:
                return
            pending.started = True
        try:
            code, message, elapsed_s = self.switch(pending, serving)
        finally:
            with self._lock:
                self._pending = None
                self.queue.release()
        self.finish(pending, code, message, elapsed_s=elapsed_s)  # on this thread: no job starts before it

    def switch(self, pending: PendingSwitch, serving: Serving) -> tuple[str, str, float]:
        """Load and install; (error code, message, seconds): code "" when the new model serves."""
        started = time.monotonic()
        old_info, old_spec = serving.engine.info, serving.spec  # no reference to the engine: a release-first
        # switch must be able to free it
        if pending.job_id:
            self.journal.set_status(pending.job_id, JobStatus.RUNNING)
        self.progress(pending, 0.0)
        try:
            order = self.plan_order(pending.spec, old_info)
            self.progress(pending, 0.1)
            new = self.load(serving, pending.spec) if order is SwitchOrder.BESIDE else self.load_after_release(
                serving, pending.spec, old_info, old_spec)
        except Exception as error:  # ModelLoadError, or anything a loader raises: the old model stays
            served = serving.engine
            # What still serves comes before the reason: a long reason is cut to fit the 1 KB error event
            still = "" if isinstance(served, UnloadedEngine) else f" (still serving {served.info.name})"
            message = f"could not load {pending.spec}{still}: {error}"
            log.warning("job=%s model switch failed: %s", pending.job_id or "-", message)
            return "model_error", message, time.monotonic() - started
        serving.install(new, pending.spec)  # the old engine's last references go here
        release_memory()
        elapsed = time.monotonic() - started
        log.info("job=%s model switch to %s (%s, %s) done in %.1f s (%s)", pending.job_id or "-", new.info.name,
                 new.info.family, new.info.device, elapsed, order.value)
        return "", "", elapsed

    def plan_order(self, spec: str, old: ModelInfo) -> SwitchOrder:
        """Resolve spec (a download happens here) and pick the memory order from its estimated size."""
        from inference.loading import resolve_model

        source = resolve_model(spec, tiny_dir=self.settings.smoke_model_dir.expanduser(), allow_tiny_fallback=False)
        device = old.device
        new_bytes = estimate_bytes(source.path, device)
        free = self.free_bytes(device)
        old_bytes = old.parameters * (2 if device.startswith("cuda") else 4)
        budget = int(self.settings.memory_budget_gb * GB)
        order = switch_order(new_bytes, free, old_bytes=old_bytes, budget_bytes=budget)
        log.info("model switch to %s: about %.2f GB to load on %s, %.2f GB free, budget %s: %s", spec,
                 new_bytes / GB, device, free / GB, f"{budget / GB:.2f} GB" if budget else "none", order.value)
        return order

    def load(self, serving: Serving, spec: str) -> Engine:
        return serving.load(dataclasses.replace(self.settings, model=spec, allow_smoke_model=False))

    def load_after_release(self, serving: Serving, spec: str, info: ModelInfo, old_spec: str) -> Engine:
        """Release the old engine (info: its description), load spec; on failure load old_spec again (or serve
        none) and re-raise."""
        serving.install(UnloadedEngine(info, f"the model is being switched to {spec}"), old_spec)
        release_memory()
        try:
            return self.load(serving, spec)
        except Exception as error:
            try:
                serving.install(self.load(serving, old_spec), old_spec)
            except Exception as reload_error:
                log.error("could not load %s again after the failed switch: %s", old_spec, reload_error)
                serving.install(UnloadedEngine(info, f"no model is loaded: the switch to {spec} failed ({error}) and "
                                                  f"{old_spec} could not be loaded again ({reload_error}); send "
                                                  "/continuo/model/load NAME"), old_spec)
            raise

    # -- events --------------------------------------------------------------------------------
    def progress(self, pending: PendingSwitch, fraction: float) -> None:
        if pending.job_id:
            self.events.progress(pending.reply_to, pending.job_id, fraction, STAGE)

    def finish(self, pending: PendingSwitch, code: str, message: str, *, elapsed_s: float = 0.0) -> None:
        """The switch's end: journal and done/error for a switch job; status (and models) or the error for all."""
        if code:
            status = {"cancelled": JobStatus.CANCELLED, "interrupted": JobStatus.INTERRUPTED}.get(code,
                                                                                                 JobStatus.FAILED)
            if pending.job_id:
                self.journal.finish(pending.job_id, status, error_code=code, error_message=message)
            self.events.error(pending.reply_to, pending.job_id, code, message)
            return
        if pending.job_id:
            self.journal.finish(pending.job_id, JobStatus.DONE, seed=0, elapsed_s=elapsed_s)
            self.events.done(pending.reply_to, pending.job_id, 0, 0, elapsed_s)
        self.answer(pending.reply_to, True)


def default_free_bytes(device: str) -> int:
    from inference.runtime.memory import free_memory_bytes

    return free_memory_bytes(device)


def release_memory() -> None:
    """Collect the released engine and give its memory back (CUDA's cached blocks, glibc's free heap). In a
    serving process the heap is frozen (inference.runtime.memory.freeze_heap): thawed first, so the old engine's
    cycles are collected too, and frozen again with what is alive now."""
    from inference.runtime.memory import freeze_heap, thaw_heap, trim_heap
    from inference.runtime.memory import release_memory as release_device_memory

    frozen = thaw_heap()
    release_device_memory()
    trim_heap()
    if frozen:
        freeze_heap()
