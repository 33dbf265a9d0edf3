"""bridge/jobs/recovery.py over a real Journal and JobQueue: what a restart does with the last run's unfinished
jobs (tests/e2e/test_daemon.py restarts a real daemon for the same)."""

from __future__ import annotations

import pytest

from bridge.jobs.journal import Journal
from bridge.jobs.queue import JobQueue, JobStatus
from bridge.jobs.recovery import interrupt_unfinished, requeue

SENDER = ("127.0.0.1", 41000)


@pytest.fixture
def journal(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    yield journal
    journal.close()


def unfinished(journal: Journal, job_id: str, status: JobStatus, **params) -> None:
    journal.insert_job(job_id, "generate", {"preset": "default", **params}, SENDER)
    journal.set_status(job_id, status)


def test_unfinished_jobs_end_interrupted_unless_they_asked_for_retries(journal):
    unfinished(journal, "ran", JobStatus.RUNNING)
    unfinished(journal, "waited", JobStatus.QUEUED)
    unfinished(journal, "again", JobStatus.RUNNING, retries=2)
    journal.insert_job("done", "generate", {}, SENDER)
    journal.finish("done", JobStatus.DONE, seed=1, elapsed_s=1.0)
    retry = interrupt_unfinished(journal)
    assert [record.job_id for record in retry] == ["again"]
    for job_id in ("ran", "waited"):
        record = journal.get(job_id)
        assert record.status is JobStatus.INTERRUPTED and record.error_code == "interrupted"
    assert journal.get("again").status is JobStatus.RUNNING and journal.get("done").status is JobStatus.DONE


def test_a_retried_job_is_queued_again_with_one_retry_used(journal):
    unfinished(journal, "again", JobStatus.RUNNING, retries=2, priority="batch")
    queue, failed = JobQueue(4), []
    requeue(interrupt_unfinished(journal), journal, queue, lambda *args: failed.append(args))
    (job,) = queue.waiting()
    assert job.job_id == "again" and job.params["retries"] == 1 and job.priority.value == "batch"
    assert journal.get("again").status is JobStatus.QUEUED and journal.get("again").params["retries"] == 1
    assert failed == []


def test_a_retried_job_the_queue_has_no_room_for_fails_interrupted(journal):
    unfinished(journal, "again", JobStatus.RUNNING, retries=1)
    queue, failed = JobQueue(0), []
    requeue(interrupt_unfinished(journal), journal, queue, lambda job, code, message: failed.append((job.job_id, code)))
    assert failed == [("again", "interrupted")] and queue.waiting() == []
