"""The session's musical context: tempo, metre, key and sample rate.

Every output is bar-exact: ``bars`` bars last
``bars * beats_per_bar * 60 / bpm * 4 / beat_unit`` seconds and have exactly
``round(seconds * sample_rate)`` frames. The model's own rate is internal.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from bridge.errors import BadRequest

# Valid ranges, shared with the protocol layer and the OSC schema checks.
BPM_RANGE: tuple[float, float] = (20.0, 400.0)
BEATS_PER_BAR_RANGE: tuple[int, int] = (1, 32)
BEAT_UNITS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
SAMPLE_RATES: tuple[int, ...] = (22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
KEY_MAX_CHARS: int = 32


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class MusicalContext:
    """Tempo, metre, key and sample rate of the DAW session.

    Instances are validated on construction, so every one that exists is valid;
    a bad value raises ``BadRequest`` naming the field, the value and the range.
    """

    bpm: float = 120.0
    beats_per_bar: int = 4
    beat_unit: int = 4
    key: str = ""  # none until a client names one: a key is never invented (the prompt and file names leave it out)
    sample_rate: int = 48000

    def __post_init__(self) -> None:
        self.validate()

    @property
    def metre(self) -> str:
        """The time signature as written, e.g. ``"6/8"``."""
        return f"{self.beats_per_bar}/{self.beat_unit}"

    def seconds_for_bars(self, bars: float) -> float:
        """Duration of ``bars`` bars in seconds (fractional bars allowed)."""
        _check_bars(bars)
        return bars * self.beats_per_bar * 60.0 / self.bpm * 4.0 / self.beat_unit

    def frames_for_bars(self, bars: float) -> int:
        """Exact frame count of ``bars`` bars at the session sample rate."""
        return round(self.seconds_for_bars(bars) * self.sample_rate)

    def seconds_for_beats(self, beats: float) -> float:
        """Duration of ``beats`` beats (``beat_unit`` notes) in seconds."""
        _check_bars(beats, "beats")
        return beats * 60.0 / self.bpm * 4.0 / self.beat_unit

    def frames_for_beats(self, beats: float) -> int:
        """Exact frame count of ``beats`` beats at the session sample rate."""
        return round(self.seconds_for_beats(beats) * self.sample_rate)

    def frames_to_next_downbeat(self, frames: int) -> int:
        """Frames from position ``frames`` (0 = a downbeat) to the next downbeat; 0 when on one.

        Downbeats fall at ``frames_for_bars(n)`` for whole n, each rounded on
        its own so positions never drift over a long session.
        """
        if frames < 0:
            raise BadRequest(f"frames must be >= 0, got {frames!r}")
        bar_s = self.seconds_for_bars(1)
        bars_done = math.floor(frames / self.sample_rate / bar_s + 1e-9)
        for bar in (bars_done, bars_done + 1, bars_done + 2):
            downbeat = self.frames_for_bars(bar)
            if downbeat >= frames:
                return downbeat - frames
        raise AssertionError("a downbeat lies within two bars")

    def replace(self, **changes: object) -> MusicalContext:
        """A copy with ``changes`` applied, validated like a new instance."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise BadRequest(
                f"unknown context field(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ``BadRequest`` for the first field outside its valid range."""
        lo, hi = BPM_RANGE
        if not _is_real(self.bpm) or not math.isfinite(self.bpm) or not lo <= self.bpm <= hi:
            raise BadRequest(f"bpm must be a number from {lo:g} to {hi:g}, got {self.bpm!r}")
        lo_b, hi_b = BEATS_PER_BAR_RANGE
        if not _is_int(self.beats_per_bar) or not lo_b <= self.beats_per_bar <= hi_b:
            raise BadRequest(
                f"beats_per_bar must be an integer from {lo_b} to {hi_b}, got {self.beats_per_bar!r}"
            )
        if not _is_int(self.beat_unit) or self.beat_unit not in BEAT_UNITS:
            raise BadRequest(
                f"beat_unit must be one of {', '.join(map(str, BEAT_UNITS))}, got {self.beat_unit!r}"
            )
        if not isinstance(self.key, str) or (self.key and not self.key.strip()) or len(self.key) > KEY_MAX_CHARS:
            raise BadRequest(
                f"key must be a string of at most {KEY_MAX_CHARS} characters (empty for none), got {self.key!r}"
            )
        if not _is_int(self.sample_rate) or self.sample_rate not in SAMPLE_RATES:
            raise BadRequest(
                f"sample_rate must be one of {', '.join(map(str, SAMPLE_RATES))}, got {self.sample_rate!r}"
            )


def _check_bars(bars: float, name: str = "bars") -> None:
    if not _is_real(bars) or not math.isfinite(bars) or bars < 0:
        raise BadRequest(f"{name} must be a finite number >= 0, got {bars!r}")
