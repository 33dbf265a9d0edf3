"""Events from the daemon to a client: built against the schema, sent to the job's reply address."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bridge.jobs import Address
from bridge.journal import JobRecord, OutputRecord
from bridge.protocol import Schema

log = logging.getLogger("continuo.events")

Sender = Callable[[Address, bytes], None]


class EventSink:
    """Builds each event with the schema (so it is valid and < 1 KB) and hands it to a transport."""

    def __init__(self, schema: Schema, send: Sender, *, progress_interval_s: float = 0.25) -> None:
        self.schema = schema
        self._send = send
        self._progress_interval_s = progress_interval_s
        self._last_progress: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def emit(self, dest: Address, address: str, *args: Any) -> None:
        try:
            datagram = self.schema.build_event(address, *args)
        except ValueError:
            log.exception("event %s could not be built; not sent", address)
            return
        self._send(dest, datagram)

    def queued(self, dest: Address, job_id: str, position: int, eta_s: float) -> None:
        self.emit(dest, "/continuo/queued", job_id, position, float(eta_s))

    def progress(self, dest: Address, job_id: str, fraction: float, stage: str) -> None:
        """At most one progress event per interval, except on a change of stage or completion."""
        now = time.monotonic()
        with self._lock:
            last = self._last_progress.get(job_id)
            if last is not None and last[1] == stage and fraction < 1.0 and now - last[0] < self._progress_interval_s:
                return
            self._last_progress[job_id] = (now, stage)
        self.emit(dest, "/continuo/progress", job_id, float(min(max(fraction, 0.0), 1.0)), stage)

    def output(self, dest: Address, job_id: str, output: OutputRecord) -> None:
        self.emit(dest, "/continuo/output", *output.event_args(job_id))

    def done(self, dest: Address, job_id: str, outputs: int, seed: int, elapsed_s: float) -> None:
        self._forget(job_id)
        self.emit(dest, "/continuo/done", job_id, outputs, seed, float(elapsed_s))

    def error(self, dest: Address, job_id: str, code: str, message: str) -> None:
        self._forget(job_id)
        self.emit(dest, "/continuo/error", job_id, code, message)

    def replay(self, dest: Address, record: JobRecord) -> None:
        """Re-send a finished job's terminal events: its outputs then done, or its error."""
        if record.error_code:
            self.error(dest, record.job_id, record.error_code, record.error_message or "")
            return
        for output in record.outputs:
            self.output(dest, record.job_id, output)
        self.done(dest, record.job_id, len(record.outputs), record.seed or 0, record.elapsed_s or 0.0)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._last_progress.pop(job_id, None)
