"""Terminal re-sends until ack, priorities and live slots, retention, the rate limit: no sockets."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from bridge.errors import Busy
from bridge.jobs.events import EventSink
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.queue import Job, JobQueue, JobStatus, Priority
from bridge.jobs.retention import RetentionTimer, prune_inline_inputs, prune_jobs
from bridge.protocol.schema import Event, load_schema
from bridge.transports.limits import RateLimiter
from bridge.transports.peers import Peer, Router

SCHEMA = load_schema()
DEST = ("127.0.0.1", 9001)
OUTPUT = OutputRecord("mix", "/tmp/x/mix.wav", 48000, 2, 2.0, 1.0, -14.0, -1.0)


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[object, str, list]] = []
        self.cond = threading.Condition()

    def __call__(self, dest, event: Event) -> None:
        with self.cond:
            self.sent.append((dest, event.address, list(event.values)))
            self.cond.notify_all()

    def count(self, address: str) -> int:
        with self.cond:
            return sum(1 for _, a, _ in self.sent if a == address)

    def wait(self, address: str, count: int, timeout_s: float = 5.0) -> int:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while self.count(address) < count and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
        return self.count(address)


@pytest.fixture
def wire():
    return Wire()


def test_terminal_events_are_resent_until_ack(wire):
    sink = EventSink(SCHEMA, wire, resends=3, resend_interval_s=0.05)
    try:
        sink.queued(DEST, "j1", 1, 0.0)
        sink.output(DEST, "j1", OUTPUT)
        sink.done(DEST, "j1", 1, 42, 1.0)
        assert wire.wait("/continuo/done", 2) == 2  # first send + one re-send
        assert wire.count("/continuo/output") == 2  # outputs go with it
        assert sink.ack("j1") is True
        time.sleep(0.5)
        assert wire.count("/continuo/done") == 2 and sink.pending_acks() == 0
    finally:
        sink.stop()


def test_resends_stop_after_the_configured_tries(wire):
    sink = EventSink(SCHEMA, wire, resends=2, resend_interval_s=0.02)
    try:
        sink.queued(DEST, "j2", 1, 0.0)
        sink.error(DEST, "j2", "model_error", "boom")
        assert wire.wait("/continuo/error", 3) == 3
        time.sleep(0.3)
        assert wire.count("/continuo/error") == 3 and sink.pending_acks() == 0
    finally:
        sink.stop()


def test_rejections_and_replays_are_sent_once(wire):
    sink = EventSink(SCHEMA, wire, resends=3, resend_interval_s=0.02)
    try:
        sink.error(DEST, "never-queued", "bad_request", "bars must be positive")
        sink.done(DEST, "old", 0, 1, 1.0, replay=True)
        time.sleep(0.3)
        assert wire.count("/continuo/error") == 1 and wire.count("/continuo/done") == 1
        assert sink.ack("never-queued") is False
    finally:
        sink.stop()


def test_router_sends_peers_to_their_transport():
    seen = []
    router = Router(lambda dest, event: seen.append(("udp", dest, event.address, event.values)))
    router.register("tcp", lambda dest, event: seen.append(("tcp", dest.conn, event.address, event.values)))
    router.send(("127.0.0.1", 1), SCHEMA.check_event("/continuo/pong", 1))
    router.send(Peer("127.0.0.1", 2, "tcp", 7), SCHEMA.check_event("/continuo/pong", 2))
    router.send(Peer("127.0.0.1", 3, "zmq", b"id"), SCHEMA.check_event("/continuo/pong", 3))  # no zmq: dropped, logged
    assert seen == [("udp", ("127.0.0.1", 1), "/continuo/pong", (1,)), ("tcp", 7, "/continuo/pong", (2,))]


def test_clients_restored_from_the_journal_reach_pub_not_a_udp_port():
    seen = []
    router = Router(lambda dest, event: seen.append(("udp", dest)))
    router.register("zmq", lambda dest, event: seen.append(("zmq", dest)))
    router.register("tcp", lambda dest, event: seen.append(("tcp", dest)))
    pong = SCHEMA.check_event("/continuo/pong", 1)
    router.send(("zmq:127.0.0.1", 5570), pong)  # a re-run job's ZeroMQ client: publish only
    router.send(("tcp:127.0.0.1", 9000), pong)  # its TCP connection is gone: dropped
    router.send(("::1", 9000), pong)  # IPv6 is still UDP
    assert seen == [("zmq", None), ("udp", ("::1", 9000))]


def job(job_id: str, priority: Priority = Priority.INTERACTIVE, slot: int | None = None) -> Job:
    return Job(job_id=job_id, op="generate", params={"bars": 1.0}, reply_to=DEST, client_key=DEST,
               priority=priority, slot=slot)


def test_live_before_interactive_before_batch_fifo_within():
    queue = JobQueue(10)
    queue.put(job("b1", Priority.BATCH))
    queue.put(job("i1"))
    queue.put(job("b2", Priority.BATCH))
    assert queue.put(job("l1", Priority.LIVE)) == 1
    assert queue.put(job("i2")) == 3
    assert [j.job_id for j in queue.waiting()] == ["l1", "i1", "i2", "b1", "b2"]
    assert [queue.get(0).job_id for _ in range(5)] == ["l1", "i1", "i2", "b1", "b2"]


def test_only_the_newest_live_job_per_slot_waits():
    superseded = []
    queue = JobQueue(2, on_superseded=lambda old, new: superseded.append((old.job_id, new.job_id)))
    queue.put(job("pad3-a", Priority.LIVE, slot=3))
    queue.put(job("pad4-a", Priority.LIVE, slot=4))
    assert queue.put(job("pad3-b", Priority.LIVE, slot=3)) == 2  # replaces, so a full queue still takes it
    assert superseded == [("pad3-a", "pad3-b")]
    assert [j.job_id for j in queue.waiting()] == ["pad4-a", "pad3-b"]
    with pytest.raises(Busy):
        queue.put(job("pad5", Priority.LIVE, slot=5))


def test_rate_limiter_is_a_token_bucket_per_client():
    limiter = RateLimiter(10.0)
    allowed = sum(limiter.allow("a", now=100.0) for _ in range(30))
    assert allowed == 10  # the burst
    assert limiter.allow("b", now=100.0)  # another client has its own bucket
    assert limiter.allow("a", now=100.2) and limiter.allow("a", now=100.2)  # 0.2 s refills 2
    assert not limiter.allow("a", now=100.2)
    assert RateLimiter(0).allow("x")  # 0 turns it off


def finished(journal: Journal, job_id: str, root: Path, updated_ago_s: float = 0.0) -> Path:
    journal.insert_job(job_id, "generate", {"bars": 1.0}, DEST)
    folder = root / job_id
    folder.mkdir(parents=True)
    (folder / "mix.wav").write_bytes(b"RIFF")
    journal.add_output(job_id, OutputRecord("mix", (folder / "mix.wav").as_posix(), 48000, 2, 2.0, 1.0, -14, -1))
    journal.finish(job_id, JobStatus.DONE, seed=1, elapsed_s=1.0)
    if updated_ago_s:
        journal._write("UPDATE jobs SET updated_at = ? WHERE job_id = ?", (time.time() - updated_ago_s, job_id))
    return folder


def test_retention_removes_old_and_excess_jobs_with_their_files(tmp_path):
    root = tmp_path / "renders"
    journal = Journal(tmp_path / "journal.sqlite3")
    old = finished(journal, "old-1", root, updated_ago_s=3600)
    newer = [finished(journal, f"new-{i}", root, updated_ago_s=10 - i) for i in range(4)]
    journal.insert_job("waiting", "generate", {"bars": 1.0}, DEST)  # never pruned while queued
    removed = prune_jobs(journal, root, max_age_s=600, max_jobs=2)
    assert sorted(removed) == ["new-0", "new-1", "old-1"]
    assert not old.exists() and not newer[0].exists() and not newer[1].exists()
    assert newer[2].exists() and newer[3].exists()
    assert journal.get("old-1") is None and journal.get("new-3") is not None
    assert journal.get("waiting").status is JobStatus.QUEUED
    journal.close()


def test_retention_never_follows_a_symlinked_job_folder(tmp_path):
    root = tmp_path / "renders"
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.wav").write_bytes(b"RIFF")
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.insert_job("evil", "generate", {"bars": 1.0}, DEST)
    journal.finish("evil", JobStatus.DONE)
    root.mkdir()
    (root / "evil").symlink_to(outside, target_is_directory=True)
    assert prune_jobs(journal, root, max_age_s=0, max_jobs=0) == ["evil"]
    assert (outside / "keep.wav").exists()
    journal.close()


def test_old_inline_inputs_leave_the_inbox_and_user_files_stay(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    old, fresh = inbox / "zmq-job-1-aaaa.wav", inbox / "zmq-job-2-bbbb.wav"
    mine = inbox / "my-clip.wav"
    for path in (old, fresh, mine):
        path.write_bytes(b"RIFF")
    day_ago = time.time() - 90_000
    os.utime(old, (day_ago, day_ago))
    os.utime(mine, (day_ago, day_ago))
    (inbox / "zmq-link-cccc.wav").symlink_to(mine)
    assert prune_inline_inputs(inbox, max_age_s=86400) == 1
    assert not old.exists() and fresh.exists() and mine.exists() and (inbox / "zmq-link-cccc.wav").is_symlink()
    assert prune_inline_inputs(tmp_path / "no-inbox-yet", max_age_s=0) == 0


def test_a_retention_pass_covers_jobs_and_the_inbox(tmp_path):
    root, inbox = tmp_path / "renders", tmp_path / "inbox"
    journal = Journal(tmp_path / "journal.sqlite3")
    folder = finished(journal, "old-1", root, updated_ago_s=3600)
    inbox.mkdir()
    upload = inbox / "zmq-old-1-dddd.wav"
    upload.write_bytes(b"RIFF")
    two_hours_ago = time.time() - 7200
    os.utime(upload, (two_hours_ago, two_hours_ago))
    RetentionTimer(journal, root, max_age_s=600, max_jobs=10, inbox=inbox).prune()  # inputs: min(600 s, a day)
    assert not folder.exists() and not upload.exists()
    journal.close()


def test_journal_stores_a_stream_peer_as_transport_and_host(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    journal.insert_job("t1", "generate", {"bars": 1.0}, Peer("127.0.0.1", 5000, "tcp", 3))
    assert journal.get("t1").reply_to == ("tcp:127.0.0.1", 5000)
    journal.close()


def test_left_over_partials_are_removed_and_finished_files_kept(tmp_path):
    from bridge.jobs.retention import remove_partials

    (tmp_path / "job-1").mkdir()
    (tmp_path / "job-1" / ".mix.wav.partial").write_bytes(b"half")
    (tmp_path / "job-1" / "mix.wav").write_bytes(b"RIFF")
    assert remove_partials(tmp_path) == 1
    assert sorted(p.name for p in (tmp_path / "job-1").iterdir()) == ["mix.wav"]
