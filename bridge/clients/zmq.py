"""A small ZeroMQ client for Continuo (DEALER to the daemon's ROUTER, optional SUB to its PUB).

    with ZmqClient("tcp://127.0.0.1:5570") as client:
        client.request("generate", {"job_id": "j1", "preset": "default", "prompt": "piano", "bars": 4.0})
        replies = client.wait_job("j1", timeout_s=60)     # [Reply(event="accepted", ...), ..., "done"]

Inline audio: `request(..., inputs=[("input_path", audio, sample_rate)], outputs="inline")`
sends float32 PCM frames (zero-copy) and gets each output's audio back in Reply.pcm.
With CURVE: pass server_public_key and the client's (public, secret) pair (`continuo keys`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from bridge.protocol.zmq_frames import PCM_DTYPE, SIGNATURE, encode_header

TERMINAL = frozenset({"done", "error"})


@dataclass
class Reply:
    event: str
    args: dict[str, Any]
    header: dict[str, Any]
    pcm: list[np.ndarray] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return str(self.args.get("job_id", ""))


class ZmqClient:
    """send_timeout_s: how long a send may wait for a connection. A DEALER with no connected peer blocks on send
    (after a refused CURVE handshake, between reconnects): past it, TimeoutError says why, never a hang."""

    def __init__(self, endpoint: str, *, server_public_key: bytes | None = None,
                 client_keys: tuple[bytes, bytes] | None = None, context: zmq.Context | None = None,
                 send_timeout_s: float = 5.0) -> None:
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self.endpoint = endpoint
        self.sock = self._ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, int(send_timeout_s * 1000))
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        self._curve = None
        if server_public_key is not None:
            if client_keys is None:
                client_keys = zmq.curve_keypair()
            self._curve = (server_public_key, client_keys)
            self.sock.curve_serverkey = server_public_key
            self.sock.curve_publickey, self.sock.curve_secretkey = client_keys
        self.sock.connect(endpoint)
        self._pending: list[Reply] = []

    # -- sending ----------------------------------------------------------------------------
    def request(self, op: str, args: dict[str, Any] | None = None, settings: dict[str, Any] | None = None, *,
                inputs: list[tuple[str, np.ndarray, int]] = (), outputs: str = "path") -> None:
        """Send one request; inputs are (path argument name, audio (frames, channels) or (frames,), rate)."""
        header: dict[str, Any] = {"op": op, "args": args or {}, "settings": settings or {}, "outputs": outputs}
        frames: list[Any] = []
        described = []
        for name, audio, rate in inputs:
            pcm = np.ascontiguousarray(audio, dtype=PCM_DTYPE)
            pcm = pcm.reshape(-1, 1) if pcm.ndim == 1 else pcm
            described.append({"arg": name, "channels": pcm.shape[1], "frames": pcm.shape[0], "sample_rate": rate})
            frames.append(pcm)
        if described:
            header["inputs"] = described
        self.send_frames([SIGNATURE, encode_header(header), *frames])

    def send_frames(self, frames: list[Any]) -> None:
        """Send raw frames as they are (fuzz tests); PCM buffers go zero-copy."""
        try:
            self.sock.send_multipart(frames, copy=False)
        except zmq.Again:
            timeout_s = self.sock.getsockopt(zmq.SNDTIMEO) / 1000
            raise TimeoutError(f"could not send to {self.endpoint} within {timeout_s:g} s: no daemon accepted the "
                               "connection (is `continuo serve` running there, and with this server's CURVE key "
                               "if it has one?)") from None

    # -- receiving --------------------------------------------------------------------------
    def recv(self, timeout_s: float) -> Reply:
        """The next reply; TimeoutError when none arrives in time."""
        if not self.sock.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no reply within {timeout_s:g} s")
        return parse_reply(self.sock.recv_multipart())

    def wait_for(self, predicate, timeout_s: float) -> Reply:
        for index, reply in enumerate(self._pending):
            if predicate(reply):
                return self._pending.pop(index)
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self.recv(max(0.0, deadline - time.monotonic()))
            if predicate(reply):
                return reply
            self._pending.append(reply)

    def wait_job(self, job_id: str, timeout_s: float, *, ack: bool = False) -> list[Reply]:
        """Every reply about job_id up to its done or error."""
        deadline = time.monotonic() + timeout_s
        replies = []
        while True:
            reply = self.wait_for(lambda r: r.job_id == job_id, max(0.0, deadline - time.monotonic()))
            replies.append(reply)
            if reply.event in TERMINAL:
                if ack:
                    self.request("ack", {"job_id": job_id})
                return replies

    def ping(self, seq: int = 0, timeout_s: float = 5.0) -> int:
        self.request("ping", {"seq": seq})
        return self.wait_for(lambda r: r.event == "pong" and r.args.get("seq") == seq, timeout_s).args["seq"]

    def status(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """The daemon's status and limits, merged: the snapshot a late PUB subscriber missed."""
        self.request("status")
        status = self.wait_for(lambda r: r.event == "status", timeout_s).args
        limits = self.wait_for(lambda r: r.event == "limits", timeout_s).args
        return {**status, **limits}

    def subscribe(self, endpoint: str, topic: bytes = b"") -> zmq.Socket:
        """A SUB socket on the daemon's PUB endpoint (caller closes it)."""
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        if self._curve is not None:
            server_key, (public, secret) = self._curve
            sub.curve_serverkey, sub.curve_publickey, sub.curve_secretkey = server_key, public, secret
        sub.setsockopt(zmq.SUBSCRIBE, topic)
        sub.connect(endpoint)
        return sub

    def close(self) -> None:
        self.sock.close(0)
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> ZmqClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_reply(frames: list[bytes]) -> Reply:
    """[SIGNATURE, header, pcm...] (a PUB message has the topic first) -> Reply."""
    import json

    start = frames.index(SIGNATURE)
    header = json.loads(frames[start + 1])
    pcm = []
    info = header.get("pcm")
    for frame in frames[start + 2:]:
        audio = np.frombuffer(frame, dtype=PCM_DTYPE)
        if info:
            audio = audio.reshape(int(info["frames"]), int(info["channels"]))
        pcm.append(audio)
    return Reply(event=header["event"], args=header.get("args", {}), header=header, pcm=pcm)


class ZmqOscClient:
    """The OscClient interface over ZeroMQ, for `continuo send --transport zmq`: OSC-style
    (address, positional args) in, replies back as (address, args list) in the schema's order."""

    def __init__(self, endpoint: str, **kwargs: Any) -> None:
        from bridge.protocol.schema import load_schema

        self.schema = load_schema()
        self.client = ZmqClient(endpoint, **kwargs)
        self.dest = (endpoint, 0)

    def send(self, address: str, *args: Any) -> None:
        spec = self.schema.requests.get(address)
        if spec is None:
            raise ValueError(f"unknown address {address}; send one of {', '.join(self.schema.requests)}")
        named = dict(zip((arg.name for arg in spec.args), args))
        rest = list(args[len(spec.args):])
        settings = dict(zip(rest[0::2], rest[1::2]))
        self.client.request(spec.op, named, settings)

    def hello(self, timeout_s: float = 5.0) -> list:
        self.client.request("hello", {"client": "continuo-send"})
        return self._as_osc(self.client.wait_for(lambda r: r.event in ("welcome", "error"), timeout_s))[1]

    def wait_for(self, predicate, timeout_s: float) -> tuple[str, list]:
        reply = self.client.wait_for(lambda r: predicate(*self._as_osc(r)), timeout_s)
        return self._as_osc(reply)

    def wait_job(self, job_id: str, timeout_s: float, on_event=None, *, ack: bool = False) -> list[tuple[str, list]]:
        events = []
        for reply in self.client.wait_job(job_id, timeout_s, ack=ack):
            event = self._as_osc(reply)
            events.append(event)
            if on_event is not None:
                on_event(*event)
        return events

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ZmqOscClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _as_osc(self, reply: Reply) -> tuple[str, list]:
        address = "/continuo/queued" if reply.event == "accepted" else f"/continuo/{reply.event}"
        spec = self.schema.events.get(address)
        names = [arg.name for arg in spec.args] if spec is not None else list(reply.args)
        return address, [reply.args.get(name) for name in names]
