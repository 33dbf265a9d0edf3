"""The UDP transport: real loopback sockets on port 0, because the socket is the point."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time

import pytest
from pythonosc import osc_bundle_builder, osc_message, osc_message_builder
from pythonosc.parsing import osc_types

from bridge.protocol.schema import load_schema, parse_datagram
from bridge.transports.udp import RECV_BUFFER_BYTES, OscUdpServer

SCHEMA = load_schema()


def message(address: str, *args) -> bytes:
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class Recorder:
    """An on_message that records calls and can be told to raise."""

    def __init__(self, fail_on: set[int] = frozenset()) -> None:
        self.calls: list[tuple[str, list, tuple[str, int]]] = []
        self.fail_on = fail_on
        self.changed = threading.Condition()

    def __call__(self, address: str, args: list, sender: tuple[str, int]) -> None:
        with self.changed:
            self.calls.append((address, args, sender))
            self.changed.notify_all()
        if len(self.calls) in self.fail_on:
            raise RuntimeError(f"handler bug on call {len(self.calls)}")

    def wait_count(self, count: int, timeout_s: float = 10.0) -> int:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while len(self.calls) < count and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())
            return len(self.calls)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def server(recorder):
    with OscUdpServer("127.0.0.1", 0, recorder) as srv:
        yield srv


@pytest.fixture
def peer():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


def test_binds_an_ephemeral_port(server):
    host, port = server.address
    assert host == "127.0.0.1" and port > 0


def test_address_before_start_is_an_error(recorder):
    with pytest.raises(RuntimeError, match="after start"):
        OscUdpServer("127.0.0.1", 0, recorder).address


def test_messages_reach_on_message_with_the_sender(server, recorder, peer):
    peer.sendto(message("/continuo/ping", 5), server.address)
    assert recorder.wait_count(1) == 1
    assert recorder.calls[0] == ("/continuo/ping", [5], peer.getsockname())


def test_a_burst_of_5000_pings_is_all_received(server, recorder, peer):
    server_buffer = server._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if server_buffer < RECV_BUFFER_BYTES:
        pytest.skip(f"the OS granted SO_RCVBUF {server_buffer} < {RECV_BUFFER_BYTES} (raise net.core.rmem_max)")
    for seq in range(5000):
        peer.sendto(message("/continuo/ping", seq), server.address)
    assert recorder.wait_count(5000, timeout_s=15.0) == 5000
    assert [args[0] for _, args, _ in recorder.calls] == list(range(5000))  # in order


def test_the_loop_survives_an_on_message_that_raises(peer, caplog):
    recorder = Recorder(fail_on={1, 3})
    with OscUdpServer("127.0.0.1", 0, recorder) as srv, caplog.at_level(logging.ERROR, "continuo.osc"):
        for seq in range(5):
            peer.sendto(message("/continuo/ping", seq), srv.address)
        assert recorder.wait_count(5) == 5
    failures = [r for r in caplog.records if "on_message failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)


def test_malformed_datagrams_get_a_bad_request_reply(server, recorder, peer):
    peer.sendto(b"certainly not OSC", server.address)
    reply, _ = peer.recvfrom(2048)
    [(address, args)] = parse_datagram(reply)
    assert address == "/continuo/error" and args[:2] == ["", "bad_request"] and "OSC" in args[2]
    peer.sendto(message("/continuo/ping", 1), server.address)  # still serving
    assert recorder.wait_count(1) == 1


def test_malformed_datagrams_are_logged_at_most_once_a_second(server, peer, caplog):
    with caplog.at_level(logging.WARNING, "continuo.osc"):
        for _ in range(50):
            peer.sendto(b"\x00garbage", server.address)
        for _ in range(50):
            peer.recvfrom(2048)  # every one is answered
    lines = [r for r in caplog.records if "bad datagram" in r.getMessage()]
    assert 1 <= len(lines) <= 2


def test_bundles_are_delivered_in_order(server, recorder, peer):
    builder = osc_bundle_builder.OscBundleBuilder(osc_types.IMMEDIATELY)
    for seq in range(3):
        builder.add_content(osc_message.OscMessage(message("/continuo/ping", seq)))
    peer.sendto(builder.build().dgram, server.address)
    assert recorder.wait_count(3) == 3
    assert [args for _, args, _ in recorder.calls] == [[0], [1], [2]]


def test_send_reaches_the_peer_from_the_listening_port(server, peer):
    server.send(peer.getsockname(), SCHEMA.check_event("/continuo/pong", 9))
    data, source = peer.recvfrom(2048)
    assert parse_datagram(data) == [("/continuo/pong", [9])] and source == server.address


def test_send_errors_are_logged_not_raised(server, caplog):
    with caplog.at_level(logging.WARNING, "continuo.osc"):
        server.send_datagram(("256.0.0.1", 9), b"/x\x00\x00")  # invalid address
        server.send_datagram(("127.0.0.1", 9), b"x" * 70000)  # too big for UDP
    assert sum("send to" in r.getMessage() for r in caplog.records) == 2


def test_send_is_thread_safe(server, peer):
    seqs: set[int] = set()

    def receive() -> None:
        while len(seqs) < 800:
            try:
                data, _ = peer.recvfrom(2048)
            except TimeoutError:
                return
            seqs.add(parse_datagram(data)[0][1][0])

    def blast(offset: int) -> None:
        for seq in range(200):
            server.send(peer.getsockname(), SCHEMA.check_event("/continuo/pong", offset + seq))

    receiver = threading.Thread(target=receive)
    receiver.start()
    senders = [threading.Thread(target=blast, args=(1000 * i,)) for i in range(4)]
    for thread in senders:
        thread.start()
    for thread in [*senders, receiver]:
        thread.join()
    assert seqs == {1000 * i + seq for i in range(4) for seq in range(200)}


def test_handle_datagram_works_without_a_socket(recorder):
    srv = OscUdpServer("127.0.0.1", 0, recorder)
    srv.handle_datagram(message("/continuo/status"), ("127.0.0.1", 1234))
    srv.handle_datagram(b"junk", ("127.0.0.1", 1234))  # reply is dropped: not started
    assert recorder.calls == [("/continuo/status", [], ("127.0.0.1", 1234))]


def test_allow_list_drops_other_hosts(recorder):
    srv = OscUdpServer("127.0.0.1", 0, recorder, allowed_hosts={"10.0.0.5"})
    srv.handle_datagram(message("/continuo/status"), ("10.0.0.6", 1))
    srv.handle_datagram(message("/continuo/ping", 1), ("10.0.0.5", 1))
    assert [call[0] for call in recorder.calls] == ["/continuo/ping"]


def test_stop_is_prompt_and_idempotent(recorder):
    srv = OscUdpServer("127.0.0.1", 0, recorder)
    srv.start()
    thread = srv._thread
    started = time.monotonic()
    srv.stop()
    srv.stop()
    assert time.monotonic() - started < 1.5 and not thread.is_alive()


def test_a_port_in_use_raises_on_start(server, recorder):
    with pytest.raises(OSError):
        OscUdpServer("127.0.0.1", server.address[1], recorder).start()


def test_transports_never_import_torch():
    code = ("import sys, bridge.transports.udp, bridge.clients.osc, bridge.protocol.docs; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
