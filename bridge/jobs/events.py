"""Events from the daemon to a client: checked against the schema, sent to the job's reply destination.

A `Destination` (bridge/protocol/destinations.py) is opaque here: a UDP (host, port) or a Peer. Each
event is checked once, by `Schema.check_event`, and leaves as that `Event`: its values (fitted
under the size limit) and the OSC datagram the check built. The `send` callable (a
bridge.transports.peers.Router in the daemon) knows which transport owns the destination; UDP and
TCP send the datagram, ZeroMQ encodes the values as JSON. Re-sends send the stored Event again.

Terminal events of accepted jobs (the outputs and done, or the error) are re-sent
`resends` times with doubling intervals until the client sends /continuo/ack.
Rejections (bad_request before a job is queued) and replays are sent once.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bridge.jobs.journal import JobRecord, OutputRecord
from bridge.protocol.destinations import Destination, SendEvent
from bridge.protocol.schema import Event, Schema

log = logging.getLogger("continuo.events")


@dataclass
class _Pending:
    dest: Destination
    events: list[Event]
    resends_left: int
    interval_s: float


@dataclass
class _JobOutbox:
    """What has been sent of a running job's terminal set so far (its outputs)."""

    dest: Destination
    outputs: list[Event] = field(default_factory=list)


class EventSink:
    """Checks each event with the schema (so it is valid and < 1 KB) and hands it to a transport."""

    def __init__(self, schema: Schema, send: SendEvent, *, progress_interval_s: float = 0.25,
                 resends: int = 0, resend_interval_s: float = 1.0) -> None:
        self.schema = schema
        self._send = send
        self._progress_interval_s = progress_interval_s
        self._last_progress: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._resends = resends
        self._resend_interval_s = resend_interval_s
        self._accepted: dict[str, _JobOutbox] = {}
        self._pending: dict[str, _Pending] = {}
        self._acked_early: set[str] = set()  # acks that overtook their job's terminal bookkeeping (see ack)
        self._due: list[tuple[float, str]] = []
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread: threading.Thread | None = None
        if resends > 0:
            self._thread = threading.Thread(target=self._resend_loop, name="continuo-resend", daemon=True)
            self._thread.start()

    def emit(self, dest: Destination, address: str, *args: Any) -> Event | None:
        """Check one event against the schema and send it; one that breaks the schema is logged, not sent."""
        try:
            event = self.schema.check_event(address, *args)
        except ValueError:
            log.exception("event %s could not be built; not sent", address)
            return None
        self._send(dest, event)
        return event

    def queued(self, dest: Destination, job_id: str, position: int, eta_s: float) -> None:
        with self._lock:
            self._accepted.setdefault(job_id, _JobOutbox(dest))
        self.emit(dest, "/continuo/queued", job_id, position, float(eta_s))

    def progress(self, dest: Destination, job_id: str, fraction: float, stage: str) -> None:
        """At most one progress event per interval, except on a change of stage or completion."""
        now = time.monotonic()
        with self._lock:
            last = self._last_progress.get(job_id)
            if last is not None and last[1] == stage and fraction < 1.0 and now - last[0] < self._progress_interval_s:
                return
            self._last_progress[job_id] = (now, stage)
        self.emit(dest, "/continuo/progress", job_id, float(min(max(fraction, 0.0), 1.0)), stage)

    def partial(self, dest: Destination, job_id: str, index: int, path: str, start_s: float, seconds: float) -> None:
        self.emit(dest, "/continuo/partial", job_id, index, path, float(start_s), float(seconds))

    def output(self, dest: Destination, job_id: str, output: OutputRecord, *, replay: bool = False) -> None:
        event = self.emit(dest, "/continuo/output", *output.event_args(job_id))
        if event is not None and not replay:
            with self._lock:
                outbox = self._accepted.get(job_id)
                if outbox is not None:
                    outbox.outputs.append(event)

    def done(self, dest: Destination, job_id: str, outputs: int, seed: int, elapsed_s: float, *,
             replay: bool = False) -> None:
        event = self.emit(dest, "/continuo/done", job_id, outputs, seed, float(elapsed_s))
        self._terminal(dest, job_id, event, replay)

    def error(self, dest: Destination, job_id: str, code: str, message: str, *, replay: bool = False) -> None:
        event = self.emit(dest, "/continuo/error", job_id, code, message)
        self._terminal(dest, job_id, event, replay)

    def replay(self, dest: Destination, record: JobRecord) -> None:
        """Re-send a finished job's terminal events: its outputs then done, or its error."""
        if record.error_code:
            self.error(dest, record.job_id, record.error_code, record.error_message or "", replay=True)
            return
        for output in record.outputs:
            self.output(dest, record.job_id, output, replay=True)
        self.done(dest, record.job_id, len(record.outputs), record.seed or 0, record.elapsed_s or 0.0, replay=True)

    def ack(self, job_id: str) -> bool:
        """The client has the terminal events: stop re-sending. True when something was pending."""
        with self._lock:
            if self._pending.pop(job_id, None) is not None:
                return True
            if job_id in self._accepted:
                # The done/error went out and a fast client (the CLI, a patch) acked it before the sending thread
                # recorded it as pending: remember the ack, so the terminal set is not re-sent for nothing.
                self._acked_early.add(job_id)
                return True
            return False

    def pending_acks(self) -> int:
        with self._lock:
            return len(self._pending)

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)

    # -- internals -------------------------------------------------------------------------
    def _terminal(self, dest: Destination, job_id: str, event: Event | None, replay: bool) -> None:
        with self._lock:
            self._last_progress.pop(job_id, None)
            outbox = None if replay else self._accepted.pop(job_id, None)
            acked = job_id in self._acked_early
            self._acked_early.discard(job_id)
            if outbox is None or event is None or self._resends <= 0 or acked:
                return
            due = time.monotonic() + self._resend_interval_s
            self._pending[job_id] = _Pending(dest, [*outbox.outputs, event], self._resends, self._resend_interval_s)
            heapq.heappush(self._due, (due, job_id))
            self._wake.notify()

    def _resend_loop(self) -> None:
        with self._wake:
            while not self._stopping:
                now = time.monotonic()
                if not self._due:
                    self._wake.wait()
                    continue
                due, job_id = self._due[0]
                if due > now:
                    self._wake.wait(due - now)
                    continue
                heapq.heappop(self._due)
                pending = self._pending.get(job_id)
                if pending is None:
                    continue
                pending.resends_left -= 1
                pending.interval_s *= 2
                if pending.resends_left > 0:
                    heapq.heappush(self._due, (now + pending.interval_s, job_id))
                else:
                    del self._pending[job_id]
                self._wake.release()
                try:
                    for event in pending.events:
                        self._send(pending.dest, event)
                    log.info("job=%s terminal events re-sent (no ack yet; %d more tries)", job_id,
                             pending.resends_left)
                finally:
                    self._wake.acquire()
