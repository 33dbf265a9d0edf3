"""Run `continuo serve` as a child process and wait for its ready line (used by bench and tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

READY_PATTERN = re.compile(r"continuo ready: osc=udp://(?P<host>[^:\s]+):(?P<port>\d+)")
# Optional parts of the ready line, after osc=udp://...: each transport that is on names its endpoint.
ENDPOINT_PATTERNS = {
    "tcp_port": re.compile(r" osc_tcp=tcp://[^\s]+:(\d+)"),
    "zmq_endpoint": re.compile(r" zmq=(tcp://\S+)"),
    "zmq_pub_endpoint": re.compile(r" zmq_pub=(tcp://\S+)"),
    "http_url": re.compile(r" http=(http://\S+)"),
}


class DaemonProcess:
    """``with DaemonProcess([...flags]) as d: d.port`` — stdout and stderr are kept in ``d.log``."""

    def __init__(self, flags: Sequence[str], *, env: dict[str, str] | None = None, ready_timeout_s: float = 120.0):
        self.flags = list(flags)
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout_s = ready_timeout_s
        self.lines: list[str] = []
        self.port = 0
        self.host = "127.0.0.1"
        self.tcp_port = 0  # OSC over TCP; 0 when off
        self.zmq_endpoint = ""  # ZeroMQ ROUTER and PUB; "" when off
        self.zmq_pub_endpoint = ""
        self.http_url = ""  # the HTTP API and control room page; "" when off
        self.startup_s = 0.0
        self._ready = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def start(self) -> DaemonProcess:
        started = time.monotonic()
        # Windows: a process group of its own, so stop() can send it Ctrl+Break (and not to this console)
        group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", *self.flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
            cwd=Path(__file__).resolve().parents[2], **group,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(self.ready_timeout_s) or not self.port:  # EOF without a ready line: it died
            self.kill()
            raise RuntimeError(f"the daemon did not become ready within {self.ready_timeout_s:.0f} s:\n{self.log}")
        self.startup_s = time.monotonic() - started
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            match = READY_PATTERN.search(line)
            if match:
                self.host, self.port = match["host"], int(match["port"])
                for name, pattern in ENDPOINT_PATTERNS.items():
                    found = pattern.search(line)
                    if found:
                        setattr(self, name, int(found[1]) if name == "tcp_port" else found[1])
                self._ready.set()
        self._ready.set()  # the process ended

    def stop(self, sig: int | None = None, timeout_s: float = 30.0) -> int:
        """Send a signal (by default the one that lets the daemon shut down in order: SIGTERM, or Ctrl+Break on
        Windows, where SIGTERM would kill it outright) and return the exit code."""
        assert self.proc is not None
        if sig is None:
            sig = signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGTERM
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"the daemon did not exit within {timeout_s:.0f} s after signal {sig}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
