"""ZeroMQ transport: ROUTER for requests and replies, PUB for events (topic = job id).

Frame layout and header codec: bridge/protocol/zmq_frames.py. A request header names an
op and its arguments by the OSC schema's names; this transport turns it into the
same (address, positional args) an OSC message would be and calls the daemon's
on_message, so both transports share every check. Events come back through
bridge.transports.peers.Router as checked `Event`s (`Schema.check_event`); their values
(what an OSC client reads, floats as float32) are encoded here as JSON headers by the
event's argument names, with inline PCM frames when the request asked for them. A jam's bar
(/continuo/jam/chunk) always carries its PCM, read from the bar's WAV in the recording (the bar as recorded, sample
for sample), to the client that started the jam and on the PUB socket under the jam id: a subscriber to a jam plays
it from the frames alone (bar, start_beat, bpm, prompt_id in the header's args).

One thread owns both sockets (ZeroMQ sockets are not thread-safe): it polls the
ROUTER and a wake-up pipe; sends from other threads (the worker) are queued and
the pipe wakes the loop. Sends from the loop itself (immediate replies) go out at once.

Inline inputs are checked (shape, max_input_bytes, max_input_s, finite) and written as a WAV to the inbox,
marked as Continuo's copy (bridge/audio/inbox.py), so the worker reads inputs one way only; inline outputs are
read back from the finished file and sent zero-copy. A `status` request answers /continuo/status and
/continuo/limits: the snapshot a late PUB subscriber missed.

Security: a loopback bind needs nothing. Any other bind needs CURVE (settings
refuse to start without zmq_keys_dir): the server key pair is DIR/server.key_secret
and only clients whose public keys are in DIR/clients/ are let in.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import zmq

from bridge.audio.inbox import write_owned
from bridge.errors import BridgeError
from bridge.protocol.schema import Event, Schema, load_schema
from bridge.protocol.zmq_frames import (
    MAX_FRAMES,
    OUTPUT_MODES,
    PCM_DTYPE,
    SIGNATURE,
    VERSION,
    FrameError,
    decode_header,
    encode_header,
    event_name,
)
from bridge.settings import Settings, is_loopback
from bridge.transports.peers import Peer
from bridge.transports.udp import OnMessage

INLINE_INPUT_PREFIX = "zmq-"  # the start of an inline input's inbox name (a name only: the marker makes it ours)
log = logging.getLogger("continuo.zmq")

JAM_CHUNK = "/continuo/jam/chunk"  # always with its bar's PCM, to the jam's client and its PUB topic (the jam id)
MAX_INLINE_JOBS = 4096
POLL_MS = 200


class ZmqServer:
    def __init__(self, settings: Settings, on_message: OnMessage, *, inbox: Path | None = None,
                 schema: Schema | None = None) -> None:
        self._settings = settings
        self._on_message = on_message
        self._schema = schema or load_schema()
        self._inbox = inbox
        self._ops = {spec.op: spec for spec in self._schema.requests.values()}
        self._ctx = zmq.Context()
        self._router: zmq.Socket | None = None
        self._pub: zmq.Socket | None = None
        self._auth = None
        self._thread: threading.Thread | None = None
        self._loop_ident: int | None = None
        self._stopping = threading.Event()
        self._outbox: collections.deque[tuple[Peer | None, list[Any]]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._inline: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.router_endpoint = ""
        self.pub_endpoint = ""

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        settings = self._settings
        router = self._ctx.socket(zmq.ROUTER)
        pub = self._ctx.socket(zmq.PUB)
        for sock in (router, pub):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 10000)
        router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        router.setsockopt(zmq.MAXMSGSIZE, settings.max_input_bytes + 1024 * 1024)
        if settings.zmq_keys_dir is not None:
            self._configure_curve(settings.zmq_keys_dir, router, pub)
        elif not is_loopback(settings.zmq_host):
            raise RuntimeError("a non-loopback ZeroMQ bind needs zmq_keys_dir (validate_settings checks this)")
        self.router_endpoint = _bind(router, settings.zmq_host, settings.zmq_port)
        self.pub_endpoint = _bind(pub, settings.zmq_host, settings.zmq_pub_port)
        self._router, self._pub = router, pub
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="continuo-zmq", daemon=True)
        self._thread.start()
        log.info("listening on zmq ROUTER %s PUB %s%s", self.router_endpoint, self.pub_endpoint,
                 " (CURVE)" if self._auth is not None else "")

    def _configure_curve(self, keys_dir: Path, router: zmq.Socket, pub: zmq.Socket) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        keys_dir = keys_dir.expanduser()
        secret_file = keys_dir / "server.key_secret"
        clients = keys_dir / "clients"
        if not secret_file.is_file() or not clients.is_dir():
            raise RuntimeError(f"zmq_keys_dir {keys_dir} needs server.key_secret and a clients/ folder; "
                               f"run `continuo keys {keys_dir}`")
        public, secret = zmq.auth.load_certificate(str(secret_file))
        self._auth = ThreadAuthenticator(self._ctx)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(clients))
        for sock in (router, pub):
            sock.curve_secretkey = secret
            sock.curve_publickey = public
            sock.curve_server = True

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stopping.set()
        self._wake()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        for sock in (self._router, self._pub):
            if sock is not None:
                sock.close(0)
        self._router = self._pub = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._ctx.term()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError as exc:
                log.debug("closing the wake-up pipe: %s", exc)
        log.info("stopped")

    # -- sending (any thread) ---------------------------------------------------------------------
    def send(self, dest: Peer | None, event: Event) -> None:
        """One checked event to dest (and to PUB when it is about a job); dest None: PUB only.

        Encoded from event.address and event.values (the EventSink checked them); event.osc is not used.
        """
        frames = self.event_frames(event.address, event.values)
        topic = pub_topic(self._schema, event.address, event.values)
        publish = None if topic is None else frames if event.address == JAM_CHUNK else frames[:2]
        if threading.get_ident() == self._loop_ident:
            self._send_now(dest, frames, topic, publish)
            return
        if dest is not None:
            self._outbox.append((dest, frames))
        if publish is not None:
            self._outbox.append((None, [topic, *publish]))
        self._wake()

    def event_frames(self, address: str, args: Sequence[Any]) -> list[Any]:
        """[SIGNATURE, header_json] (+ the PCM frame of an inline output) for one event."""
        spec = self._schema.events.get(address)
        names = [arg.name for arg in spec.args] if spec is not None else [f"arg{i}" for i in range(len(args))]
        header: dict[str, Any] = {"v": VERSION, "event": event_name(address), "args": dict(zip(names, args))}
        frames: list[Any] = [SIGNATURE]
        inline_output = address == "/continuo/output" and self._inline.get(args[0], "path") != "path"
        if inline_output or (address == JAM_CHUNK and args[7]):
            pcm, info = _read_pcm(args[2] if inline_output else args[7])
            if pcm is not None:
                header["pcm"] = info
                frames.append(encode_header(header))
                frames.append(pcm)
                return frames
        frames.append(encode_header(header))
        return frames

    def _send_now(self, dest: Peer | None, frames: list[Any], topic: bytes | None, publish: list[Any] | None) -> None:
        if dest is not None and self._router is not None:
            try:
                self._router.send_multipart([*dest.conn, *frames], copy=False)  # type: ignore[misc]
            except zmq.ZMQError as exc:
                log.warning("zmq reply to %s dropped: %s", dest.host, exc)
        if publish is not None and self._pub is not None:
            try:
                self._pub.send_multipart([topic, *publish], copy=False)
            except zmq.ZMQError as exc:
                log.warning("zmq publish dropped: %s", exc)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError as exc:  # a full pipe already means a wake-up is pending
            log.debug("wake-up write: %s", exc)

    # -- the loop -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        self._loop_ident = threading.get_ident()
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        while not self._stopping.is_set():
            try:
                ready = dict(poller.poll(POLL_MS))
            except zmq.ZMQError as exc:
                if self._stopping.is_set():
                    break
                log.warning("zmq poll failed: %s", exc)
                continue
            if self._wake_r in ready:
                self._drain_wake()
            self._flush_outbox()
            if self._router in ready:
                for _ in range(256):  # bounded so queued sends are not starved
                    try:
                        frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    except zmq.ZMQError as exc:
                        log.warning("zmq receive failed: %s", exc)
                        break
                    self.handle_frames(frames)
        self._flush_outbox()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            return
        except OSError as exc:
            log.debug("wake-up read: %s", exc)

    def _flush_outbox(self) -> None:
        while self._outbox:
            dest, frames = self._outbox.popleft()
            if dest is None:
                if self._pub is not None:
                    try:
                        self._pub.send_multipart(frames, copy=False)
                    except zmq.ZMQError as exc:
                        log.warning("zmq publish dropped: %s", exc)
            else:
                self._send_now(dest, frames, None, None)

    # -- receiving (the loop thread) --------------------------------------------------------------------
    def handle_frames(self, frames: list[Any]) -> None:
        """One ROUTER message: [envelope..., SIGNATURE, header, pcm...]; public so tests need no socket."""
        raw = [frame.bytes if isinstance(frame, zmq.Frame) else bytes(frame) for frame in frames[:2 + MAX_FRAMES]]
        host = _peer_address(frames[0]) if frames else ""
        try:
            split = raw.index(SIGNATURE)
        except ValueError:
            split = -1
        envelope = tuple(raw[:split]) if split > 0 else tuple(raw[:1])
        peer = Peer(host or "zmq", 0, "zmq", envelope)  # type: ignore[arg-type]
        try:
            if split <= 0:
                raise FrameError(f"no {SIGNATURE.decode()} frame; send [{SIGNATURE.decode()}, header_json, pcm...]")
            if len(frames) > split + MAX_FRAMES:
                raise FrameError(f"{len(frames) - split} frames; at most {MAX_FRAMES} (signature, header, inputs)")
            if len(frames) < split + 2:
                raise FrameError("no header frame after the signature")
            header = decode_header(raw[split + 1])
            address, args, outputs = self.request_from_header(header, raw[split + 2:len(frames)])
        except (FrameError, BridgeError) as exc:  # a bad frame, or an inline input that could not be stored
            code, message = (exc.code, exc.message) if isinstance(exc, BridgeError) else ("bad_request", str(exc))
            self._send_now(peer, self.event_frames("/continuo/error", ["", code, message[:900]]), None, None)
            return
        job_id = args[0] if args and isinstance(args[0], str) and address in INLINE_REQUESTS else None
        if job_id and outputs != "path":
            self._inline[job_id] = outputs
            while len(self._inline) > MAX_INLINE_JOBS:
                self._inline.popitem(last=False)
        try:
            self._on_message(address, args, peer)
        except Exception:  # a handler bug must not stop the loop
            log.exception("on_message failed for zmq %s", address)

    def request_from_header(self, header: dict[str, Any], pcm_frames: list[bytes]) -> tuple[str, list[Any], str]:
        """(OSC address, positional args + settings pairs, output mode) for a request header."""
        op = header.get("op")
        spec = self._ops.get(op) if isinstance(op, str) else None
        if spec is None:
            raise FrameError(f"unknown op {op!r}; ops are {', '.join(self._ops)}")
        args = header.get("args", {})
        settings = header.get("settings", {})
        inputs = header.get("inputs", [])
        outputs = header.get("outputs", "path")
        if not isinstance(args, dict) or not isinstance(settings, dict) or not isinstance(inputs, list):
            raise FrameError("args and settings must be JSON objects, inputs a list")
        if outputs not in OUTPUT_MODES:
            raise FrameError(f"outputs must be one of {', '.join(OUTPUT_MODES)}, got {outputs!r}")
        if len(inputs) != len(pcm_frames):
            raise FrameError(f"{len(inputs)} inputs described, {len(pcm_frames)} PCM frames sent")
        args = dict(args)
        for described, pcm in zip(inputs, pcm_frames):
            name = described.get("arg", "input_path") if isinstance(described, dict) else None
            if name not in {a.name for a in spec.args} or not name.endswith("path"):
                raise FrameError(f"input {described!r} must name a path argument of {op}")
            args[name] = self.store_input(described, pcm, args.get("job_id"))
        positional, unknown = spec.positional(args, settings)
        if unknown:
            raise FrameError(f"unknown args for {op}: {', '.join(unknown)}; {op} takes {spec.signature()}")
        return spec.address, positional, outputs

    def store_input(self, described: dict[str, Any], pcm: bytes, job_id: Any) -> str:
        """Write one inline float32 input to the inbox as a WAV; returns its path."""
        if self._inbox is None:
            raise FrameError("this daemon takes no inline inputs; send a path")
        limits = self._settings
        try:
            channels, frames, rate = int(described["channels"]), int(described["frames"]), int(described["sample_rate"])
        except (KeyError, TypeError, ValueError):
            raise FrameError("each input needs integer channels, frames and sample_rate") from None
        if not (1 <= channels <= 8 and 1 <= rate <= 384000 and frames >= 1):
            raise FrameError(f"input shape {channels} channels x {frames} frames at {rate} Hz is out of range")
        if len(pcm) != channels * frames * 4:
            raise FrameError(
                f"input frame has {len(pcm)} bytes; {channels} x {frames} float32 is {channels * frames * 4}")
        if len(pcm) > limits.max_input_bytes or frames / rate > limits.max_input_s:
            raise FrameError(f"input of {len(pcm)} bytes / {frames / rate:.1f} s is over the limits "
                             f"({limits.max_input_bytes} bytes, {limits.max_input_s:g} s)")
        audio = np.frombuffer(pcm, dtype=PCM_DTYPE).reshape(frames, channels)
        if not np.isfinite(audio).all():
            raise FrameError("input PCM holds NaN or infinity")
        safe = isinstance(job_id, str) and self._schema.patterns["job_id"][0].fullmatch(job_id)
        path = self._inbox / f"{INLINE_INPUT_PREFIX}{job_id if safe else 'input'}-{uuid.uuid4().hex[:12]}.wav"
        encoded = io.BytesIO()
        sf.write(encoded, audio, rate, subtype="FLOAT", format="WAV")
        write_owned(path, encoded.getbuffer(), made_by="zmq")  # marked: retention may remove it, nothing else
        return path.as_posix()


# Requests whose `outputs` mode is remembered for the job's output events (get: replay inline).
INLINE_REQUESTS = frozenset({"/continuo/generate", "/continuo/continue", "/continuo/variations",
                             "/continuo/stems", "/continuo/get"})


def pub_topic(schema: Schema, address: str, args: Sequence[Any]) -> bytes | None:
    """The PUB topic of an event about a job or jam (its id: the schema's job_event); None for events about none."""
    return str(args[0]).encode() if address in schema.job_events and args and args[0] else None


def _bind(sock: zmq.Socket, host: str, port: int) -> str:
    if port == 0:
        bound = sock.bind_to_random_port(f"tcp://{host}")
        return f"tcp://{host}:{bound}"
    sock.bind(f"tcp://{host}:{port}")
    return f"tcp://{host}:{port}"


def _peer_address(frame: Any) -> str:
    if isinstance(frame, zmq.Frame):
        try:
            return frame.get("Peer-Address") or ""
        except (zmq.ZMQError, AttributeError, UnicodeDecodeError):
            return ""
    return ""


def _read_pcm(path: str) -> tuple[np.ndarray | None, dict[str, Any]]:
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        log.warning("inline output %s could not be read: %s", path, exc)
        return None, {}
    audio = np.ascontiguousarray(audio)
    return audio, {"channels": audio.shape[1], "frames": audio.shape[0], "sample_rate": rate,
                   "dtype": PCM_DTYPE, "layout": "interleaved"}
