"""Jobs are data: a status enum, a dataclass per job, and a bounded FIFO queue.

A job is written to the journal before it is announced (see bridge/jobs/journal.py);
the queue only holds jobs the journal already knows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bridge.errors import Busy
from bridge.protocol.destinations import Destination


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class Priority(str, Enum):
    """live: MIDI-triggered, first in line; interactive: the default; batch: when nothing else waits."""

    LIVE = "live"
    INTERACTIVE = "interactive"
    BATCH = "batch"


@dataclass
class Job:
    """One request from a client; ``params`` is everything needed to run it again."""

    job_id: str
    op: str
    params: dict[str, Any]
    reply_to: Destination
    client_key: Destination
    status: JobStatus = JobStatus.QUEUED
    priority: Priority = Priority.INTERACTIVE
    slot: int | None = None  # a MIDI slot: a newer live job for the same slot replaces the waiting one
    lost_replicas: int = 0  # times its cluster replica died mid-take (re-queued once: Worker.requeue_lost)
    created_at: float = field(default_factory=time.time)
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


PRIORITY_ORDER = {Priority.LIVE: 0, Priority.INTERACTIVE: 1, Priority.BATCH: 2}


class JobQueue:
    """A bounded queue of waiting jobs that the worker threads drain (one per job the engine takes at once).

    Order: live before interactive before batch, first come first served within each.
    A live job with a slot replaces the live job waiting for the same slot (only the
    newest trigger of a pad matters); the replaced job goes to `on_superseded`, which
    reports it cancelled. A replacing live job never finds the queue full.
    """

    def __init__(self, max_length: int, *, on_superseded: Callable[[Job, Job], None] | None = None) -> None:
        self.max_length = max_length
        self._jobs: list[Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._held = False  # a model switch waits to run: get hands out no job (bridge/jobs/model_switch.py)
        self._on_superseded = on_superseded

    def put(self, job: Job, *, front: bool = False) -> int:
        """Enqueue and return the 1-based position; raises Busy when full.

        front: first of its priority (a job re-queued after its cluster replica died has waited already).
        """
        with self._cond:
            if self._closed:
                raise Busy("the daemon is shutting down; send the request again once it is back", job_id=job.job_id)
            replaced = self._same_slot(job)
            if replaced is None and len(self._jobs) >= self.max_length:
                raise Busy(
                    f"the queue is full ({self.max_length} jobs waiting); wait for a /continuo/done "
                    "or cancel a job, then send again",
                    job_id=job.job_id,
                )
            if replaced is not None:
                self._jobs.remove(replaced)
            rank = PRIORITY_ORDER[job.priority]
            index = next((i for i, other in enumerate(self._jobs)
                          if PRIORITY_ORDER[other.priority] > rank - (0.5 if front else 0)), len(self._jobs))
            self._jobs.insert(index, job)
            self._cond.notify_all()  # the live worker and the others wait on one condition
        if replaced is not None:
            replaced.cancel()
            if self._on_superseded is not None:
                self._on_superseded(replaced, job)
        return index + 1

    def _same_slot(self, job: Job) -> Job | None:
        if job.priority is not Priority.LIVE or job.slot is None:
            return None
        return next((other for other in self._jobs
                     if other.priority is Priority.LIVE and other.slot == job.slot), None)

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def hold(self) -> None:
        """Hand out no job until release (jobs are still taken in); a waiting get returns None at once, and a get
        while held waits for its timeout (no spinning), then returns None."""
        with self._cond:
            self._held = True
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def get(self, timeout_s: float | None = None, *, live_only: bool = False,
            accepts: Callable[[Job], bool] | None = None) -> Job | None:
        """Next job, or None when closed, held (or on timeout). live_only: the next live job (the worker kept
        for live jobs, so that one never waits behind a batch of others); accepts: the next job it accepts (the
        training worker and the others, bridge/jobs/pool.py)."""
        with self._cond:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while not self._closed:
                index = None if self._held else next(
                    (i for i, job in enumerate(self._jobs) if (not live_only or job.priority is Priority.LIVE)
                     and (accepts is None or accepts(job))), None)
                if index is not None:
                    return self._jobs.pop(index)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
                if self._held:  # held (now or while waiting): back to the worker, whose hook runs the switch
                    return None
            return None

    def remove(self, job_id: str) -> Job | None:
        with self._cond:
            for job in self._jobs:
                if job.job_id == job_id:
                    self._jobs.remove(job)
                    return job
            return None

    def drain(self) -> list[Job]:
        """Close the queue and hand back every job still waiting."""
        with self._cond:
            self._closed = True
            jobs = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
            return jobs

    def waiting(self) -> list[Job]:
        """Waiting jobs in the order they will run."""
        with self._cond:
            return list(self._jobs)

    def __len__(self) -> int:
        with self._cond:
            return len(self._jobs)
