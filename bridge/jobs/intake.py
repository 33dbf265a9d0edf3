"""A job request until a worker takes it: admitted, journalled, queued and announced; or answered with the job its
id already names; or cancelled wherever it is.

`Intake.submit`: a new id is checked (bridge/jobs/admission.py:admit: count, plan, rules, input files,
capabilities, length, queue room; the model's checks wait for the job's start while a switch is under way),
journalled before it is announced, queued, and announced with its position and ETA. An id the daemon knows
(bridge/jobs/job_ids.py) is never rendered twice: the same request again is a resend, told where its job is
(`Intake.report`: its events replayed, or where its files went), anything else is id_conflict. `Intake.cancel`
finds the job wherever it is: a model switch's that has not started, a waiting one (failed `cancelled` at
once), a running one (its worker stops at the next step); otherwise it replays how the job ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bridge.audio.context import MusicalContext
from bridge.audio.presets import Preset
from bridge.errors import BadRequest, NotFound
from bridge.jobs.admission import admit
from bridge.jobs.events import EventSink
from bridge.jobs.job_ids import check_resend, files_gone, find_job
from bridge.jobs.journal import JobRecord, Journal
from bridge.jobs.listening import Listening
from bridge.jobs.model_switch import ModelSwitch
from bridge.jobs.outputs import made_context
from bridge.jobs.pool import WorkerPool
from bridge.jobs.queue import Job, JobQueue, Priority
from bridge.protocol.destinations import Destination
from bridge.settings import Settings

log = logging.getLogger("continuo.daemon")


class Intake:
    def __init__(self, *, settings: Settings, journal: Journal, events: EventSink, queue: JobQueue,
                 pool: WorkerPool, switch: ModelSwitch, presets: Callable[[], Mapping[str, Preset]],
                 input_roots: list[Path], output_root: Path, listening: Listening | None = None) -> None:
        self.settings, self.journal, self.events, self.queue = settings, journal, events, queue
        self.pool, self.switch, self.presets = pool, switch, presets
        self.input_roots, self.output_root = input_roots, output_root
        self.listening = listening

    def submit(self, op: str, job_id: str, args: Mapping[str, Any], settings: Mapping[str, Any], *,
               context: MusicalContext, reply_to: Destination, client_key: Destination,
               priority: Priority = Priority.INTERACTIVE, slot: int | None = None, retries: int = 0,
               tempo_given: bool = True) -> Job | None:
        """The queued job, or None when job_id named one already (a resend: reported); raises the refusal. The
        tempo, in order: the request's settings, the manifest of an input Continuo made (input_context), the
        session's when it set one (tempo_given), else the tempo heard in the input, told right after `queued`
        (bridge/jobs/listening.py)."""
        made = self.input_context(job_id, args, settings, context)
        tempo_given = tempo_given or made is not context  # a file Continuo made keeps its own tempo, not one heard
        context = made
        existing = self.find(job_id)
        if existing is not None:  # a resend is told where its job is; another request gets id_conflict
            check_resend(existing, op, args, settings, context)
            self.report(existing, reply_to)
            return None
        heard = self.listening.infer(op, args, settings, tempo_given=tempo_given) if self.listening else None
        admitted = admit(op, job_id, args, settings, context=context, presets=self.presets(),
                         input_roots=self.input_roots, limits=self.settings,
                         model=None if self.switch.active else self.pool.engine.info,  # a switch: checked at start
                         queue=self.queue, priority=priority, slot=slot, retries=retries,
                         inferred=heard[0] if heard else None)
        job = Job(job_id=job_id, op=op, params=admitted.params, reply_to=reply_to, client_key=client_key,
                  priority=priority, slot=slot)
        self.journal.insert_job(job.job_id, job.op, job.params, job.reply_to)
        position = self.queue.put(job)
        self.events.queued(job.reply_to, job.job_id, position, self.pool.eta_s(position))
        if heard is not None and self.listening is not None:
            self.listening.send(job.reply_to, job.job_id, heard[1], heard[2])
            log.info("job=%s inferred from the input: %s", job.job_id, heard[0])
        log.info("job=%s queued op=%s preset=%s bars=%g position=%d priority=%s", job.job_id, job.op,
                 admitted.plan.preset.name, admitted.plan.bars, position, priority.value)
        return job

    def input_context(self, job_id: str, args: Mapping[str, Any], settings: Mapping[str, Any],
                      context: MusicalContext) -> MusicalContext:
        """The session's context, with the tempo, metre and key of an input file Continuo made (its manifest)
        where the request's settings do not name them."""
        made = made_context(str(args.get("input_path") or ""), self.output_root) if args.get("input_path") else None
        if not made:
            return context
        changes = {key: value for key, value in made.items() if key not in settings}
        if changes:
            log.info("job=%s %s from its input's manifest", job_id,
                     ", ".join(f"{key} {value}" for key, value in changes.items()))
        return context.replace(**changes)

    def find(self, job_id: str) -> JobRecord | None:
        """The job job_id names: its journal row, else its folder (or its folder in the trash)."""
        return find_job(self.journal, self.output_root, job_id)

    def get(self, job_id: str, reply_to: Destination) -> None:
        """/continuo/get: report the job, or NotFound."""
        record = self.find(job_id)
        if record is None:
            raise NotFound(f"no job {job_id!r} in the journal or under {self.output_root}", job_id=job_id)
        self.report(record, reply_to)

    def report(self, record: JobRecord, reply_to: Destination) -> None:
        """Where a known job is: its end replayed (or where its files went), else its place in the queue."""
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
        self.events.queued(reply_to, record.job_id, position, self.pool.eta_s(position))

    def cancel(self, job_id: str, reply_to: Destination, *, quiet: bool) -> None:
        """Cancel job_id wherever it is; one that already ended is replayed (quiet: nothing is said)."""
        if self.switch.cancel(job_id):  # a model switch job that has not started
            return
        job = self.queue.remove(job_id)
        if job is not None:
            job.cancel()
            self.pool.fail(job, "cancelled", "cancelled before it started")
            return
        running = next((job for job in self.pool.running_jobs() if job.job_id == job_id), None)
        if running is not None:
            running.cancel()  # the worker reports `cancelled` after the current step
            return
        if not quiet:
            record = self.journal.get(job_id)
            if record is None:
                raise BadRequest(f"no job {job_id!r} to cancel", job_id=job_id)
            self.events.replay(reply_to, record)
