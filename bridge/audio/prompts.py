"""Input files as a model or a session takes them: one entry, `load_prompt`.

It reads the file (bridge/audio/files.py:read_audio), keeps its last ``tail_s`` seconds when asked (a
continuation's prompt), resamples (soxr VHQ), maps the channels and cuts or pads to an exact length: a renderer
asks once and gets the array it hands the engine or splices into, plus the file's whole length.

Channels are mapped here, once; the engine only checks the count. The bridge owns channel mapping
(bridge/audio/render.py:map_channels also fits every output to the session, and folds any count, surround
included), and the caller already owes the engine its sample rate, so it owes it the channel count too. A melody
keeps its channels (``channels=None``): the engine takes the chroma of their mono mix, pitch not timbre.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.audio.files import read_audio
from bridge.audio.render import map_channels, resample


@dataclass(frozen=True)
class Prompt:
    audio: np.ndarray  # (C, T) float32, C-contiguous, at sample_rate
    sample_rate: int
    source_frames: int  # the whole file's length, at its own rate
    source_rate: int

    @property
    def seconds(self) -> float:
        return self.audio.shape[1] / self.sample_rate

    def source_frames_at(self, sample_rate: int) -> int:
        """The whole file's length in frames at sample_rate (a continuation's lead counts from the file's end)."""
        return round(self.source_frames * sample_rate / self.source_rate)


def load_prompt(path: Path, *, sample_rate: int, channels: int | None = None, tail_s: float | None = None,
                frames: int | None = None) -> Prompt:
    """path's audio (its last tail_s seconds, at least one frame, when given) at sample_rate, mapped to channels
    (None: as the file has them), cut or zero-padded to exactly frames when given."""
    audio, rate = read_audio(path)
    source_frames = audio.shape[1]
    if tail_s is not None:
        audio = audio[:, -max(1, int(round(tail_s * rate))):]
    audio = resample(audio, rate, sample_rate)
    if channels is not None:
        audio = map_channels(audio, channels)
    if frames is not None:
        audio = fit_frames(audio, frames)
    return Prompt(np.ascontiguousarray(audio, dtype=np.float32), sample_rate, source_frames, rate)


def fit_frames(audio: np.ndarray, frames: int) -> np.ndarray:
    """(C, T) cut or zero-padded to exactly frames (a resampler may land a frame off)."""
    if audio.shape[1] >= frames:
        return np.ascontiguousarray(audio[:, :frames], dtype=np.float32)
    return np.pad(audio, ((0, 0), (0, frames - audio.shape[1]))).astype(np.float32)
