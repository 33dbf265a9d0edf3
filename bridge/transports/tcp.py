"""OSC over TCP: both stream framings in use (bridge.protocol.framing), detected per connection.

Replies go back on the same connection in the framing the client used.

One accept thread, and per connection (bounded count) a reader thread and a
writer thread. Each packet goes through the same `parse_datagram` ->
`on_message(address, args, peer)` path as UDP; the peer is a `bridge.transports.peers.Peer`
so the daemon's events come back here through the Router. Sending only queues the
packet for the connection's writer, so a client that stops reading never holds up
the daemon's handlers or other clients: its queue fills (SEND_QUEUE packets) or a
write stalls past SEND_TIMEOUT_S, and that one connection is closed. Broken framing is
answered with one `bad_request`, and the connection is closed.
"""

from __future__ import annotations

import itertools
import logging
import queue
import socket
import threading
from collections.abc import Collection

from bridge.errors import BadRequest
from bridge.protocol.framing import FramingError, LengthPrefixDecoder, SlipDecoder, detect_framing, slip_encode
from bridge.protocol.schema import Event, Schema, load_schema, parse_datagram
from bridge.transports.peers import Peer
from bridge.transports.sockets import bind_socket, bound_address, deliver
from bridge.transports.udp import OnMessage

log = logging.getLogger("continuo.osc.tcp")

MAX_CONNECTIONS = 64
SEND_TIMEOUT_S = 2.0
SEND_QUEUE = 1024  # packets waiting for one connection's writer before it counts as stuck
POLL_S = 0.2
RECV_BYTES = 65536



class _Connection:
    def __init__(self, sock: socket.socket, peer: Peer) -> None:
        self.sock = sock
        self.peer = peer
        self.decoder: SlipDecoder | LengthPrefixDecoder | None = None
        self.outbox: queue.Queue[bytes | None] = queue.Queue(SEND_QUEUE)  # None: the writer stops
        self.closed = threading.Event()
        self.writer: threading.Thread | None = None
        self.reader: threading.Thread | None = None

    def send(self, packet: bytes) -> None:
        """Queue one packet for the writer; queue.Full when the client has stopped reading."""
        encode = self.decoder.encode if self.decoder is not None else slip_encode
        self.outbox.put_nowait(encode(packet))


class OscTcpServer:
    """Accepts OSC-over-TCP connections on (host, port); on_message(address, args, peer) per message."""

    def __init__(
        self,
        host: str,
        port: int,
        on_message: OnMessage,
        *,
        allowed_hosts: Collection[str] | None = None,
        schema: Schema | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._host = host
        self._port = port
        self._on_message = on_message
        self._allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)
        self._schema = schema or load_schema()
        self._max_connections = max_connections
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: dict[int, _Connection] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def address(self) -> tuple[str, int]:
        return bound_address(self._sock, "OscTcpServer")

    def start(self) -> None:
        if self._sock is not None:
            raise RuntimeError("OscTcpServer already started")
        sock = bind_socket(self._host, self._port, socket.SOCK_STREAM,
                           [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)], timeout_s=POLL_S)
        try:
            sock.listen(16)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="continuo-osc-tcp", daemon=True)
        self._thread.start()
        log.info("listening on tcp://%s:%d (SLIP or int32 length prefix, detected per connection)", *self.address)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop accepting, close every connection and wait (up to timeout_s each) for its reader and writer to end,
        so no thread of this server runs, or logs, after it has stopped."""
        with self._lock:  # under the lock: a connection being admitted now is refused, never left open
            self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        with self._lock:
            connections = list(self._connections.values())
        for conn in connections:
            self._close(conn)
        for conn in connections:
            for worker in (conn.reader, conn.writer):
                if worker is not None and worker is not threading.current_thread():
                    worker.join(timeout_s)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            log.info("stopped")

    def __enter__(self) -> OscTcpServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)

    def send(self, dest: Peer, event: Event) -> None:
        """Send one checked event as its OSC packet (the datagram UDP sends, framed as the client frames); never
        raises."""
        self.send_packet(dest, event.osc)

    def send_packet(self, dest: Peer, datagram: bytes) -> None:
        """Send one packet on the peer's connection; a gone or stuck connection is closed, never raised."""
        with self._lock:
            conn = self._connections.get(dest.conn)  # type: ignore[arg-type]
        if conn is None:
            log.info("send to tcp %s:%d dropped: the connection is closed", dest.host, dest.port)
            return
        try:
            conn.send(datagram)
        except queue.Full:
            log.warning("tcp connection %d from %s:%d is not reading (%d replies waiting); closing it",
                        conn.peer.conn, dest.host, dest.port, SEND_QUEUE)
            self._close(conn)

    # -- threads ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        listener = self._sock
        if listener is None:
            return
        while not self._stopping.is_set():
            try:
                sock, address = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    break
                log.warning("accept failed: %s", exc)
                continue
            self._admit(sock, (address[0], address[1]))

    def _admit(self, sock: socket.socket, address: tuple[str, int]) -> None:
        if self._allowed_hosts is not None and address[0] not in self._allowed_hosts:
            log.warning("tcp connection from %s:%d refused: not in the allow-list", *address)
            sock.close()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(SEND_TIMEOUT_S)
        with self._lock:  # admitted with both threads started, or not at all: stop() joins what it finds here
            if self._stopping.is_set():
                sock.close()
                return
            if len(self._connections) >= self._max_connections:
                log.warning("tcp connection from %s:%d refused: %d connections open", *address, self._max_connections)
                sock.close()
                return
            peer = Peer(address[0], address[1], "tcp", next(self._ids))
            conn = _Connection(sock, peer)
            conn.writer = threading.Thread(target=self._write, args=(conn,),
                                           name=f"continuo-osc-tcp-{peer.conn}-out", daemon=True)
            conn.reader = threading.Thread(target=self._serve, args=(conn,), name=f"continuo-osc-tcp-{peer.conn}",
                                           daemon=True)
            self._connections[peer.conn] = conn  # type: ignore[index]
            conn.writer.start()
            conn.reader.start()
        log.info("tcp connection %d from %s:%d", peer.conn, *address)

    def _serve(self, conn: _Connection) -> None:
        try:
            while not self._stopping.is_set() and not conn.closed.is_set():
                try:
                    data = conn.sock.recv(RECV_BYTES)
                except TimeoutError:
                    continue
                except OSError as exc:
                    if not conn.closed.is_set():
                        log.info("tcp connection %d: %s", conn.peer.conn, exc)
                    break
                if not data:
                    break
                try:
                    self.handle_bytes(conn, data)
                except FramingError as exc:
                    log.warning("tcp connection %d from %s:%d: %s; closing", conn.peer.conn, conn.peer.host,
                                conn.peer.port, exc)
                    self._reply_error(conn, f"{exc}; closing the connection (send SLIP or int32-length-prefixed OSC)")
                    self._close(conn, flush=True)
                    break
        finally:
            self._close(conn)

    def _write(self, conn: _Connection) -> None:
        """The connection's writer: packets in order; a write that stalls past SEND_TIMEOUT_S closes it."""
        while True:
            data = conn.outbox.get()
            if data is None or conn.closed.is_set():
                return
            try:
                conn.sock.sendall(data)
            except OSError as exc:  # includes socket.timeout: the client stopped reading
                if not conn.closed.is_set():
                    log.warning("send to tcp connection %d from %s:%d failed (%s); closing it", conn.peer.conn,
                                conn.peer.host, conn.peer.port, exc)
                    self._close(conn)
                return

    def handle_bytes(self, conn: _Connection, data: bytes) -> None:
        """Split received bytes into packets and handle each; FramingError ends the connection."""
        if conn.decoder is None:
            conn.decoder = detect_framing(data[0])
            log.info("tcp connection %d speaks %s", conn.peer.conn, conn.decoder.name)
        for packet in conn.decoder.feed(data):
            self._handle_packet(conn, packet)

    def _handle_packet(self, conn: _Connection, packet: bytes) -> None:
        try:
            messages = parse_datagram(packet)
        except BadRequest as exc:
            self._reply_error(conn, exc.message)
            return
        deliver(messages, self._on_message, conn.peer, f"tcp {conn.peer.host}:{conn.peer.port}")

    def _reply_error(self, conn: _Connection, message: str) -> None:
        try:
            conn.send(self._schema.build_event("/continuo/error", "", "bad_request", message))
        except (queue.Full, ValueError) as exc:
            log.info("tcp connection %d: error reply not sent: %s", conn.peer.conn, exc or "the client is not reading")

    def _close(self, conn: _Connection, *, flush: bool = False) -> None:
        """Close once; flush: let the writer send what is queued first (at most SEND_TIMEOUT_S)."""
        if conn.closed.is_set():
            return
        writer = conn.writer
        if flush and writer is not None and writer is not threading.current_thread():
            try:
                conn.outbox.put(None, timeout=SEND_TIMEOUT_S)
                writer.join(SEND_TIMEOUT_S)
            except queue.Full:
                pass
        with self._lock:  # reader, writer and senders may all get here; one closes
            if conn.closed.is_set():
                return
            conn.closed.set()
        try:
            conn.outbox.put_nowait(None)  # wake the writer so it ends
        except queue.Full:
            pass  # it is blocked in sendall; closing the socket below ends that
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            log.debug("tcp connection %d shutdown: %s", conn.peer.conn, exc)
        conn.sock.close()
        log.info("tcp connection %d from %s:%d closed", conn.peer.conn, conn.peer.host, conn.peer.port)
        with self._lock:  # only now: a stop() meanwhile finds it and joins its threads, so it logs nothing after
            self._connections.pop(conn.peer.conn, None)  # type: ignore[arg-type]
