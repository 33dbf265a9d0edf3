"""Small OSC clients for Continuo: `continuo send`, the bench and the tests use them.

`OscClient` talks UDP: it binds its own socket for replies. `OscTcpClient` talks
OSC over TCP in either stream framing (SLIP or int32 length prefix); replies come
back on the same connection. Both queue every event they receive and let the
caller wait for the ones they want. `send` does no validation, so tests can send
bad input on purpose. The ZeroMQ client is bridge.clients.zmq.ZmqClient.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from pythonosc import osc_message_builder

from bridge.errors import BadRequest, BridgeError
from bridge.protocol.framing import FramingError, LengthPrefixDecoder, SlipDecoder, length_prefix_encode, slip_encode
from bridge.protocol.schema import Schema, load_schema, parse_datagram

log = logging.getLogger("continuo.osc.client")

Event = tuple[str, list]
TERMINAL_EVENTS = frozenset({"/continuo/done", "/continuo/error"})
MAX_QUEUED_EVENTS = 100_000
POLL_S = 0.1


class _EventClient:
    """What every client shares: the event queue, waiting, hello/ping/job helpers."""

    def __init__(self, host: str, port: int, name: str, schema: Schema | None, reply_port: int = 0) -> None:
        self.dest = (host, port)
        self.name = name
        self.schema = schema or load_schema()
        self._reply_port = reply_port
        self._events: collections.deque[Event] = collections.deque(maxlen=MAX_QUEUED_EVENTS)
        self._cond = threading.Condition()
        self._closed = threading.Event()

    def send_raw(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _stop_receiving(self, thread: threading.Thread, sock: socket.socket) -> None:
        """The end of every close(): the receive thread joins, the socket closes, waiters wake."""
        thread.join(2 * POLL_S + 1.0)
        sock.close()
        self._notify_closed()

    def send(self, address: str, *args: Any) -> None:
        """Send one message; types are inferred (str s, int i, float f), nothing is validated."""
        builder = osc_message_builder.OscMessageBuilder(address=address)
        for arg in args:
            builder.add_arg(arg)
        self.send_raw(builder.build().dgram)

    def hello(self, timeout_s: float = 5.0) -> list:
        """Say hello; returns the welcome's args [version, model, sample_rate, device, inbox]."""
        self.send("/continuo/hello", self.name, self._reply_port)
        address, args = self._wait_reply(
            lambda a, args: a == "/continuo/welcome" or (a == "/continuo/error" and args[:1] == [""]),
            timeout_s,
        )
        if address == "/continuo/error":
            raise _error_from_event(args)
        return args

    def ping(self, seq: int = 0, timeout_s: float = 5.0) -> int:
        """Ping and wait for the matching pong; returns its seq."""
        self.send("/continuo/ping", seq)
        _, args = self._wait_reply(lambda a, args: a == "/continuo/pong" and args[:1] == [seq], timeout_s)
        return args[0]

    def wait_for(self, predicate: Callable[[str, list], bool], timeout_s: float) -> Event:
        """The first queued or arriving event with predicate(address, args) true, removed from
        the queue (others stay queued); TimeoutError if none within timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for index, (address, args) in enumerate(self._events):
                    if predicate(address, args):
                        del self._events[index]
                        return address, args
                remaining = deadline - time.monotonic()
                if self._closed.is_set():
                    raise TimeoutError("the client is closed; no more events will arrive")
                if remaining <= 0:
                    raise TimeoutError(f"no matching event within {timeout_s:g} s")
                self._cond.wait(remaining)

    def wait_job(
        self,
        job_id: str,
        timeout_s: float,
        on_event: Callable[[str, list], None] | None = None,
        *,
        ack: bool = False,
    ) -> list[Event]:
        """Every event of job_id up to and including its done or error, in order.

        on_event(address, args) sees each as it arrives; with ack=True the client sends
        /continuo/ack afterwards so the daemon stops re-sending the terminal event.
        """
        deadline = time.monotonic() + timeout_s
        events: list[Event] = []
        job_events = self.schema.job_events
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = self.wait_for(lambda a, args: a in job_events and args[:1] == [job_id], max(remaining, 0.0))
            except TimeoutError:
                seen = ", ".join(address for address, _ in events) or "nothing"
                raise TimeoutError(f"job {job_id} not done within {timeout_s:g} s (saw {seen})") from None
            events.append(event)
            if on_event is not None:
                on_event(*event)
            if event[0] in TERMINAL_EVENTS:
                if ack:
                    self.send("/continuo/ack", job_id)
                return events

    def drain(self) -> list[Event]:
        """Every queued event, removed from the queue."""
        with self._cond:
            events = list(self._events)
            self._events.clear()
        return events

    def _deliver(self, messages: list[Event]) -> None:
        with self._cond:
            self._events.extend(messages)
            self._cond.notify_all()

    def _deliver_packet(self, data: bytes) -> None:
        try:
            messages = parse_datagram(data)
        except BadRequest as exc:
            log.warning("ignored a malformed reply: %s", exc.message)
            return
        self._deliver(messages)

    def _wait_reply(self, predicate: Callable[[str, list], bool], timeout_s: float) -> Event:
        try:
            return self.wait_for(predicate, timeout_s)
        except TimeoutError:
            host, port = self.dest
            raise TimeoutError(
                f"no reply from {host}:{port} within {timeout_s:g} s — is `continuo serve` running?"
            ) from None

    def _notify_closed(self) -> None:
        with self._cond:
            self._cond.notify_all()


class OscClient(_EventClient):
    """Talks to a Continuo daemon at (host, port) over UDP; replies arrive on its own socket."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9000,
        *,
        reply_port: int = 0,
        name: str = "continuo-send",
        schema: Schema | None = None,
    ) -> None:
        super().__init__(host, port, name, schema, reply_port)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        bind_host = host if _is_loopback(host) else ("::" if family == socket.AF_INET6 else "0.0.0.0")
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            self._sock.bind((bind_host, reply_port))
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(POLL_S)
        self._thread = threading.Thread(target=self._receive, name="continuo-osc-client", daemon=True)
        self._thread.start()

    @property
    def reply_address(self) -> tuple[str, int]:
        """The (host, port) this client receives events on."""
        host, port = self._sock.getsockname()[:2]
        return host, port

    def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes as one datagram (fuzz tests)."""
        self._sock.sendto(data, self.dest)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        try:  # unblock recvfrom at once
            host, port = self.reply_address
            self._sock.sendto(b"", ({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port))
        except OSError as exc:
            log.debug("wake-up datagram failed: %s", exc)
        self._stop_receiving(self._thread, self._sock)

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data, _ = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError as exc:  # e.g. ICMP port unreachable from an earlier send
                if self._closed.is_set():
                    break
                log.debug("recvfrom: %s", exc)
                continue
            if self._closed.is_set():
                break
            self._deliver_packet(data)


class OscTcpClient(_EventClient):
    """OSC over one TCP connection; framing "slip" (OSC 1.1) or "length" (OSC 1.0 int32 prefix)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9000,
        *,
        framing: str = "slip",
        name: str = "continuo-send",
        schema: Schema | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if framing not in ("slip", "length"):
            raise ValueError(f"framing must be 'slip' or 'length', got {framing!r}")
        super().__init__(host, port, name, schema)
        self.framing = framing
        self._encode = slip_encode if framing == "slip" else length_prefix_encode
        self._decoder = SlipDecoder() if framing == "slip" else LengthPrefixDecoder()
        self._sock = socket.create_connection((host, port), timeout=connect_timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.settimeout(POLL_S)
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._receive, name="continuo-osc-tcp-client", daemon=True)
        self._thread.start()

    def send_raw(self, data: bytes) -> None:
        """Send one packet, framed."""
        self.send_bytes(self._encode(data))

    def send_bytes(self, data: bytes) -> None:
        """Send bytes on the stream as they are (fuzz tests: broken framing)."""
        with self._send_lock:
            self._sock.settimeout(5.0)
            try:
                self._sock.sendall(data)
            finally:
                self._sock.settimeout(POLL_S)

    @property
    def connected(self) -> bool:
        return not self._closed.is_set() and self._thread.is_alive()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._stop_receiving(self._thread, self._sock)

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                log.debug("recv: %s", exc)
                break
            if not data:
                break
            try:
                packets = self._decoder.feed(data)
            except FramingError as exc:
                log.warning("the daemon's stream broke framing: %s", exc)
                break
            for packet in packets:
                self._deliver_packet(packet)
        self._notify_closed()


def _error_from_event(args: list) -> BridgeError:
    code, message = (args + ["", ""])[1:3]
    error = BridgeError(f"{code}: {message}")
    error.code = str(code)
    return error


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
