"""Splicing new audio into a clip: outside the range the clip stays sample for sample, inside the new audio
takes over through equal-power crossfades that lie inside the range (repaint); and a continuation's seam to hear
(``join_preview``: the input's end, the continuation's start, on the grid)."""

from __future__ import annotations

import numpy as np

from bridge.audio.context import MusicalContext
from bridge.audio.render import map_channels, resample
from bridge.errors import BadRequest

SEAM_CROSSFADE_S = 0.05  # each seam's crossfade; shorter when the range is short


def splice_range(original: np.ndarray, replacement: np.ndarray, start: int, end: int, *,
                 crossfade_frames: int) -> np.ndarray:
    """original (C, T) with frames [start, end) from replacement (C, T); the seams fade inside the range."""
    if original.shape != replacement.shape:
        raise BadRequest(f"splice needs two clips of one shape, got {original.shape} and {replacement.shape}")
    if not 0 <= start < end <= original.shape[1]:
        raise BadRequest(f"splice range {start}-{end} must lie inside the clip's {original.shape[1]} frames")
    fade = max(0, min(crossfade_frames, (end - start) // 2))
    out = original.copy()
    out[:, start:end] = replacement[:, start:end]
    if fade:
        rising = np.sin(0.5 * np.pi * (np.arange(fade, dtype=np.float64) + 0.5) / fade).astype(np.float32)
        falling = np.sqrt(np.clip(1.0 - rising**2, 0.0, 1.0)).astype(np.float32)
        head, tail = slice(start, start + fade), slice(end - fade, end)
        out[:, head] = original[:, head] * falling + replacement[:, head] * rising
        out[:, tail] = replacement[:, tail] * rising[::-1] + original[:, tail] * falling[::-1]
    return out


def match_level(reference: np.ndarray, audio: np.ndarray, *, max_gain_db: float = 24.0) -> np.ndarray:
    """audio scaled so its RMS matches reference's (within +-max_gain_db); silent reference: unchanged."""
    ref_rms = float(np.sqrt(np.mean(np.square(reference, dtype=np.float64)))) if reference.size else 0.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if ref_rms < 1e-6 or rms < 1e-9:
        return audio
    limit = 10.0 ** (max_gain_db / 20.0)
    return (audio * float(np.clip(ref_rms / rms, 1.0 / limit, limit))).astype(np.float32)


JOIN_BARS = 2.0  # "hear the join": this many bars of the input's end, then as many of the continuation's start


def join_preview(source: np.ndarray, source_rate: int, continuation: np.ndarray,
                 context: MusicalContext, *, bars: float = JOIN_BARS) -> np.ndarray:
    """The seam of a continuation as a DAW plays it, (C, T) at ``context.sample_rate`` with the continuation's
    channels: the source's last ``bars`` bars, silence up to the next downbeat after the source's end (where the
    continuation starts: bridge/jobs/takes.py drops what the model made before it), then the continuation's first
    ``bars`` bars. The source is taken to start on a downbeat, as the continuation took it."""
    rate = context.sample_rate
    source = map_channels(resample(source, source_rate, rate) if source_rate != rate else source,
                          continuation.shape[0])
    length = context.frames_for_bars(bars)
    gap = context.frames_to_next_downbeat(source.shape[1])
    silence = np.zeros((continuation.shape[0], gap), dtype=np.float32)
    return np.concatenate([source[:, -length:], silence, continuation[:, :length]], axis=1).astype(np.float32)
