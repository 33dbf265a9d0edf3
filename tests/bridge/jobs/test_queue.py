import threading

import pytest

from bridge.errors import Busy
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.queue import Job, JobQueue, JobStatus


def make_job(job_id: str) -> Job:
    return Job(job_id=job_id, op="generate", params={"bars": 1.0}, reply_to=("127.0.0.1", 9001),
               client_key=("127.0.0.1", 5555))


def test_queue_is_fifo_and_bounded():
    queue = JobQueue(max_length=2)
    assert queue.put(make_job("a")) == 1
    assert queue.put(make_job("b")) == 2
    with pytest.raises(Busy) as info:
        queue.put(make_job("c"))
    assert info.value.job_id == "c" and "full" in info.value.message
    assert [queue.get(0).job_id, queue.get(0).job_id] == ["a", "b"]
    assert queue.get(timeout_s=0.01) is None


def test_remove_and_drain():
    queue = JobQueue(max_length=5)
    for name in "abc":
        queue.put(make_job(name))
    assert queue.remove("b").job_id == "b"
    assert queue.remove("zz") is None
    assert [j.job_id for j in queue.drain()] == ["a", "c"]
    assert queue.get() is None  # closed: a waiting worker is released
    with pytest.raises(Busy, match="shutting down"):
        queue.put(make_job("d"))


def test_get_blocks_until_put():
    queue = JobQueue(max_length=1)
    got = []
    thread = threading.Thread(target=lambda: got.append(queue.get(timeout_s=5)))
    thread.start()
    queue.put(make_job("late"))
    thread.join(5)
    assert got and got[0].job_id == "late"


def test_terminal_statuses():
    assert not JobStatus.QUEUED.terminal and not JobStatus.RUNNING.terminal
    assert all(s.terminal for s in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED))


def test_journal_round_trip_and_survives_reopen(tmp_path):
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    assert journal.insert_job("job-1", "generate", {"bars": 8.0}, ("127.0.0.1", 9001))
    assert not journal.insert_job("job-1", "generate", {"bars": 4.0}, ("127.0.0.1", 9001))  # idempotent id
    journal.set_status("job-1", JobStatus.RUNNING)
    out = OutputRecord("mix", "/r/job-1/mix.wav", 48000, 2, 16.0, 8.0, -14.1, -1.2)
    journal.add_output("job-1", out)
    journal.add_output("job-1", OutputRecord("drums", "/r/job-1/drums.wav", 48000, 2, 16.0, 8.0, -16.0, -3.0))
    journal.finish("job-1", JobStatus.DONE, seed=42, elapsed_s=3.5)
    journal.close()

    record = Journal(path).get("job-1")
    assert record.status is JobStatus.DONE and record.seed == 42 and record.elapsed_s == 3.5
    assert record.params == {"bars": 8.0}
    assert [o.name for o in record.outputs] == ["mix", "drums"]
    assert record.outputs[0] == out
    assert out.event_args("job-1")[:3] == ["job-1", "mix", "/r/job-1/mix.wav"]


def test_journal_lists_unfinished_jobs(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    for job_id in ("a", "b", "c"):
        journal.insert_job(job_id, "generate", {}, ("127.0.0.1", 1))
    journal.set_status("b", JobStatus.RUNNING)
    journal.finish("c", JobStatus.FAILED, error_code="model_error", error_message="boom")
    assert journal.unfinished() == ["a", "b"]
    failed = journal.get("c")
    assert (failed.error_code, failed.error_message) == ("model_error", "boom")
    assert journal.get("nope") is None
