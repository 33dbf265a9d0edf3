"""EventSink: progress throttling, terminal re-sends until ack, replays, events that break the schema."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import bridge.jobs.events as events_module
from bridge.jobs.events import EventSink
from bridge.jobs.journal import JobRecord, OutputRecord
from bridge.jobs.queue import JobStatus
from bridge.protocol.schema import Event, load_schema

SCHEMA = load_schema()
DEST = ("127.0.0.1", 9001)
MIX = OutputRecord("mix", "/tmp/x/j1/mix.wav", 48000, 2, 2.0, 1.0, -14.0, -1.0)
DRUMS = OutputRecord("drums", "/tmp/x/j1/drums.wav", 48000, 2, 2.0, 1.0, -18.0, -3.0)


class Wire:
    """A send(dest, event) that records (dest, address, values), and wakes waiters."""

    def __init__(self) -> None:
        self.sent: list[tuple[object, str, tuple]] = []
        self.events: list[Event] = []
        self.cond = threading.Condition()

    def __call__(self, dest, event: Event) -> None:
        with self.cond:
            self.sent.append((dest, event.address, event.values))
            self.events.append(event)
            self.cond.notify_all()

    def addresses(self) -> list[str]:
        with self.cond:
            return [address for _, address, _ in self.sent]

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while len(self.sent) < count and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
        return self.addresses()


class Clock:
    """events.time with a monotonic() the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def wire():
    return Wire()


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(events_module, "time", clock)
    return clock


# -- progress --------------------------------------------------------------------------------
def test_progress_is_throttled_per_stage_but_stage_changes_and_completion_go_through(wire, clock):
    sink = EventSink(SCHEMA, wire, progress_interval_s=0.25)
    sink.progress(DEST, "j1", 0.10, "decoding")  # first: sent
    sink.progress(DEST, "j1", 0.20, "decoding")  # same stage, 0 s later: dropped
    clock.now += 0.1
    sink.progress(DEST, "j1", 0.30, "decoding")  # 0.1 s: dropped
    sink.progress(DEST, "j1", 0.31, "writing")  # a new stage: sent at once
    sink.progress(DEST, "j1", 1.00, "writing")  # completion: sent at once
    clock.now += 0.3
    sink.progress(DEST, "j1", 0.50, "writing")  # past the interval: sent
    sink.progress(DEST, "j2", 0.05, "decoding")  # another job has its own clock
    assert [(values[0], values[1], values[2]) for _, _, values in wire.sent] == [
        ("j1", pytest.approx(0.10), "decoding"), ("j1", pytest.approx(0.31), "writing"),
        ("j1", 1.0, "writing"), ("j1", 0.5, "writing"), ("j2", pytest.approx(0.05), "decoding")]


def test_progress_fractions_are_clamped_and_a_finished_job_starts_its_throttle_afresh(wire, clock):
    sink = EventSink(SCHEMA, wire, progress_interval_s=10.0)
    sink.progress(DEST, "j1", 1.7, "decoding")
    sink.progress(DEST, "j1", -0.2, "writing")
    sink.done(DEST, "j1", 0, 1, 1.0)
    sink.progress(DEST, "j1", 0.1, "writing")  # same stage as before done, but the throttle was reset
    assert [(address, values[1]) for _, address, values in wire.sent] == [
        ("/continuo/progress", 1.0), ("/continuo/progress", 0.0), ("/continuo/done", 0),
        ("/continuo/progress", pytest.approx(0.1))]


# -- terminal re-sends -------------------------------------------------------------------------
def test_outputs_then_done_are_resent_in_order_until_ack(wire):
    sink = EventSink(SCHEMA, wire, resends=6, resend_interval_s=0.05)
    try:
        sink.queued(DEST, "j1", 0, 1.0)
        sink.progress(DEST, "j1", 0.5, "decoding")  # not part of the terminal set
        sink.output(DEST, "j1", DRUMS)
        sink.output(DEST, "j1", MIX)
        sink.done(DEST, "j1", 2, 42, 1.5)
        terminal = ["/continuo/output", "/continuo/output", "/continuo/done"]
        sent = wire.wait_for(5 + 3)  # the first sends, then one re-send of the terminal set
        assert sent[:8] == ["/continuo/queued", "/continuo/progress", *terminal, *terminal]
        assert [values[1] for _, address, values in wire.sent[5:7]] == ["drums", "mix"]
        assert all(dest == DEST for dest, _, _ in wire.sent)
        assert sink.pending_acks() == 1 and sink.ack("j1") is True and sink.ack("j1") is False
        count = len(wire.addresses())
        time.sleep(0.3)
        assert len(wire.addresses()) in (count, count + 3)  # at most a re-send already under way
        assert sink.pending_acks() == 0
    finally:
        sink.stop()


def test_an_error_is_resent_a_bounded_number_of_times(wire):
    sink = EventSink(SCHEMA, wire, resends=2, resend_interval_s=0.01)
    try:
        sink.queued(DEST, "j2", 0, 1.0)
        sink.error(DEST, "j2", "model_error", "the model ran out of memory; ask for fewer bars")
        assert wire.wait_for(1 + 3).count("/continuo/error") == 3  # the send, then two re-sends
        time.sleep(0.2)
        assert wire.addresses().count("/continuo/error") == 3 and sink.pending_acks() == 0
    finally:
        sink.stop()


def test_a_resend_hands_on_the_event_checked_the_first_time(wire):
    sink = EventSink(SCHEMA, wire, resends=2, resend_interval_s=0.01)
    try:
        sink.queued(DEST, "j5", 0, 1.0)
        sink.error(DEST, "j5", "model_error", "the model ran out of memory")
        assert wire.wait_for(1 + 3).count("/continuo/error") == 3
        errors = [event for event in wire.events if event.address == "/continuo/error"]
        assert all(event is errors[0] for event in errors)  # stored, not checked and built again
    finally:
        sink.stop()


def test_without_resends_nothing_waits_for_an_ack(wire):
    sink = EventSink(SCHEMA, wire)
    sink.queued(DEST, "j3", 0, 1.0)
    sink.done(DEST, "j3", 0, 1, 1.0)
    assert sink.pending_acks() == 0 and sink.ack("j3") is False
    sink.stop()


# -- replays -----------------------------------------------------------------------------------
def record(**fields) -> JobRecord:
    base = dict(job_id="j1", op="generate", params={}, reply_to=DEST, status=JobStatus.DONE, created_at=0.0,
                updated_at=0.0, seed=42, elapsed_s=3.5, error_code=None, error_message=None, outputs=(DRUMS, MIX))
    return JobRecord(**{**base, **fields})


def test_a_finished_record_replays_its_outputs_then_done_once(wire):
    sink = EventSink(SCHEMA, wire, resends=3, resend_interval_s=0.01)
    try:
        sink.replay(DEST, record())
        time.sleep(0.1)
        assert wire.sent == [
            (DEST, "/continuo/output", SCHEMA.check_event("/continuo/output", *DRUMS.event_args("j1")).values),
            (DEST, "/continuo/output", SCHEMA.check_event("/continuo/output", *MIX.event_args("j1")).values),
            (DEST, "/continuo/done", ("j1", 2, 42, 3.5)),
        ]
        assert sink.pending_acks() == 0  # a replay is not re-sent
    finally:
        sink.stop()


def test_a_failed_record_replays_its_error_only(wire):
    sink = EventSink(SCHEMA, wire)
    sink.replay(DEST, record(status=JobStatus.FAILED, error_code="cancelled", error_message="cancelled by you",
                             outputs=(MIX,), seed=None, elapsed_s=None))
    assert wire.sent == [(DEST, "/continuo/error", ("j1", "cancelled", "cancelled by you"))]


# -- events that break the schema --------------------------------------------------------------
@pytest.mark.parametrize("address, args", [
    ("/continuo/progress", ("j1", 0.5, "daydreaming")),  # not a stage
    ("/continuo/queued", ("../etc", 0, 1.0)),  # not a job id
    ("/continuo/output", ("j1", "mix", "/" + "p" * 2000, 48000, 2, 1.0, 1.0, -14.0, -1.0)),  # a path is never cut
    ("/continuo/welcome", ("0.1.0",)),  # too few arguments
    ("/continuo/nope", ()),  # no such event
])
def test_an_event_that_cannot_be_built_is_logged_and_not_sent(wire, caplog, address, args):
    sink = EventSink(SCHEMA, wire)
    with caplog.at_level(logging.ERROR, "continuo.events"):
        assert sink.emit(DEST, address, *args) is None  # and nothing raised
    assert wire.sent == []
    assert any(f"event {address} could not be built" in r.getMessage() for r in caplog.records)


def test_a_terminal_event_that_cannot_be_built_leaves_nothing_to_resend(wire, caplog):
    sink = EventSink(SCHEMA, wire, resends=3, resend_interval_s=0.01)
    try:
        sink.queued(DEST, "j4", 0, 1.0)
        with caplog.at_level(logging.ERROR, "continuo.events"):
            sink.error(DEST, "j4", "no_such_code", "boom")
        time.sleep(0.1)
        assert wire.addresses() == ["/continuo/queued"] and sink.pending_acks() == 0
    finally:
        sink.stop()


def test_an_ack_that_overtakes_the_terminal_bookkeeping_still_stops_the_resends(wire):
    """A client may ack the moment done arrives, before the sending thread has recorded the job as pending."""
    def send(dest, event: Event) -> None:
        wire(dest, event)
        if event.address == "/continuo/done":
            assert sink.ack("j9") is True  # acked while done is still on its way out

    sink = EventSink(SCHEMA, send, resends=3, resend_interval_s=0.02)
    try:
        sink.queued(DEST, "j9", 0, 1.0)
        sink.done(DEST, "j9", 0, 1, 1.0)
        time.sleep(0.3)
        assert wire.addresses().count("/continuo/done") == 1 and sink.pending_acks() == 0
        assert sink.ack("j9") is False  # nothing left to acknowledge
    finally:
        sink.stop()
