"""Restart recovery: the jobs the last run left queued or running in the journal.

At startup, before the transports open, each such job ends `interrupted` (its client learns it from /continuo/get
or a resend, as after any crash: the journal kept what it was told), unless its request asked for retries (the
`retries` setting): those are queued again, one retry used each time, their events going where the
journal says (a TCP client from before the restart has no connection left: bridge/transports/peers.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bridge.errors import Busy
from bridge.jobs.journal import JobRecord, Journal
from bridge.jobs.queue import Job, JobQueue, JobStatus, Priority

log = logging.getLogger("continuo.daemon")


def interrupt_unfinished(journal: Journal) -> list[JobRecord]:
    """Mark the last run's unfinished jobs interrupted; return those kept for a retry instead."""
    retry = []
    for job_id in journal.unfinished():
        record = journal.get(job_id)
        if record is not None and int(record.params.get("retries", 0)) > 0:
            retry.append(record)
            continue
        journal.finish(job_id, JobStatus.INTERRUPTED, error_code="interrupted",
                       error_message="the daemon stopped before this job finished; send it again with a new id")
        log.warning("job=%s interrupted by the last shutdown", job_id)
    return retry


def requeue(records: list[JobRecord], journal: Journal, queue: JobQueue,
            fail: Callable[[Job, str, str], None]) -> None:
    """Run interrupted jobs again that asked for retries (one retry used each time); fail one the queue refuses."""
    for record in records:
        params = {**record.params, "retries": int(record.params["retries"]) - 1}
        journal.update_params(record.job_id, params)
        journal.set_status(record.job_id, JobStatus.QUEUED)
        job = Job(job_id=record.job_id, op=record.op, params=params, reply_to=record.reply_to,
                  client_key=record.reply_to, priority=Priority(params.get("priority", "interactive")))
        try:
            queue.put(job)
        except Busy as exc:
            fail(job, "interrupted", f"not re-run after the restart: {exc.message}")
            continue
        log.warning("job=%s re-run after the last shutdown (%d retries left)", job.job_id, params["retries"])
