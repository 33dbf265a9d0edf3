"""Continuo's ZeroMQ frame layout: the constants and the header codec, in one place.

Requests (client DEALER -> daemon ROUTER), after the ROUTER's envelope:
    [SIGNATURE, header_json, pcm_0, pcm_1, ...]
    header = {"op": "generate", "args": {...by name, as osc_schema}, "settings": {...},
              "inputs": [{"arg": "input_path", "channels": C, "frames": T, "sample_rate": R}],
              "outputs": "path" | "inline" | "both"}
    Each `inputs` entry describes one raw little-endian float32 frame that follows, in
    order, interleaved (T frames x C channels); the daemon writes it to a WAV in its inbox
    and fills the named path argument with it.
Replies (daemon -> the client's envelope) and PUB events (topic = job id):
    [SIGNATURE, header_json, pcm...]
    header = {"v": 1, "event": "accepted" | "progress" | "output" | "done" | "error" | "pong" | ...,
              "args": {...by name, as the OSC event}, "pcm": {...} (inline outputs only)}
    `queued` is sent as `accepted` with args {job_id, position, eta_s}. With outputs
    "inline" or "both", each `output` reply carries the file's audio as one float32 frame.
Jam bars: every `jam/chunk` event (to the client that started the jam, and on PUB with
    the jam id as topic) carries the bar's audio as one float32 frame, whatever the
    request's outputs: header = {"v": 1, "event": "jam/chunk", "args": {jam_id, bar,
    start_beat, beats, bpm, prompt_id, held, path, url, seconds, sample_rate},
    "pcm": {"channels": C, "frames": T, "sample_rate": R, "dtype": "<f4",
    "layout": "interleaved"}}, then T x C float32: the bar's WAV (path) sample for
    sample. Play it from start_beat on the session's clock; bars come in order.
The op names and argument names are osc_schema/continuo.json's: one source of truth.
"""

from __future__ import annotations

import json
from typing import Any

SIGNATURE = b"CONTINUO/1"
VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
MAX_FRAMES = 1 + 1 + 16  # signature, header, at most 16 inline inputs
OUTPUT_MODES = ("path", "inline", "both")
PCM_DTYPE = "<f4"
EVENT_NAMES = {"/continuo/queued": "accepted"}  # every other event: its address without /continuo/


class FrameError(ValueError):
    """A ZeroMQ request that does not follow the frame layout; the message says what to send."""


def event_name(address: str) -> str:
    return EVENT_NAMES.get(address, address.removeprefix("/continuo/"))


def encode_header(header: dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_header(frame: bytes) -> dict[str, Any]:
    """The request header as a dict; FrameError when it is not a JSON object of sane size."""
    if len(frame) > MAX_HEADER_BYTES:
        raise FrameError(f"header frame of {len(frame)} bytes; at most {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(frame).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise FrameError(f"header frame is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise FrameError(f"header must be a JSON object, got {type(header).__name__}")
    return header


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number here")
