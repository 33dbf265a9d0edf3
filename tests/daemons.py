"""How tests run a daemon: flags for one in a subprocess, settings for one in process, and a log of its events.

The fixtures built on these live in tests/conftest.py (in process) and tests/e2e/conftest.py (subprocess).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bridge.daemon import Daemon
from bridge.protocol.schema import Event as CheckedEvent
from bridge.protocol.schema import load_schema
from bridge.settings import Settings, load_settings
from bridge.transports.udp import OscUdpServer
from inference.runtime.memory import thaw_heap

JOB_TIMEOUT_S = 120  # the longest a test waits for one tiny-model job to end (generous: the cores are shared)
TERMINAL = ("/continuo/done", "/continuo/error")

Event = tuple[str, list]  # (address, args) as a client decodes them


def daemon_flags(model_dir: Path, root: Path, *extra: str) -> list[str]:
    """`continuo serve` flags for a test daemon: the model, every port chosen by the OS, files under root."""
    return ["--model", str(model_dir), "--osc-port", "0", "--zmq-port", "0", "--zmq-pub-port", "0", "--http-port", "0",
            "--output-root", str(root / "renders"), "--user-presets-dir", str(root / "user-presets"),
            "--cpu-threads", "1", *extra]


def daemon_settings(model_dir: Path, root: Path, **overrides: Any) -> Settings:
    """Settings for an in-process test daemon: UDP on a free port, TCP and ZeroMQ off, no re-sends, files under
    root, nothing read from the environment or a config file. Overrides are settings by name (as strings)."""
    return load_settings({
        "model": str(model_dir), "osc_port": "0", "osc_tcp_port": "-1", "zmq_port": "-1", "http_port": "-1",
        "output_root": str(root / "renders"), "user_presets_dir": str(root / "presets"), "ack_resends": "0",
        **{name: str(value) for name, value in overrides.items()},
    }, environ={})


class EventLog:
    """The events a daemon or a worker sent, decoded to (address, args), in order; thread-safe.

    An instance is the ``send`` callable of an EventSink: ``EventSink(schema, log)``. This is the one place
    that knows what an EventSink hands its transport: the destination and the checked ``Event``
    (``Schema.check_event``; its values are what a client decodes, floats as float32).
    ``on_event(address, args)``, when set, runs on the sending thread before the event is recorded.
    """

    def __init__(self, on_event: Callable[[str, list], None] | None = None) -> None:
        self.on_event = on_event
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, dest: Any, event: CheckedEvent) -> None:
        args = list(event.values)
        if self.on_event is not None:
            self.on_event(event.address, args)
        with self._lock:
            self._events.append((event.address, args))

    def __iter__(self) -> Iterator[Event]:
        with self._lock:
            return iter(list(self._events))

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __getitem__(self, index: int) -> Event:
        with self._lock:
            return self._events[index]

    def of(self, job_id: str) -> list[Event]:
        """The events whose first argument is job_id."""
        return [(address, args) for address, args in self if args and args[0] == job_id]

    def wait_terminal(self, job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> Event:
        """The job's /continuo/done or /continuo/error; AssertionError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for address, args in self.of(job_id):
                if address in TERMINAL:
                    return address, args
            time.sleep(0.02)
        raise AssertionError(f"{job_id} did not end within {timeout_s:g} s; its events: {self.of(job_id)}")


@contextmanager
def running_daemon(settings: Settings, *, engine_loader: Callable[[Settings], Any] | None = None,
                   worker_thread: bool = True) -> Iterator[Daemon]:
    """An in-process Daemon whose events go to ``daemon.sent``, an EventLog, instead of the network; shut down on
    exit. engine_loader: settings -> engine, to wrap or replace the model. worker_thread=False leaves the worker
    unstarted (as `continuo serve` does before its main-thread loop): admitted jobs stay queued."""
    daemon = Daemon(settings, engine_loader=engine_loader, compute_on_main_thread=not worker_thread)
    daemon.startup()
    daemon.sent = EventLog()
    daemon.events._send = daemon.sent  # record instead of sending (the transports stay up)
    try:
        yield daemon
    finally:
        daemon.stop_requested.set()
        daemon.shutdown()
        thaw_heap()  # run() as `continuo serve` froze the heap: this test process goes on collecting


class FakeOscDaemon:
    """A stand-in daemon for client tests: an OscUdpServer on a free loopback port calling the subclass's
    ``on_message(address, args, sender)``; ``send_event`` answers with an event the schema checked."""

    schema = load_schema()

    def __init__(self) -> None:
        self.server = OscUdpServer("127.0.0.1", 0, self.on_message)

    def on_message(self, address: str, args: list, sender: Any) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop()

    @property
    def port(self) -> int:
        return self.server.address[1]

    def send_event(self, dest: Any, address: str, *args: Any) -> None:
        self.server.send(dest, self.schema.check_event(address, *args))
