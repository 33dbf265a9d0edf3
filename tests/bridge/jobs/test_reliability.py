"""Terminal re-sends until ack, priorities and live slots, the rate limit: no sockets (retention: test_retention.py)."""

from __future__ import annotations

import threading
import time

import pytest

from bridge.errors import Busy
from bridge.jobs.events import EventSink
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.queue import Job, JobQueue, Priority
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


def test_journal_stores_a_stream_peer_as_transport_and_host(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    journal.insert_job("t1", "generate", {"bars": 1.0}, Peer("127.0.0.1", 5000, "tcp", 3))
    assert journal.get("t1").reply_to == ("tcp:127.0.0.1", 5000)
    journal.close()


