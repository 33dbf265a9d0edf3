"""Fuzzing the receive path: 100,000 malformed or random OSC packets and malformed ZeroMQ frames.

In-process (fast): packets go straight into the UDP transport's handle_datagram, the
TCP framing decoder and the ZeroMQ handle_frames of a real Daemon (tiny model), whose
events are recorded instead of sent. Zero exceptions escape, every message that
parses as OSC but breaks the schema is answered with /continuo/error, and the
daemon still renders a real job afterwards. A seeded generator makes the bulk
(reproducible, fast); hypothesis adds shrinking property tests on top.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bridge.daemon import Daemon
from bridge.errors import BadRequest
from bridge.protocol.framing import FramingError, detect_framing
from bridge.protocol.schema import Event, load_schema, parse_datagram
from bridge.protocol.zmq_frames import SIGNATURE
from bridge.settings import load_settings
from bridge.transports.peers import Peer
from bridge.transports.tcp import _Connection

SCHEMA = load_schema()
ADDRESSES = list(SCHEMA.requests) + ["/continuo/nope", "/continuo", "/", "/continuo/generate/x"]
FUZZ_PACKETS = 100_000
SENDER = ("127.0.0.1", 40000)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[object, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, dest, event: Event) -> None:
        datagram = event.osc  # what the UDP and TCP transports send
        with self.lock:
            self.sent.append((dest, datagram))

    def __len__(self) -> int:
        with self.lock:
            return len(self.sent)

    def since(self, start: int) -> list[tuple[object, bytes]]:
        with self.lock:
            return self.sent[start:]


@pytest.fixture(scope="module")
def daemon(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    settings = load_settings({
        "model": str(tiny_model_dir), "osc_port": "0", "zmq_port": "0", "zmq_pub_port": "0", "http_port": "0",
        "output_root": str(root / "renders"), "user_presets_dir": str(root / "presets"),
        "max_messages_per_s": "0", "ack_resends": "0", "max_queue": "4",
    }, environ={})
    quiet = [logging.getLogger(name) for name in ("continuo", "continuo.daemon", "continuo.osc", "continuo.zmq")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    d = Daemon(settings)
    d.startup()
    recorder = Recorder()
    d.events._send = recorder  # record instead of sending (the transports stay up)
    d.recorder = recorder
    yield d
    d.stop_requested.set()
    d.shutdown()
    for logger, level in zip(quiet, levels):
        logger.setLevel(level)


# -- the generator ----------------------------------------------------------------------------------
def osc_string(raw: bytes) -> bytes:
    raw += b"\x00"
    return raw + b"\x00" * (-len(raw) % 4)


def random_arg(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.random()
    if kind < 0.3:
        return "i", struct.pack(">i", rng.choice([0, 1, -1, 7, 2**31 - 1, -(2**31), rng.randint(-999, 999)]))
    if kind < 0.55:
        value = rng.choice([0.0, 1.0, -2.0, 0.25, 1e30, float("nan"), float("inf"), rng.uniform(-500, 500)])
        return "f", struct.pack(">f", value)
    if kind < 0.85:
        choice = rng.random()
        if choice < 0.2:
            text = b"\xff\xfe\xc3("  # invalid UTF-8
        elif choice < 0.3:
            text = b"x" * rng.choice([600, 2000, 30000])  # huge
        elif choice < 0.5:
            text = rng.choice([b"default", b"job-1", b"/etc/passwd", b"../../x", b"*", b"C minor", b"temperature"])
        else:
            text = bytes(rng.randrange(32, 127) for _ in range(rng.randint(0, 24)))
        return "s", osc_string(text)
    if kind < 0.9:
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
        return "b", struct.pack(">i", len(blob)) + blob + b"\x00" * (-len(blob) % 4)
    return rng.choice(["T", "F", "N"]), b""


def random_message(rng: random.Random) -> bytes:
    address = rng.choice(ADDRESSES).encode()
    args = [random_arg(rng) for _ in range(rng.randint(0, 7))]
    tags = "," + "".join(tag for tag, _ in args)
    return osc_string(address) + osc_string(tags.encode()) + b"".join(data for _, data in args)


def random_bundle(rng: random.Random, depth: int) -> bytes:
    parts = []
    for _ in range(rng.randint(0, 3)):
        inner = random_bundle(rng, depth - 1) if depth > 0 and rng.random() < 0.5 else random_message(rng)
        parts.append(struct.pack(">i", len(inner)) + inner)
    return b"#bundle\x00" + struct.pack(">Q", 1) + b"".join(parts)


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    how = rng.random()
    if how < 0.3 and data:
        return bytes(data[:rng.randrange(len(data))])  # truncated
    if how < 0.6 and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)  # bit flips
        return bytes(data)
    if how < 0.8:
        comma = data.find(b",")
        if comma >= 0:
            data[comma + 1:comma + 2] = bytes([rng.choice(b"iqz[]dhmtrsfb\x00\xff")])  # wrong type tag
        return bytes(data)
    return bytes(data) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 9)))


def fuzz_packet(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.45:
        return random_message(rng)
    if kind < 0.6:
        return random_bundle(rng, rng.randint(0, 12))  # nested past max_bundle_depth sometimes
    if kind < 0.9:
        return mutate(rng, random_message(rng) if rng.random() < 0.7 else random_bundle(rng, 2))
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))


# -- the checks -------------------------------------------------------------------------------------
def invalid_messages(data: bytes) -> int | None:
    """How many messages in this packet break the schema (each must be answered), or None if malformed."""
    try:
        messages = parse_datagram(data)
    except BadRequest:
        return None
    invalid = 0
    for address, args in messages:
        try:
            SCHEMA.parse(address, args)
        except BadRequest:
            invalid += 1
    return invalid


def errors_to(sent, dest=None) -> int:
    """Error events in sent (to dest, or to anyone: a hello inside a bundle may move the reply port)."""
    return sum(1 for d, datagram in sent if (dest is None or d == dest) and datagram.startswith(b"/continuo/error"))


@pytest.mark.slow
def test_100k_random_packets_never_crash_and_invalid_ones_are_answered(daemon):
    rng = random.Random(20261121)
    udp = daemon.transports.udp
    kinds = {"malformed": 0, "invalid": 0, "valid": 0}
    for index in range(FUZZ_PACKETS):
        data = fuzz_packet(rng)
        sender = ("127.0.0.1", 20000 + index % 4000)
        expected = invalid_messages(data)
        before = len(daemon.recorder)
        udp.handle_datagram(data, sender)  # raises nothing, whatever the bytes
        if expected is None:
            kinds["malformed"] += 1
            continue
        kinds["invalid" if expected else "valid"] += 1
        if expected:
            answered = errors_to(daemon.recorder.since(before))
            assert answered >= expected, (data, daemon.recorder.since(before))
    assert min(kinds.values()) > 1000, kinds  # every kind was exercised
    daemon.on_message("/continuo/cancel", ["*"], SENDER)
    assert_a_real_job_completes(daemon, "after-udp-fuzz")


class FakeSocket:
    def __init__(self) -> None:
        self.sent = bytearray()

    def sendall(self, data: bytes) -> None:
        self.sent += data


def test_tcp_streams_of_random_bytes_only_close_the_connection(daemon):
    rng = random.Random(7)
    for index in range(300):
        stream = b"".join(fuzz_packet(rng) for _ in range(rng.randint(1, 5)))
        conn = _Connection(sock=FakeSocket(), peer=Peer("127.0.0.1", 30000 + index, "tcp", 10_000 + index))  # type: ignore[arg-type]
        try:
            for i in range(0, len(stream), 37):
                daemon.transports.tcp.handle_bytes(conn, stream[i:i + 37])
        except FramingError:
            pass  # the connection would be closed; nothing else may escape


def test_malformed_zmq_frames_are_answered_not_raised(daemon, monkeypatch):
    rng = random.Random(11)
    zmq_server = daemon.transports.zmq
    refused: list[list] = []  # what the transport answers itself (a frame it cannot read)
    monkeypatch.setattr(zmq_server, "_send_now", lambda dest, frames, topic, publish: refused.append(frames))
    for _ in range(3000):
        frames = [b"client-" + bytes([rng.randrange(256)])]
        if rng.random() < 0.8:
            frames.append(SIGNATURE)
        header = rng.choice([b"{", b"[]", b"null", b'{"op": 1}', b'{"op": "ping", "args": {"seq": "x"}}',
                             b'{"op": "generate", "args": {"job_id": "../x"}}', b"\xff" * 8,
                             b'{"op": "continue", "inputs": [{"channels": 1e9}]}', b'{"op":"get","args":{}}',
                             bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))])
        frames.append(header)
        frames += [bytes(rng.randrange(256) for _ in range(rng.randint(0, 16))) for _ in range(rng.randint(0, 3))]
        answers = len(refused) + len(daemon.recorder)
        zmq_server.handle_frames(frames)  # raises nothing
        # and answers: the transport refuses what it cannot read; what it can goes on and the daemon replies
        assert len(refused) + len(daemon.recorder) > answers, frames


@hsettings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(address=st.sampled_from(ADDRESSES),
       args=st.lists(st.one_of(st.integers(-(2**31), 2**31 - 1), st.floats(width=32),
                               st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
                                       max_size=40),
                               st.booleans(), st.none(), st.binary(min_size=1, max_size=16)), max_size=8))
def test_hypothesis_any_message_is_answered_or_accepted(daemon, address, args):
    from pythonosc import osc_message_builder

    builder = osc_message_builder.OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    data = builder.build().dgram
    expected = invalid_messages(data)
    before = len(daemon.recorder)
    daemon.transports.udp.handle_datagram(data, SENDER)
    if expected:
        reply_to = daemon.sessions[SENDER].reply_to if SENDER in daemon.sessions else SENDER
        assert errors_to(daemon.recorder.since(before), reply_to) >= expected


@hsettings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_hypothesis_random_bytes_never_escape(daemon, data):
    daemon.transports.udp.handle_datagram(data, SENDER)
    conn = _Connection(sock=None, peer=Peer("127.0.0.1", 1, "tcp", 1))  # type: ignore[arg-type]
    if data:
        conn.decoder = detect_framing(data[0])
        try:
            for packet in conn.decoder.feed(data):
                parse_datagram(packet) if packet else None
        except (FramingError, BadRequest):
            pass


def assert_a_real_job_completes(daemon, job_id: str) -> None:
    sender = ("127.0.0.1", 45678)
    daemon.on_message("/continuo/hello", ["fuzz-check", 0], sender)
    before = len(daemon.recorder)
    daemon.on_message("/continuo/generate", [job_id, "default", "after the storm", 0.5], sender)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        sent = [datagram for dest, datagram in daemon.recorder.since(before) if dest == sender]
        if any(d.startswith(b"/continuo/done") for d in sent):
            return
        errors = [parse_datagram(d) for d in sent if d.startswith(b"/continuo/error")]
        assert not errors, errors
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish after the fuzzing")


def test_the_daemon_still_renders_after_the_fuzz(daemon):
    daemon.on_message("/continuo/cancel", ["*"], SENDER)
    assert_a_real_job_completes(daemon, "after-all-fuzz")
