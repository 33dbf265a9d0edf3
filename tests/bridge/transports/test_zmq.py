"""The ZeroMQ transport and client on loopback, with a recording on_message; CURVE keys."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zmq

from bridge.clients.zmq import ZmqClient, parse_reply
from bridge.protocol.schema import load_schema
from bridge.protocol.zmq_frames import SIGNATURE, encode_header
from bridge.settings import load_settings
from bridge.tools.keys import load_keys, make_keys
from bridge.transports.zmq import ZmqServer

SCHEMA = load_schema()


class Fake:
    """Answers ping and generate like the daemon, through the server's send()."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list, object]] = []
        self.server: ZmqServer | None = None
        self.cond = threading.Condition()

    def __call__(self, address, args, peer) -> None:
        with self.cond:
            self.calls.append((address, args, peer))
            self.cond.notify_all()
        send = lambda event, *a: self.server.send(peer, SCHEMA.check_event(event, *a))  # noqa: E731
        if address == "/continuo/ping":
            send("/continuo/pong", args[0] if args else 0)
        elif address == "/continuo/generate":
            send("/continuo/queued", args[0], 1, 0.5)
            threading.Thread(target=send, args=("/continuo/done", args[0], 0, 7, 0.1)).start()  # from another thread
        elif address == "/continuo/continue":
            send("/continuo/queued", args[0], 1, 0.5)


def settings_for(tmp_path: Path, **extra: str):
    return load_settings({"zmq_port": "0", "zmq_pub_port": "0", "output_root": str(tmp_path / "renders"),
                          "max_input_bytes": str(10 * 1024 * 1024), **extra})


@pytest.fixture
def served(tmp_path):
    fake = Fake()
    server = ZmqServer(settings_for(tmp_path), fake, inbox=tmp_path / "inbox")
    fake.server = server
    server.start()
    yield server, fake
    server.stop()


def test_ping_and_a_job_get_accepted_then_terminal(served):
    server, _ = served
    with ZmqClient(server.router_endpoint) as client:
        assert client.ping(3) == 3
        client.request("generate", {"job_id": "z1", "preset": "default", "prompt": "x", "bars": 1.0})
        replies = client.wait_job("z1", 5)
    assert [r.event for r in replies] == ["accepted", "done"]
    assert replies[0].args == {"job_id": "z1", "position": 1, "eta_s": 0.5}


def test_job_events_are_published_with_the_job_id_as_topic(served):
    server, _ = served
    with ZmqClient(server.router_endpoint) as client:
        sub = client.subscribe(server.pub_endpoint, b"z2")
        time.sleep(0.3)  # a PUB drops what is sent before the subscription lands
        client.request("generate", {"job_id": "z2", "preset": "default", "prompt": "x", "bars": 1.0})
        client.wait_job("z2", 5)
        assert sub.poll(5000)
        frames = sub.recv_multipart()
        sub.close(0)
    assert frames[0] == b"z2" and parse_reply(frames).event == "accepted"


def test_an_event_without_a_client_is_published_only(served):
    """After a restart a re-run job's ZeroMQ client has no ROUTER identity: PUB carries its events."""
    server, _ = served
    with ZmqClient(server.router_endpoint) as client:
        sub = client.subscribe(server.pub_endpoint, b"z9")
        time.sleep(0.3)  # a PUB drops what is sent before the subscription lands
        server.send(None, SCHEMA.check_event("/continuo/progress", "z9", 0.5, "decoding"))
        assert sub.poll(5000)
        frames = sub.recv_multipart()
        sub.close(0)
    assert frames[0] == b"z9" and parse_reply(frames).event == "progress"


def test_a_jam_bar_carries_its_pcm_to_the_client_and_the_jams_subscribers(served, tmp_path):
    server, fake = served
    bar = tmp_path / "bar-000003.wav"
    audio = np.sin(np.arange(6000) / 7.0).astype(np.float32)[:, None] * 0.5
    sf.write(bar, audio, 32000, subtype="PCM_24")  # as the recording writes it
    chunk = SCHEMA.check_event("/continuo/jam/chunk", "jam-z", 3, 12.0, 4.0, 127.0, 2, 0, bar.as_posix(),
                               "/api/jam/jam-z/bars/3", 6000 / 32000, 32000)
    with ZmqClient(server.router_endpoint) as client:
        sub = client.subscribe(server.pub_endpoint, b"jam-z")
        time.sleep(0.3)  # a PUB drops what is sent before the subscription lands
        client.request("ping", {"seq": 1})
        with fake.cond:
            fake.cond.wait_for(lambda: fake.calls, 5)
        peer = fake.calls[0][2]  # the jam's client
        server.send(peer, chunk)
        direct = client.wait_for(lambda r: r.event == "jam/chunk", 5)
        assert sub.poll(5000)
        published = parse_reply(sub.recv_multipart())
        sub.close(0)
    recorded, _ = sf.read(bar, dtype="float32", always_2d=True)
    for reply in (direct, published):
        assert reply.args["bar"] == 3 and reply.args["start_beat"] == 12.0 and reply.args["bpm"] == 127.0
        assert reply.args["prompt_id"] == 2 and reply.header["pcm"]["sample_rate"] == 32000
        assert len(reply.pcm) == 1 and np.array_equal(reply.pcm[0], recorded)  # the bar's WAV, sample for sample
    unrecorded = [*chunk.values[:7], "", *chunk.values[8:]]  # a bar with no WAV: the header alone, no failure
    assert len(server.event_frames(chunk.address, unrecorded)) == 2


def test_inline_input_is_written_to_the_inbox_and_named_as_the_path(served, tmp_path):
    server, fake = served
    audio = np.linspace(-0.5, 0.5, 4800 * 2, dtype=np.float32).reshape(4800, 2)
    with ZmqClient(server.router_endpoint) as client:
        client.request("continue", {"job_id": "in-1", "preset": "default", "bars": 1.0},
                       inputs=[("input_path", audio, 48000)])
        client.wait_for(lambda r: r.event == "accepted", 5)
    address, args, _ = fake.calls[-1]
    assert address == "/continuo/continue" and args[0] == "in-1"
    path = Path(args[2])
    assert path.parent == tmp_path / "inbox" and path.suffix == ".wav"
    stored, rate = sf.read(path, dtype="float32")
    assert rate == 48000 and np.array_equal(stored, audio)
    assert not list((tmp_path / "inbox").glob(".*.partial"))


@pytest.mark.parametrize("frames, expect", [
    ([b"nonsense"], "no CONTINUO/1"),
    ([SIGNATURE], "no header"),
    ([SIGNATURE, b"{not json"], "not UTF-8 JSON"),
    ([SIGNATURE, b"\xff\xfe"], "not UTF-8 JSON"),
    ([SIGNATURE, b"[1, 2]"], "JSON object"),
    ([SIGNATURE, b'{"op": "explode"}'], "unknown op"),
    ([SIGNATURE, b'{"op": "ping", "args": []}'], "JSON objects"),
    ([SIGNATURE, b'{"op": "ping", "args": {"seq": 1, "extra": 2}}'], "unknown args"),
    ([SIGNATURE, b'{"op": "ping", "outputs": "fax"}'], "outputs must be"),
    ([SIGNATURE, b'{"op": "generate", "args": {"job_id": "a"}, "inputs": [{}]}'], "1 inputs described, 0 PCM"),
    ([SIGNATURE, encode_header({"op": "continue", "args": {"job_id": "a", "preset": "default", "bars": 1.0},
                                "inputs": [{"arg": "input_path", "channels": 2, "frames": 10, "sample_rate": 48000}]}),
      b"\x00" * 12], "float32 is 80"),
    ([SIGNATURE, encode_header({"op": "continue", "args": {"job_id": "a", "preset": "default", "bars": 1.0},
                                "inputs": [{"arg": "prompt", "channels": 1, "frames": 1, "sample_rate": 48000}]}),
      b"\x00" * 4], "path argument"),
    ([SIGNATURE, encode_header({"op": "continue", "args": {"job_id": "a", "preset": "default", "bars": 1.0},
                                "inputs": [{"channels": 1, "frames": 1, "sample_rate": 48000}]}),
      np.array([np.nan], np.float32).tobytes()], "NaN"),
    ([SIGNATURE, b'{"op": "ping"}', *([b"x"] * 40)], "at most"),
])
def test_malformed_frames_are_answered_with_bad_request(served, frames, expect):
    server, fake = served
    with ZmqClient(server.router_endpoint) as client:
        client.send_frames(frames)
        reply = client.recv(5)
        assert reply.event == "error" and reply.args["code"] == "bad_request", reply
        assert expect in reply.args["message"], reply.args["message"]
        assert client.ping(1) == 1  # still serving
    assert all(address == "/continuo/ping" for address, _, _ in fake.calls)


def test_oversized_inline_input_is_refused(served):
    server, _ = served
    big = np.zeros((11 * 1024 * 1024 // 8, 2), np.float32)  # 11 MiB > the 10 MiB limit
    with ZmqClient(server.router_endpoint) as client:
        client.request("continue", {"job_id": "big", "preset": "default", "bars": 1.0},
                       inputs=[("input_path", big, 48000)])
        reply = client.recv(10)
    assert reply.event == "error" and "over the limits" in reply.args["message"]


def test_curve_lets_in_only_clients_with_the_server_key(tmp_path):
    made = make_keys(tmp_path / "keys")
    fake = Fake()
    server = ZmqServer(settings_for(tmp_path, zmq_keys_dir=str(tmp_path / "keys")), fake)
    fake.server = server
    server.start()
    try:
        server_public, _ = load_keys(made["server_public"])
        client_pair = load_keys(made["client_secret"])
        with ZmqClient(server.router_endpoint, server_public_key=server_public, client_keys=client_pair) as ok:
            assert ok.ping(1) == 1
        with ZmqClient(server.router_endpoint) as plain, pytest.raises(TimeoutError):
            plain.ping(2, timeout_s=1.5)  # no CURVE: the handshake never completes
        stranger = zmq.curve_keypair()  # right server key, but not an authorized client
        with ZmqClient(server.router_endpoint, server_public_key=server_public, client_keys=stranger) as other, \
                pytest.raises(TimeoutError):
            other.ping(3, timeout_s=1.5)
    finally:
        server.stop()
    assert [args for address, args, _ in fake.calls] == [[1]]


def test_keys_command_makes_pairs_and_authorizes_the_client(tmp_path):
    made = make_keys(tmp_path / "k", client="laptop")
    assert made["server_secret"].stat().st_mode & 0o077 == 0
    assert (tmp_path / "k" / "clients" / "laptop.key").is_file()


def test_a_client_whose_sends_cannot_go_anywhere_times_out_with_a_reason():
    """A DEALER without a connected daemon blocks on send once its queue is full (or at once, after a refused
    CURVE handshake): the client gives up after send_timeout_s with a TimeoutError, never hangs."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ZmqClient(f"tcp://127.0.0.1:{port}", send_timeout_s=0.2) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"could not send to tcp://127\.0\.0\.1:\d+ within 0\.2 s"):
            for seq in range(100_000):  # past the send queue's high-water mark (1000)
                client.send_frames([SIGNATURE, encode_header({"op": "ping", "args": {"seq": seq}})])
        assert time.monotonic() - started < 10
