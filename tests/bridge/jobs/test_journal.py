"""The job journal: what it keeps of a job from acceptance to its end, and what survives a crash and a reopen."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from bridge.errors import IoError
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.queue import JobStatus

REPO = Path(__file__).resolve().parents[3]
SENDER = ("127.0.0.1", 41000)
PARAMS = {"preset": "default", "prompt": "warm piano", "bars": 1.0, "settings": {"seed": 7}}


def output(name: str, index: int = 0) -> OutputRecord:
    return OutputRecord(name=name, path=f"/renders/job/{name}.wav", sample_rate=48000, channels=2,
                        seconds=2.0 + index, bars=1.0, lufs=-14.0 - index, peak_db=-1.0)


@pytest.fixture
def journal(tmp_path):
    opened = Journal(tmp_path / "journal.sqlite3")
    yield opened
    opened.close()


def test_an_inserted_job_is_queued_with_its_params_and_reply_address(journal):
    assert journal.insert_job("job-1", "generate", PARAMS, SENDER) is True
    record = journal.get("job-1")
    assert (record.job_id, record.op, record.params, record.reply_to) == ("job-1", "generate", PARAMS, SENDER)
    assert record.status is JobStatus.QUEUED and record.outputs == ()
    assert (record.seed, record.elapsed_s, record.error_code, record.error_message) == (None, None, None, None)
    assert record.created_at <= record.updated_at


def test_a_known_id_is_not_inserted_again(journal):
    journal.insert_job("job-1", "generate", PARAMS, SENDER)
    assert journal.insert_job("job-1", "continue", {"other": True}, ("127.0.0.1", 1)) is False
    record = journal.get("job-1")
    assert (record.op, record.params, record.reply_to) == ("generate", PARAMS, SENDER)
    assert journal.count() == 1


def test_an_unknown_id_is_none(journal):
    assert journal.get("nobody") is None


class FakePeer(NamedTuple):
    """Shaped like bridge.transports.peers.Peer: a connection that ends with the daemon."""

    host: str
    port: int
    transport: str
    conn: int


def test_a_tcp_peer_reply_address_names_the_transport(journal):
    journal.insert_job("tcp-1", "generate", PARAMS, FakePeer("127.0.0.1", 5000, "tcp", 3))
    assert journal.get("tcp-1").reply_to == ("tcp:127.0.0.1", 5000)


def test_status_changes_and_a_finish_with_seed_and_elapsed(journal):
    journal.insert_job("job-1", "generate", PARAMS, SENDER)
    journal.set_status("job-1", JobStatus.RUNNING)
    assert journal.get("job-1").status is JobStatus.RUNNING
    journal.finish("job-1", JobStatus.DONE, seed=1234, elapsed_s=0.75)
    record = journal.get("job-1")
    assert record.status is JobStatus.DONE and (record.seed, record.elapsed_s) == (1234, 0.75)
    assert record.error_code is None and record.error_message is None


@pytest.mark.parametrize("status, code", [(JobStatus.FAILED, "model_error"), (JobStatus.CANCELLED, "cancelled"),
                                          (JobStatus.INTERRUPTED, "interrupted")])
def test_a_finish_with_an_error_keeps_code_and_message(journal, status, code):
    journal.insert_job("job-1", "generate", PARAMS, SENDER)
    journal.finish("job-1", status, error_code=code, error_message="what happened; what to do")
    record = journal.get("job-1")
    assert record.status is status and (record.error_code, record.error_message) == (code,
                                                                                     "what happened; what to do")
    assert record.seed is None and record.elapsed_s is None


def test_outputs_come_back_in_the_order_they_were_added(journal):
    journal.insert_job("job-1", "generate", PARAMS, SENDER)
    names = ["mix", "drums", "bass", "other", "vocals", "mix-tail"]
    for index, name in enumerate(names):
        journal.add_output("job-1", output(name, index))
    record = journal.get("job-1")
    assert [o.name for o in record.outputs] == names
    assert record.outputs[2] == output("bass", 2)
    assert record.outputs[0].event_args("job-1") == ["job-1", "mix", "/renders/job/mix.wav", 48000, 2, 2.0, 1.0,
                                                     -14.0, -1.0]


def test_outputs_of_two_jobs_are_kept_apart(journal):
    for job_id in ("a", "b"):
        journal.insert_job(job_id, "generate", PARAMS, SENDER)
    journal.add_output("a", output("mix"))
    journal.add_output("b", output("variation-1"))
    journal.add_output("a", output("mix-tail", 1))
    assert [o.name for o in journal.get("a").outputs] == ["mix", "mix-tail"]
    assert [o.name for o in journal.get("b").outputs] == ["variation-1"]


def test_an_output_for_an_unknown_job_is_an_io_error(journal):
    with pytest.raises(IoError) as info:
        journal.add_output("nobody", output("mix"))
    assert info.value.code == "io_error" and "journal" in str(info.value)


def test_update_params_replaces_the_params(journal):
    journal.insert_job("job-1", "generate", PARAMS, SENDER)
    before = journal.get("job-1")
    journal.update_params("job-1", {**PARAMS, "retries": 0})
    after = journal.get("job-1")
    assert after.params == {**PARAMS, "retries": 0} and after.updated_at >= before.updated_at
    assert after.status is JobStatus.QUEUED  # only the params change


def test_unfinished_lists_queued_and_running_jobs_oldest_first(journal):
    for job_id in ("first", "second", "third", "fourth"):
        journal.insert_job(job_id, "generate", PARAMS, SENDER)
    journal.set_status("second", JobStatus.RUNNING)
    journal.finish("third", JobStatus.DONE, seed=1, elapsed_s=0.1)
    assert journal.unfinished() == ["first", "second", "fourth"]


CRASH = """
import os, sys
from pathlib import Path
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.queue import JobStatus
journal = Journal(Path(sys.argv[1]))
params = {"preset": "default", "prompt": "x", "bars": 1.0}
for job_id in ("waiting", "running", "finished", "failed"):
    journal.insert_job(job_id, "generate", params, ("127.0.0.1", 41000))
journal.set_status("running", JobStatus.RUNNING)
journal.set_status("finished", JobStatus.RUNNING)
for name in ("mix", "mix-tail"):
    journal.add_output("finished", OutputRecord(name, f"/renders/finished/{name}.wav", 48000, 2, 2.0, 1.0, -14.0, -1.0))
journal.finish("finished", JobStatus.DONE, seed=99, elapsed_s=1.5)
journal.finish("failed", JobStatus.FAILED, error_code="model_error", error_message="the model broke")
os._exit(9)  # no close, no checkpoint: like kill -9
"""


def test_after_a_crash_a_reopened_journal_knows_unfinished_jobs_and_replays_finished_ones(tmp_path):
    path = tmp_path / "renders" / "journal.sqlite3"
    crashed = subprocess.run([sys.executable, "-c", CRASH, str(path)], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
    assert crashed.returncode == 9, crashed.stderr
    journal = Journal(path)
    try:
        assert journal.unfinished() == ["waiting", "running"]
        finished = journal.get("finished")
        assert finished.status is JobStatus.DONE and (finished.seed, finished.elapsed_s) == (99, 1.5)
        assert [(o.name, o.path) for o in finished.outputs] == [("mix", "/renders/finished/mix.wav"),
                                                                 ("mix-tail", "/renders/finished/mix-tail.wav")]
        failed = journal.get("failed")
        assert failed.status is JobStatus.FAILED and failed.error_code == "model_error"
        assert failed.error_message == "the model broke" and failed.outputs == ()
        assert journal.get("waiting").params == {"preset": "default", "prompt": "x", "bars": 1.0}
    finally:
        journal.close()


def test_a_closed_and_reopened_journal_keeps_everything(tmp_path):
    path = tmp_path / "journal.sqlite3"
    first = Journal(path)
    first.insert_job("job-1", "generate", PARAMS, SENDER)
    first.add_output("job-1", output("mix"))
    first.finish("job-1", JobStatus.DONE, seed=5, elapsed_s=0.2)
    kept = first.get("job-1")
    first.close()
    second = Journal(path)
    try:
        assert second.get("job-1") == kept
    finally:
        second.close()


def test_a_missing_file_and_folders_are_created(tmp_path):
    path = tmp_path / "not" / "yet" / "journal.sqlite3"
    journal = Journal(path)
    try:
        assert path.is_file() and journal.count() == 0
    finally:
        journal.close()


def test_a_file_that_is_not_a_journal_is_an_io_error_naming_it(tmp_path):
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not an SQLite database, just some bytes" * 100)
    with pytest.raises(IoError) as info:
        Journal(path)
    message = str(info.value)
    assert str(path) in message and "writable" in message  # names the file and what to check


def test_a_folder_that_cannot_be_made_is_an_io_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(IoError) as info:
        Journal(blocker / "journal.sqlite3")
    assert "cannot open the job journal" in str(info.value)


def test_expired_finds_old_and_surplus_finished_jobs_never_unfinished_ones(journal):
    for job_id in ("old", "newer", "newest", "waiting", "running"):
        journal.insert_job(job_id, "generate", PARAMS, SENDER)
    journal.add_output("old", output("mix"))
    for job_id in ("old", "newer", "newest"):
        journal.finish(job_id, JobStatus.DONE, seed=1, elapsed_s=0.1)
        time.sleep(0.002)  # distinct finish times: expired orders by them
    journal.set_status("running", JobStatus.RUNNING)
    now = journal.get("newest").updated_at
    assert journal.expired(max_age_s=3600, max_jobs=100, now=now) == []
    assert journal.expired(max_age_s=3600, max_jobs=2, now=now) == ["old"]  # three finished: the oldest
    assert journal.expired(max_age_s=0.0005, max_jobs=0, now=now) == ["old", "newer"]  # by age, oldest first
    assert journal.expired(max_age_s=0, max_jobs=0, now=now + 1e6) == []  # 0: each rule off
    journal.mark_used("old")  # fetched just now: young again
    assert journal.expired(max_age_s=3600, max_jobs=2, now=now) == ["newer"]
    assert journal.forget(["newer", "waiting", "running"]) == 1  # never an unfinished job
    assert journal.get("newer") is None and journal.get("waiting") is not None
    journal.insert_job("newer", "generate", PARAMS, SENDER)
    assert journal.get("newer").outputs == ()
    assert sorted(journal.unfinished()) == ["newer", "running", "waiting"]


def test_a_journal_from_before_used_at_gains_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_WITHOUT_USED_AT)
    db.execute("INSERT INTO jobs VALUES ('j', 'generate', '{}', 'h', 1, 'done', 1, 1, 1, 1, NULL, NULL)")
    db.commit()
    db.close()
    journal = Journal(path)
    assert journal.get("j").used_at is None
    journal.mark_used("j")
    assert journal.get("j").used_at > 0
    journal.close()


SCHEMA_WITHOUT_USED_AT = """CREATE TABLE jobs (job_id TEXT PRIMARY KEY, op TEXT NOT NULL, params TEXT NOT NULL,
    reply_host TEXT NOT NULL, reply_port INTEGER NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, seed INTEGER, elapsed_s REAL, error_code TEXT, error_message TEXT);"""


def test_writes_from_many_threads_all_land(journal):
    def insert(thread: int) -> None:
        for index in range(50):
            journal.insert_job(f"t{thread}-{index}", "generate", PARAMS, SENDER)
            journal.set_status(f"t{thread}-{index}", JobStatus.RUNNING)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert journal.count() == 200 and len(journal.unfinished()) == 200
