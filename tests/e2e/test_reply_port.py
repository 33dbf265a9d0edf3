"""Senders whose source port changes with every message: liblo's `oscsend` (a new socket per call) against a real
`continuo serve`, replies read by liblo's `oscdump` listening on a fixed port.

The module daemon runs with --default-reply-port (for senders that never say hello); a job request's own
`reply_port` setting sends that job's events to another port. Both need liblo-tools (.ci/debian-packages).
"""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from bridge.protocol.schema import parse_datagram
from tests.daemons import JOB_TIMEOUT_S

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("oscsend") is None or shutil.which("oscdump") is None,
                       reason="liblo's oscsend/oscdump are missing: install Debian's liblo-tools "
                              "(bash .ci/install-debian-packages)"),
]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


DEFAULT_REPLY_PORT = free_udp_port()


@pytest.fixture(scope="module")
def daemon_extra_flags() -> tuple[str, ...]:
    return ("--default-reply-port", str(DEFAULT_REPLY_PORT))


class OscDump:
    """`oscdump -L PORT` in a subprocess; its lines (`/address types values...`) arrive in a queue."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_listening()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # "<timetag> /address types values..."
            self.lines.put(line.strip().split(" ", 1)[-1])

    def _wait_listening(self) -> None:
        """Probe with our own datagrams until oscdump prints one (it binds a moment after it starts)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                sock.sendto(b"/probe\x00\x00,\x00\x00\x00", ("127.0.0.1", self.port))
                try:
                    if self.lines.get(timeout=0.2).startswith("/probe"):
                        return
                except queue.Empty:
                    continue
        raise AssertionError(f"oscdump did not listen on {self.port} within 10 s")

    def wait_line(self, prefix: str, timeout_s: float = 10.0) -> str:
        deadline = time.monotonic() + timeout_s
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"oscdump on {self.port}: no {prefix!r} within {timeout_s:g} s; saw {seen}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture
def dump_default() -> Iterator[OscDump]:
    dump = OscDump(DEFAULT_REPLY_PORT)
    yield dump
    dump.close()


def oscsend(port: int, address: str, types: str, *values: object) -> None:
    subprocess.run(["oscsend", "127.0.0.1", str(port), address, types, *map(str, values)], check=True, timeout=10)


def test_a_sender_without_hello_hears_its_replies_on_the_default_reply_port(daemon_process, dump_default):
    oscsend(daemon_process.port, "/continuo/ping", "i", 7)
    assert dump_default.wait_line("/continuo/pong") == "/continuo/pong i 7"
    oscsend(daemon_process.port, "/continuo/status", "")
    assert dump_default.wait_line("/continuo/status").startswith('/continuo/status ssffi "idle"')
    assert dump_default.wait_line("/continuo/limits").startswith("/continuo/limits")


def test_a_job_reply_port_setting_sends_the_jobs_events_there(daemon_process, dump_default):
    job_port = free_udp_port()
    job_dump = OscDump(job_port)
    try:
        oscsend(daemon_process.port, "/continuo/generate", "sssfsi", "liblo-1", "default", "warm pad", 1.0,
                "reply_port", job_port)
        assert job_dump.wait_line("/continuo/queued").startswith("/continuo/queued sif \"liblo-1\" ")
        output = job_dump.wait_line("/continuo/output", JOB_TIMEOUT_S)
        assert "mix.wav" in output
        done = job_dump.wait_line("/continuo/done", JOB_TIMEOUT_S)
        assert done.startswith('/continuo/done siif "liblo-1" 1 ')
        oscsend(daemon_process.port, "/continuo/ack", "s", "liblo-1")
        # An admission error of such a request goes there too, not to the default port.
        oscsend(daemon_process.port, "/continuo/generate", "sssfsi", "liblo-2", "no-such-preset", "x", 1.0,
                "reply_port", job_port)
        error = job_dump.wait_line("/continuo/error")
        assert '"liblo-2" "not_found"' in error
    finally:
        job_dump.close()
    assert dump_default.lines.empty(), f"the default port heard the job's events: {list(dump_default.lines.queue)}"


def test_without_a_reply_port_the_reply_goes_to_the_source_port(daemon_process):
    """A sender that keeps its socket and says hello with reply_port 0 is still answered at its source port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        sock.sendto(b"/continuo/hello\x00,si\x00cli\x00" + (0).to_bytes(4, "big"), (daemon_process.host,
                                                                                  daemon_process.port))
        address, _ = parse_datagram(sock.recvfrom(65535)[0])[0]
        sock.sendto(b"/continuo/ping\x00\x00,i\x00\x00" + (3).to_bytes(4, "big"), (daemon_process.host,
                                                                                  daemon_process.port))
        assert parse_datagram(sock.recvfrom(65535)[0])[0] == ("/continuo/pong", [3])
    assert address == "/continuo/welcome"
