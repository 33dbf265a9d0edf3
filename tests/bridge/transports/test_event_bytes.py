"""Every event leaves each transport as the same bytes it did when ZeroMQ re-read the OSC datagram.

The EventSink checks (address, args) with the schema once and hands the checked Event on;
UDP and TCP must send exactly `Schema.build_event(address, *args)`, and ZeroMQ the
header (and inline PCM, and PUB topic) that the old path made by parsing that datagram
back (`legacy_outbox` below is that old path, kept as the reference).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

import bridge.protocol.schema as schema_module
from bridge.jobs.events import EventSink
from bridge.protocol.framing import SlipDecoder, slip_encode
from bridge.protocol.schema import load_schema, parse_datagram
from bridge.protocol.zmq_frames import SIGNATURE, VERSION, encode_header, event_name
from bridge.settings import load_settings
from bridge.transports.peers import Peer, Router
from bridge.transports.tcp import OscTcpServer
from bridge.transports.udp import OscUdpServer
from bridge.transports.zmq import ZmqServer, _read_pcm, pub_topic

SCHEMA = load_schema()
LONG = "the plugin said: " + "ünïcode and a very long explanation " * 60  # over 1 KB: truncated


def events(wav: str = "/tmp/continuo-bytes/job-1/mix.wav") -> list[tuple[str, tuple]]:
    """Every event kind (the schema's examples) plus floats that float32 rounds and strings that get cut."""
    cases = [(address, tuple(spec.example)) for address, spec in SCHEMA.events.items()]
    cases += [
        ("/continuo/queued", ("job-2", 3, 1 / 3)),
        ("/continuo/progress", ("job-2", 0.1, "decoding")),
        ("/continuo/progress", ("job-2", 0.7, "decoding")),
        ("/continuo/output", ("job-2", "mix", wav, 48000, 2, 2.0000001, 0.3, -14.123456, -0.9999)),
        ("/continuo/partial", ("job-2", 2, wav, 1.1, 0.45)),
        ("/continuo/done", ("job-2", 3, 2**31 - 1, 12.345678)),
        ("/continuo/error", ("job-2", "model_error", LONG)),
        ("/continuo/error", ("", "busy", "slow down")),
        ("/continuo/presets", ("default", LONG)),
        ("/continuo/limits", (16, 64.0, 8, 268435456, 600.0, 1000.0, 0.123456789)),
        ("/continuo/context", (123.4, 7, 8, "", 44100)),
        ("/continuo/status", ("busy", "tiny", 0.1, 15.9, 2)),
    ]
    return cases


def test_every_event_kind_is_covered():
    assert {address for address, _ in events()} == set(SCHEMA.events)


def test_checked_values_are_what_an_osc_client_reads_back():
    for address, args in events():
        (parsed_address, parsed), = parse_datagram(SCHEMA.build_event(address, *args))
        assert (parsed_address, list(SCHEMA.check_event(address, *args).values)) == (address, parsed)


# -- UDP and TCP: the schema's datagram, byte for byte ------------------------------------------
def test_udp_sends_the_schemas_datagram_through_the_sink_and_the_router():
    with OscUdpServer("127.0.0.1", 0, lambda *a: None) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        sink = EventSink(SCHEMA, Router(server.send).send)
        for address, args in events():
            sink.emit(peer.getsockname(), address, *args)
            data, _ = peer.recvfrom(65535)
            assert data == SCHEMA.build_event(address, *args), address


def test_tcp_sends_the_schemas_datagram_in_the_clients_framing():
    peers: list[Peer] = []
    arrived = threading.Event()

    def on_message(address, args, peer) -> None:
        peers.append(peer)
        arrived.set()

    with OscTcpServer("127.0.0.1", 0, on_message) as server, \
            socket.create_connection(server.address, timeout=5) as client:
        client.sendall(slip_encode(OscMessageBuilder("/continuo/ping").build().dgram))  # SLIP from here on
        assert arrived.wait(5)
        cases = events()
        for address, args in cases:
            server.send(peers[0], SCHEMA.check_event(address, *args))
        decoder, packets = SlipDecoder(), []
        deadline = time.monotonic() + 10
        while len(packets) < len(cases) and time.monotonic() < deadline:
            packets += decoder.feed(client.recv(65536))
    assert packets == [SCHEMA.build_event(address, *args) for address, args in cases]


# -- ZeroMQ: the header the old path made from the parsed-back datagram --------------------------
def legacy_outbox(address: str, args: tuple, dest: Peer | None, inline: dict[str, str]) -> list[tuple]:
    """What ZmqServer.send queued before checked events reached it: parse the OSC datagram back, re-encode."""
    (address, parsed), = parse_datagram(SCHEMA.build_event(address, *args))
    names = [arg.name for arg in SCHEMA.events[address].args]
    header = {"v": VERSION, "event": event_name(address), "args": dict(zip(names, parsed))}
    frames: list = [SIGNATURE]
    pcm = None
    if address == "/continuo/output" and inline.get(parsed[0], "path") != "path":
        pcm, info = _read_pcm(parsed[2])
        if pcm is not None:
            header["pcm"] = info
    frames.append(encode_header(header))
    if pcm is not None:
        frames.append(pcm)
    publish = frames[:2] if address in SCHEMA.job_events and parsed and parsed[0] else None
    queued = [(dest, frames)] if dest is not None else []
    if publish is not None:
        queued.append((None, [str(parsed[0]).encode(), *publish]))
    return queued


def as_bytes(queued: list[tuple]) -> list[tuple]:
    return [(dest, [bytes(np.ascontiguousarray(f)) if isinstance(f, np.ndarray) else f for f in frames])
            for dest, frames in queued]


@pytest.fixture
def zmq_server(tmp_path):
    settings = load_settings({"zmq_port": "0", "zmq_pub_port": "0", "output_root": str(tmp_path / "renders")})
    server = ZmqServer(settings, lambda *a: None, inbox=tmp_path / "inbox")  # never started: sends stay queued
    yield server
    server.stop()


@pytest.mark.parametrize("mode", ["path", "inline", "both"])
@pytest.mark.parametrize("dest", [Peer("127.0.0.1", 0, "zmq", (b"client-1",)), None], ids=["client", "pub-only"])
def test_zmq_frames_and_topics_equal_the_old_parse_back_path(zmq_server, tmp_path: Path, mode, dest):
    wav = tmp_path / "renders" / "job-1" / "mix.wav"
    wav.parent.mkdir(parents=True)
    sf.write(wav, np.linspace(-0.5, 0.5, 4800 * 2, dtype=np.float32).reshape(4800, 2), 48000, subtype="FLOAT")
    request = encode_header({"op": "get", "args": {"job_id": "job-1"}, "outputs": mode})
    zmq_server.handle_frames([b"client-1", SIGNATURE, request])  # remembers job-1's output mode
    inline = {"job-1": mode} if mode != "path" else {}
    cases = events(wav.as_posix()) + [("/continuo/output", ("job-1", "mix", wav.as_posix(), 48000, 2, 0.1, 0.05,
                                                            -14.2, -1.1))]
    carried_pcm = False
    for address, args in cases:
        zmq_server._outbox.clear()
        zmq_server.send(dest, SCHEMA.check_event(address, *args))
        queued = list(zmq_server._outbox)
        assert as_bytes(queued) == as_bytes(legacy_outbox(address, args, dest, inline)), address
        carried_pcm |= any(isinstance(frames[-1], np.ndarray) for _, frames in queued)
    assert carried_pcm == (mode != "path" and dest is not None)  # the inline cases were exercised


def test_pub_topic_is_the_job_id_of_job_events_only():
    assert pub_topic(SCHEMA, "/continuo/progress", ("job-7", 0.5, "decoding")) == b"job-7"
    assert pub_topic(SCHEMA, "/continuo/error", ("", "busy", "slow down")) is None
    assert pub_topic(SCHEMA, "/continuo/pong", (1,)) is None


# -- one check, one OSC build per event, whichever transport carries it ---------------------------
def test_each_event_is_checked_and_built_once_on_its_way_to_any_transport(zmq_server, monkeypatch):
    builds: list[str] = []
    build = schema_module._build

    def counted(spec, values):
        builds.append(spec.address)
        return build(spec, values)

    monkeypatch.setattr(schema_module, "_build", counted)
    udp = OscUdpServer("127.0.0.1", 0, lambda *a: None)  # never started: its sends are logged and dropped
    tcp = OscTcpServer("127.0.0.1", 0, lambda *a: None)  # no such connection: dropped
    router = Router(udp.send)
    router.register("tcp", tcp.send)
    router.register("zmq", zmq_server.send)
    sink = EventSink(SCHEMA, router.send)
    for dest in [("127.0.0.1", 9), Peer("127.0.0.1", 9, "tcp", 1), Peer("127.0.0.1", 0, "zmq", (b"c",)),
                 ("zmq:127.0.0.1", 9)]:
        builds.clear()
        assert sink.emit(dest, "/continuo/progress", "job-1", 0.5, "decoding") is not None
        assert builds == ["/continuo/progress"], dest
