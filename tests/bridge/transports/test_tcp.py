"""OSC over TCP: both framings, detected per connection; real loopback sockets where the socket is the point."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonosc import osc_bundle_builder, osc_message_builder

from bridge.clients.osc import OscTcpClient
from bridge.protocol.framing import (
    FramingError,
    LengthPrefixDecoder,
    SlipDecoder,
    detect_framing,
    length_prefix_encode,
    slip_encode,
)
from bridge.protocol.schema import load_schema
from bridge.transports.tcp import OscTcpServer

SCHEMA = load_schema()


def message(address: str, *args) -> bytes:
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class Echo:
    """An on_message that records calls and answers pings on the server, like the daemon does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list, object]] = []
        self.cond = threading.Condition()
        self.server: OscTcpServer | None = None

    def __call__(self, address, args, peer) -> None:
        with self.cond:
            self.calls.append((address, args, peer))
            self.cond.notify_all()
        if address == "/continuo/ping" and self.server is not None:
            self.server.send(peer, SCHEMA.check_event("/continuo/pong", args[0]))

    def wait_count(self, count: int, timeout_s: float = 10.0) -> int:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while len(self.calls) < count and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
            return len(self.calls)


@pytest.fixture
def echo():
    return Echo()


@pytest.fixture
def server(echo):
    with OscTcpServer("127.0.0.1", 0, echo) as srv:
        echo.server = srv
        yield srv


packets = st.binary(min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(st.lists(packets, min_size=1, max_size=5), st.integers(min_value=1, max_value=64))
def test_slip_round_trip_in_any_chunks(items, chunk):
    stream = b"".join(slip_encode(p) for p in items)
    decoder = SlipDecoder()
    out = []
    for i in range(0, len(stream), chunk):
        out += decoder.feed(stream[i:i + chunk])
    assert out == items


@settings(max_examples=200, deadline=None)
@given(st.lists(packets, min_size=1, max_size=5), st.integers(min_value=1, max_value=64))
def test_length_prefix_round_trip_in_any_chunks(items, chunk):
    stream = b"".join(length_prefix_encode(p) for p in items)
    decoder = LengthPrefixDecoder()
    out = []
    for i in range(0, len(stream), chunk):
        out += decoder.feed(stream[i:i + chunk])
    assert out == items


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decoders_never_raise_anything_but_framing_errors(data):
    for decoder in (SlipDecoder(max_frame_bytes=128), LengthPrefixDecoder(max_frame_bytes=128)):
        try:
            decoder.feed(data)
        except FramingError:
            pass  # the only error a stream may cause; the connection is then closed


def test_slip_without_a_leading_end_and_detection():
    assert SlipDecoder().feed(b"/a\x00\x00,\x00\x00\x00\xc0") == [b"/a\x00\x00,\x00\x00\x00"]
    assert isinstance(detect_framing(0xC0), SlipDecoder)
    assert isinstance(detect_framing(ord("/")), SlipDecoder)
    assert isinstance(detect_framing(ord("#")), SlipDecoder)
    assert isinstance(detect_framing(0), LengthPrefixDecoder)
    with pytest.raises(FramingError):
        LengthPrefixDecoder(max_frame_bytes=16).feed(struct.pack(">i", 17))
    with pytest.raises(FramingError):
        SlipDecoder().feed(bytes([0xDB, 0x41]))


@pytest.mark.parametrize("framing", ["slip", "length"])
def test_each_framing_is_served_and_answered_on_the_connection(server, echo, framing):
    with OscTcpClient("127.0.0.1", server.address[1], framing=framing) as client:
        assert client.ping(5) == 5
        client.send("/continuo/status")
        assert echo.wait_count(2) == 2
    address, args, peer = echo.calls[0]
    assert (address, args, peer.transport) == ("/continuo/ping", [5], "tcp")


def test_two_connections_with_different_framings_at_once(server, echo):
    with OscTcpClient("127.0.0.1", server.address[1], framing="slip") as a, \
            OscTcpClient("127.0.0.1", server.address[1], framing="length") as b:
        for seq in range(20):
            assert a.ping(seq) == seq and b.ping(100 + seq) == 100 + seq
    peers = {peer.conn for _, _, peer in echo.calls}
    assert len(peers) == 2


def test_bundle_messages_are_handled_in_order(server, echo):
    bundle = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
    for seq in range(5):
        bundle.add_content(_ping_msg(seq))
    with OscTcpClient("127.0.0.1", server.address[1], framing="length") as client:
        client.send_raw(bundle.build().dgram)
        assert echo.wait_count(5) == 5
    assert [args[0] for _, args, _ in echo.calls] == [0, 1, 2, 3, 4]


def _ping_msg(seq: int):
    builder = osc_message_builder.OscMessageBuilder("/continuo/ping")
    builder.add_arg(seq)
    return builder.build()


def test_a_malformed_packet_is_answered_and_the_connection_stays(server, echo):
    with OscTcpClient("127.0.0.1", server.address[1], framing="slip") as client:
        client.send_raw(b"/continuo/ping\x00\x00,q\x00\x00")  # bad type tag, well framed
        _, error = client.wait_for(lambda a, _args: a == "/continuo/error", 5)
        assert error[1] == "bad_request"
        assert client.ping(9) == 9


def test_broken_framing_is_answered_then_closed(server):
    with OscTcpClient("127.0.0.1", server.address[1], framing="length") as client:
        client.send_bytes(struct.pack(">i", 10_000_000))  # past MAX_FRAME_BYTES
        _, error = client.wait_for(lambda a, _args: a == "/continuo/error", 5)
        assert "length prefix" in error[2]
        deadline = time.monotonic() + 5
        while client.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not client.connected
    assert server.connection_count == 0 or _eventually(lambda: server.connection_count == 0)


def test_hosts_outside_the_allow_list_are_refused(echo):
    with OscTcpServer("127.0.0.1", 0, echo, allowed_hosts={"10.9.8.7"}) as srv:
        sock = socket.create_connection(srv.address, timeout=5)
        sock.settimeout(5)
        try:
            sock.sendall(slip_encode(message("/continuo/ping", 1)))
            assert sock.recv(100) == b""  # closed without a word
        except ConnectionResetError:
            pass  # or reset, when the close raced the send
        finally:
            sock.close()
    assert echo.calls == []


def test_send_to_a_closed_connection_is_dropped_quietly(server, echo):
    with OscTcpClient("127.0.0.1", server.address[1]) as client:
        client.send("/continuo/status")
        echo.wait_count(1)
    peer = echo.calls[0][2]
    assert _eventually(lambda: server.connection_count == 0)
    server.send(peer, SCHEMA.check_event("/continuo/pong", 1))  # must not raise


def _eventually(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class StuckSocket:
    """A connection's socket whose writes hang until released: a client that stopped reading."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock, self.release = sock, threading.Event()

    def sendall(self, data: bytes) -> None:
        self.release.wait()
        raise TimeoutError("timed out")

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_a_client_that_stops_reading_never_holds_up_the_sender_or_other_clients(server, echo):
    from bridge.transports.tcp import SEND_QUEUE

    with OscTcpClient("127.0.0.1", server.address[1]) as stuck, OscTcpClient("127.0.0.1", server.address[1]) as ok:
        stuck.send("/continuo/status")
        echo.wait_count(1)
        peer = echo.calls[0][2]
        conn = server._connections[peer.conn]
        conn.sock = StuckSocket(conn.sock)
        pong = SCHEMA.check_event("/continuo/pong", 1)
        flood = threading.Thread(target=lambda: [server.send(peer, pong) for _ in range(SEND_QUEUE + 10)])
        flood.start()
        flood.join(30)
        assert not flood.is_alive(), "send() blocked on a client that does not read"
        assert _eventually(lambda: peer.conn not in server._connections)  # its queue filled: closed
        assert ok.ping(7) == 7  # everyone else is served throughout
        conn.sock.release.set()



def test_stop_ends_every_connection_thread_before_it_returns(echo):
    """After stop() no reader or writer of the server runs: none can log once a test's (or the daemon's) log
    streams are closed ("I/O operation on closed file" came from a reader that outlived its server)."""
    before = set(threading.enumerate())
    server = OscTcpServer("127.0.0.1", 0, echo)
    server.start()
    clients = [OscTcpClient("127.0.0.1", server.address[1]) for _ in range(3)]
    try:
        for client in clients[:2]:  # two that spoke (a decoder chosen), one that only connected
            client.send("/continuo/status")
        echo.wait_count(2)

        def ours() -> list[threading.Thread]:
            return [t for t in set(threading.enumerate()) - before
                    if t.name.startswith("continuo-osc-tcp-") and t.name != "continuo-osc-tcp-client"]

        # the control: a reader and a writer per connection run while it serves
        assert _eventually(lambda: server.connection_count == 3 and len(ours()) == 6), ours()
        serving = ours()
        server.stop()
        assert [t for t in serving if t.is_alive()] == []
        assert server.connection_count == 0
    finally:
        server.stop()
        for client in clients:
            client.close()


def test_stop_waits_for_a_connection_that_is_closing_on_its_own(echo, monkeypatch):
    """A client hangs up as the server stops: its reader, closing the connection, logs "closed"; stop() must wait
    for it, not return while it is still to log (under -n 2 such a line reached a closed capture stream). The
    control: the reader is held inside that log call, and stop() is seen waiting for it."""
    import bridge.transports.tcp as tcp

    server = OscTcpServer("127.0.0.1", 0, echo)
    server.start()
    client = OscTcpClient("127.0.0.1", server.address[1])
    logging_close, release = threading.Event(), threading.Event()
    info = tcp.log.info

    def held_info(text, *args):
        if text.endswith(" closed") and threading.current_thread().name.startswith("continuo-osc-tcp-"):
            logging_close.set()
            release.wait(10)
        info(text, *args)

    try:
        client.send("/continuo/status")
        echo.wait_count(1)
        monkeypatch.setattr(tcp.log, "info", held_info)
        client.close()  # the reader sees the stream end and closes the connection itself
        assert logging_close.wait(10)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopper.join(0.5)
        assert stopper.is_alive()  # stop() waits: the connection's reader is still closing it
        release.set()
        stopper.join(10)
        assert not stopper.is_alive() and server.connection_count == 0
    finally:
        release.set()
        server.stop()
        client.close()
