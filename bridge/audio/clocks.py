"""Jam clocks: where the session's bars are, now. One clock is chosen per jam session.

A clock answers `reading()`: the beat position on the session's timeline at a moment of `time.monotonic()`, the
tempo, the metre (the quantum is one bar) and whether the transport plays. The jam (bridge/jobs/jam.py) plans bar n
to start at beat n * beats_per_bar and asks the clock when that is; outputs (bridge/audio/playback.py) start sound at
that moment. Kinds: internal (BPM and metre), midi (24 ppqn clock with start/stop/continue and song position),
host (transport sent over OSC by the Max for Live and Pd clients: bpm, beat, playing) and link (Ableton Link, the
optional `continuo[link]` extra; Link is GPL-licensed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

CLOCK_KINDS = ("internal", "midi", "host", "link")


@dataclass(frozen=True)
class ClockReading:
    """The session's timeline at one moment."""

    at_s: float  # time.monotonic() of the reading
    beat: float  # beats since the timeline's origin (bar 0 starts at beat 0), continuous while playing
    bpm: float
    beats_per_bar: int  # the quantum: one bar
    playing: bool

    def time_of_beat(self, beat: float) -> float:
        """time.monotonic() at which `beat` falls, at this reading's tempo."""
        return self.at_s + (beat - self.beat) * 60.0 / self.bpm

    def bar_of(self, beat: float) -> int:
        return int(beat // self.beats_per_bar)

    def next_bar_beat(self) -> float:
        """The first bar line strictly after this reading's beat."""
        return (self.bar_of(self.beat) + 1) * float(self.beats_per_bar)


class JamClock(Protocol):
    kind: str  # one of CLOCK_KINDS

    def reading(self, at_s: float | None = None) -> ClockReading:
        """The timeline at time.monotonic() `at_s` (default: now)."""
        ...

    def close(self) -> None: ...
