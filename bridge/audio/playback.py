"""Jam outputs: bar chunks on their way to ears, ahead of the playhead.

The jam (bridge/jobs/jam.py) hands every output each bar as a `JamChunk`, in bar order, ahead of time. An output
(`JamSink`) plays it from the chunk's start beat on the session's clock (bridge/audio/clocks.py): the local audio
device through PortAudio/JACK from a real callback over a lock-free ring buffer, clients over OSC/ZeroMQ/HTTP, the
session recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class JamChunk:
    """One bar (or a few beats) of a jam, cut to the exact length at its tempo."""

    jam_id: str
    bar: int  # 0, 1, 2, ... from the jam's start; bar n starts at start_beat on the clock's timeline
    start_beat: float
    beats: float  # its length in beats (beats_per_bar for a bar)
    bpm: float
    audio: np.ndarray  # (C, T) float32, T = round(beats * 60 / bpm * sample_rate) exactly
    sample_rate: int
    prompt_id: int  # which prompt/settings made it: it changes when a control lands at a bar line
    held: bool = False  # the model fell behind: this bar repeats an earlier one (said in an event)
    path: Path | None = None  # the bar's WAV in the session recording, once written


class JamSink(Protocol):
    name: str

    def play(self, chunk: JamChunk) -> None:
        """Queue the chunk to sound from its start beat; returns at once (never blocks the jam)."""
        ...

    def close(self) -> None: ...
