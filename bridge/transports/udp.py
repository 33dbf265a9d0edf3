"""OSC over UDP: one socket, one receive thread, messages handed to a callback in order.

python-osc's ThreadingOSCUDPServer drops bursts (a thread per packet), so this owns
the socket: a 4 MiB receive buffer, one thread that only drains the socket into an
in-memory backlog (bounded to BACKLOG_BYTES), and one thread that parses and hands
each datagram on in order. A burst of 20,000 small datagrams overflows a 4 MiB
kernel buffer (each costs about 1 KB of it) faster than the handlers run (about
20k/s): the buffer alone lost 11 % of such a burst on the 2-core machine; with the
drain thread 20,000 of 20,000 are answered, and it keeps up with loopback line rate.
The callback must only validate and enqueue; replies go out through `send` (a checked
event: its OSC datagram) or `send_datagram` on the same socket, so they come from the
port the client talks to.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Callable, Collection

from bridge.errors import BadRequest
from bridge.protocol.destinations import Destination
from bridge.protocol.schema import Event, Schema, load_schema, parse_datagram
from bridge.transports.sockets import bind_socket, bound_address, deliver

log = logging.getLogger("continuo.osc")

OnMessage = Callable[[str, list, tuple[str, int]], None]
RECV_BUFFER_BYTES = 4 * 1024 * 1024
MAX_DATAGRAM_BYTES = 65535
POLL_S = 0.2
MALFORMED_LOG_INTERVAL_S = 1.0
BACKLOG_BYTES = 32 * 1024 * 1024


class OscUdpServer:
    """Receives OSC datagrams on (host, port) and calls on_message(address, args, sender)."""

    def __init__(
        self,
        host: str,
        port: int,
        on_message: OnMessage,
        *,
        allowed_hosts: Collection[str] | None = None,
        schema: Schema | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._on_message = on_message
        self._allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)
        self._schema = schema or load_schema()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._send_lock = threading.Lock()
        self._malformed_logged_at = float("-inf")
        self._malformed_suppressed = 0
        self._backlog: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        self._backlog_bytes = 0
        self._backlog_cond = threading.Condition()
        self._dispatcher: threading.Thread | None = None
        self.dropped = 0

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); port 0 at construction becomes the ephemeral port."""
        return bound_address(self._sock, "OscUdpServer")

    def start(self) -> None:
        if self._sock is not None:
            raise RuntimeError("OscUdpServer already started")
        sock = bind_socket(self._host, self._port, socket.SOCK_DGRAM,
                           [(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)], timeout_s=POLL_S)
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if granted < RECV_BUFFER_BYTES:  # Linux reports double what it grants
            log.warning(
                "SO_RCVBUF is %d bytes, asked for %d; bursts may drop (raise net.core.rmem_max)",
                granted, RECV_BUFFER_BYTES,
            )
        self._sock = sock
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="continuo-osc-udp", daemon=True)
        self._dispatcher = threading.Thread(target=self._dispatch, name="continuo-osc-udp-handle", daemon=True)
        self._dispatcher.start()
        self._thread.start()
        host, port = self.address
        log.info("listening on udp://%s:%d (SO_RCVBUF %d bytes)", host, port, granted)

    def send(self, dest: Destination, event: Event) -> None:
        """Send one checked event as its OSC datagram (built by its check); errors are logged, never raised."""
        self.send_datagram(dest, event.osc)

    def send_datagram(self, dest: Destination, datagram: bytes) -> None:
        """Send one datagram from the listening socket; errors are logged, never raised."""
        sock = self._sock
        if sock is None:
            log.warning("send to %s:%s dropped: server not started", *dest[:2])
            return
        try:
            with self._send_lock:
                sock.sendto(datagram, dest)
        except (OSError, TypeError, ValueError) as exc:
            log.warning("send to %s:%s failed: %s", *dest[:2], exc)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop receiving and close the socket; safe to call twice."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._wake()
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("receive thread still busy after %.1f s; closing the socket anyway", timeout_s)
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            with self._backlog_cond:
                self._backlog_cond.notify_all()
            dispatcher.join(timeout_s)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            log.info("stopped")

    def _wake(self) -> None:
        """Unblock recvfrom with an empty datagram to ourselves (else it wakes within POLL_S)."""
        if self._sock is None:
            return
        host, port = self.address
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        try:
            self._sock.sendto(b"", (host, port))
        except OSError as exc:
            log.debug("wake-up datagram failed: %s", exc)

    def __enter__(self) -> OscUdpServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stopping.is_set():
            try:
                data, sender = sock.recvfrom(MAX_DATAGRAM_BYTES)
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    break
                log.warning("recvfrom failed: %s", exc)
                continue
            if self._stopping.is_set():
                break
            with self._backlog_cond:
                if self._backlog_bytes + len(data) > BACKLOG_BYTES:
                    self.dropped += 1
                    self._log_malformed((sender[0], sender[1]), "backlog full; datagram dropped")
                    continue
                self._backlog.append((data, (sender[0], sender[1])))
                self._backlog_bytes += len(data)
                self._backlog_cond.notify()

    def _dispatch(self) -> None:
        """Handle backlogged datagrams in arrival order until stopped."""
        while True:
            with self._backlog_cond:
                while not self._backlog and not self._stopping.is_set():
                    self._backlog_cond.wait(POLL_S)
                if not self._backlog:
                    return
                data, sender = self._backlog.popleft()
                self._backlog_bytes -= len(data)
            self.handle_datagram(data, sender)

    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        """Parse one datagram and call on_message per message; public so tests need no socket."""
        if self._allowed_hosts is not None and sender[0] not in self._allowed_hosts:
            self._log_malformed(sender, "sender not in the allow-list; dropped")
            return
        try:
            messages = parse_datagram(data)
        except BadRequest as exc:
            self._log_malformed(sender, exc.message)
            self._reply_error(sender, exc.message)
            return
        deliver(messages, self._on_message, sender, f"{sender[0]}:{sender[1]}")

    def _reply_error(self, sender: tuple[str, int], message: str) -> None:
        try:
            self.send_datagram(sender, self._schema.build_event("/continuo/error", "", "bad_request", message))
        except ValueError as exc:
            log.warning("error reply to %s:%d not sent: %s", sender[0], sender[1], exc)

    def _log_malformed(self, sender: tuple[str, int], reason: str) -> None:
        now = time.monotonic()
        if now - self._malformed_logged_at < MALFORMED_LOG_INTERVAL_S:
            self._malformed_suppressed += 1
            return
        more = f" ({self._malformed_suppressed} more since the last line)" if self._malformed_suppressed else ""
        log.warning("bad datagram from %s:%d: %s%s", sender[0], sender[1], reason, more)
        self._malformed_logged_at = now
        self._malformed_suppressed = 0

