"""OscClient against a tiny fake daemon built from OscUdpServer and the schema, on loopback."""

from __future__ import annotations

import socket
import threading

import pytest

from bridge.clients.osc import OscClient
from bridge.errors import BadRequest, BridgeError
from bridge.protocol.schema import load_schema
from tests.daemons import FakeOscDaemon

SCHEMA = load_schema()


class FakeDaemon(FakeOscDaemon):
    """Answers hello, ping and generate the way the real daemon does, with made-up results."""

    def __init__(self) -> None:
        super().__init__()
        self.reply_to: dict[tuple[str, int], tuple[str, int]] = {}
        self.acked: list[str] = []
        self.acked_event = threading.Event()
        self.refuse_hello = False

    def emit(self, sender: tuple[str, int], address: str, *args) -> None:
        self.send_event(self.reply_to.get(sender, sender), address, *args)

    def on_message(self, address: str, args: list, sender: tuple[str, int]) -> None:
        try:
            request = SCHEMA.parse(address, args)
            getattr(self, f"on_{request.op}")(request, sender)
        except BadRequest as exc:
            self.emit(sender, "/continuo/error", exc.job_id, exc.code, exc.message)

    def on_hello(self, request, sender) -> None:
        if self.refuse_hello:
            raise BadRequest("no more clients today")
        self.reply_to[sender] = (sender[0], request.args["reply_port"] or sender[1])
        self.emit(sender, "/continuo/welcome", "0.1.0", "fake/model", 48000, "cpu", "/tmp/inbox")

    def on_ping(self, request, sender) -> None:
        self.emit(sender, "/continuo/pong", request.args["seq"])

    def on_ack(self, request, sender) -> None:
        self.acked.append(request.job_id)
        self.acked_event.set()

    def on_generate(self, request, sender) -> None:
        job_id = request.job_id
        if request.args["prompt"] == "fail":
            self.emit(sender, "/continuo/queued", job_id, 0, 1.0)
            self.emit(sender, "/continuo/error", job_id, "model_error", "the fake model refused")
            return
        if request.args["prompt"] == "silent":
            return
        self.emit(sender, "/continuo/queued", job_id, 0, 1.0)
        self.emit(sender, "/continuo/progress", "other-job", 0.5, "generating")  # someone else's
        for fraction in (0.25, 0.75):
            self.emit(sender, "/continuo/progress", job_id, fraction, "generating")
        self.emit(sender, "/continuo/output", job_id, "mix", f"/renders/{job_id}/mix.wav", 48000, 2, 2.0,
                  request.args["bars"], -14.0, -1.0)
        self.emit(sender, "/continuo/done", job_id, 1, 42, 0.1)


@pytest.fixture
def daemon():
    with FakeDaemon() as fake:
        yield fake


@pytest.fixture
def client(daemon):
    with OscClient("127.0.0.1", daemon.port, name="pytest") as osc:
        yield osc


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_hello_returns_the_welcome(client):
    assert client.hello(timeout_s=5) == ["0.1.0", "fake/model", 48000, "cpu", "/tmp/inbox"]


def test_hello_with_an_explicit_reply_port(daemon):
    port = free_udp_port()
    with OscClient("127.0.0.1", daemon.port, reply_port=port) as osc:
        assert osc.reply_address == ("127.0.0.1", port)
        assert osc.hello(timeout_s=5)[0] == "0.1.0"


def test_hello_without_a_daemon_says_what_to_check():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        with OscClient("127.0.0.1", port) as osc, pytest.raises(TimeoutError) as caught:
            osc.hello(timeout_s=0.3)
    assert str(caught.value) == f"no reply from 127.0.0.1:{port} within 0.3 s — is `continuo serve` running?"


def test_a_refused_hello_raises_with_the_code(daemon, client):
    daemon.refuse_hello = True
    with pytest.raises(BridgeError) as caught:
        client.hello(timeout_s=5)
    assert caught.value.code == "bad_request" and "no more clients" in caught.value.message


def test_ping_returns_the_seq(client):
    assert client.ping(7, timeout_s=5) == 7


def test_wait_job_collects_the_job_in_order(client):
    client.hello()
    seen = []
    client.send("/continuo/generate", "job-1", "default", "warm piano", 2.0)
    events = client.wait_job("job-1", timeout_s=5, on_event=lambda a, args: seen.append(a))
    assert [a for a, _ in events] == ["/continuo/queued", "/continuo/progress", "/continuo/progress",
                                      "/continuo/output", "/continuo/done"]
    assert seen == [a for a, _ in events]
    assert events[3][1][2] == "/renders/job-1/mix.wav" and events[-1][1] == ["job-1", 1, 42, pytest.approx(0.1)]
    other = client.wait_for(lambda a, args: args[:1] == ["other-job"], timeout_s=1)  # left queued, not lost
    assert other[0] == "/continuo/progress"


def test_wait_job_ends_on_error_and_acks(daemon, client):
    client.hello()
    client.send("/continuo/generate", "job-2", "default", "fail", 1.0)
    events = client.wait_job("job-2", timeout_s=5, ack=True)
    assert events[-1] == ("/continuo/error", ["job-2", "model_error", "the fake model refused"])
    assert daemon.acked_event.wait(5) and daemon.acked == ["job-2"]


def test_wait_job_times_out_saying_what_it_saw(client):
    client.hello()
    client.send("/continuo/generate", "job-3", "default", "silent", 1.0)
    with pytest.raises(TimeoutError, match="job job-3 not done within 0.3 s"):
        client.wait_job("job-3", timeout_s=0.3)


def test_send_does_not_validate_so_bad_input_reaches_the_daemon(client):
    client.hello()
    client.send("/continuo/generate", "job-4", "default", "x", -2.0)
    _, args = client.wait_for(lambda a, _args: a == "/continuo/error", timeout_s=5)
    assert args[:2] == ["job-4", "bad_request"] and "bars" in args[2]


def test_send_raw_garbage_gets_a_bad_request(client):
    client.send_raw(b"\x00\x01garbage")
    _, args = client.wait_for(lambda a, _args: a == "/continuo/error", timeout_s=5)
    assert args[:2] == ["", "bad_request"]


def test_wait_for_times_out(client):
    with pytest.raises(TimeoutError):
        client.wait_for(lambda a, _args: False, timeout_s=0.1)


def test_drain_returns_and_clears_queued_events(client):
    client.hello()
    client.send("/continuo/ping", 1)
    client.ping(2)
    assert client.drain() == [("/continuo/pong", [1])]
    assert client.drain() == []


def test_close_is_idempotent(daemon):
    osc = OscClient("127.0.0.1", daemon.port)
    osc.close()
    osc.close()
    with pytest.raises(TimeoutError):
        osc.wait_for(lambda a, _args: True, timeout_s=5)  # returns at once: closed
