"""Loudness (ITU-R BS.1770-4) measurement and normalisation with a true-peak limiter.

All functions take audio as (C, T) float arrays.

- ``measure_lufs``: integrated, gated loudness via pyloudnorm. Audio shorter
  than one 400 ms gating block, or with no block above the -70 LUFS absolute
  gate (silence), has no defined loudness; it reports ``LUFS_FLOOR`` (-70.0).
- ``true_peak_db``: the peak of the signal oversampled per BS.1770-4 Annex 2
  (4x below 88.2 kHz, 2x below 176.4 kHz, 1x above), in dBTP; digital silence
  reports ``PEAK_FLOOR_DB``.
- ``normalize_loudness``: a static gain to the target loudness, then our own
  lookahead true-peak limiter (see ``limiter_gain_db``) so the true peak stays
  at or below the ceiling. When the limiter pulls dense material down, the gain
  is raised (secant steps on the measured loudness, at most
  ``_MAX_EXTRA_GAIN_DB`` over the static gain, ``_MAX_ITERATIONS`` runs) and
  the limiter re-run, so the result lands within 0.2 LU of target whenever the
  ceiling allows it; material too peaky for the target ends up as loud as
  12 dB of extra limiting makes it.
- ``waveform_peaks``: what a waveform is drawn from, measured once at the full rate (a page that decoded the file
  at 8 kHz drew hi-hats as a flat line): PEAK_BUCKETS pairs of (min, max) over every channel, as int8 bytes.
"""

from __future__ import annotations

import functools

import numpy as np
import pyloudnorm
from scipy.ndimage import correlate1d, minimum_filter1d
from scipy.signal import firwin

from bridge.audio.samples import as_audio
from bridge.errors import AudioError

LUFS_FLOOR = -70.0
PEAK_FLOOR_DB = -150.0
LOOKAHEAD_MS = 2.5
RELEASE_MS = 100.0

_LIMIT_MARGIN_DB = 0.05  # the limiter aims this far under the ceiling
_LUFS_TOLERANCE = 0.2  # stop iterating the gain once this close to target
_MAX_ITERATIONS = 5
_MAX_EXTRA_GAIN_DB = 12.0  # the most gain added over the static gain to make up for limiting
_MAX_PYLOUDNORM_CHANNELS = 5


PEAK_BUCKETS = 512  # a waveform's columns: 1 KiB per file, whatever its length (the page scales it to its width)


def waveform_peaks(audio: np.ndarray, buckets: int = PEAK_BUCKETS) -> bytes:
    """(min, max) of every sample of every channel in each of ``buckets`` equal spans of (C, T) ``audio``, as
    2 * buckets int8 bytes (min0, max0, min1, max1, ...; -127..127 is -1..1, clipped). Spans past a short file's
    end are silent (0, 0)."""
    audio = as_audio(audio)
    frames = audio.shape[1]
    edges = np.linspace(0, frames, buckets + 1).astype(np.int64)
    peaks = np.zeros((buckets, 2), dtype=np.float32)
    filled = edges[1:] > edges[:-1]
    if frames:
        starts = edges[:-1][filled]
        peaks[filled, 0] = np.minimum.reduceat(audio.min(axis=0), starts)
        peaks[filled, 1] = np.maximum.reduceat(audio.max(axis=0), starts)
    return np.clip(np.round(peaks * 127), -127, 127).astype(np.int8).tobytes()


def measure_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS; ``LUFS_FLOOR`` for silence or audio under 400 ms."""
    audio = as_audio(audio)
    channels, frames = audio.shape
    if channels > _MAX_PYLOUDNORM_CHANNELS:
        raise AudioError(f"loudness is measured for up to 5 channels, got {channels}")
    meter = pyloudnorm.Meter(sample_rate)
    if frames < meter.block_size * sample_rate:
        return LUFS_FLOOR
    lufs = meter.integrated_loudness(audio.T.astype(np.float64))
    return float(lufs) if np.isfinite(lufs) and lufs > LUFS_FLOOR else LUFS_FLOOR


def true_peak_db(audio: np.ndarray, sample_rate: int) -> float:
    """Maximum true peak over all channels in dBTP; ``PEAK_FLOOR_DB`` for silence."""
    audio = as_audio(audio)
    if audio.shape[1] == 0:
        return PEAK_FLOOR_DB
    peak = float(_peak_envelope(audio, sample_rate).max())
    return _to_db(peak)


def limiter_gain_db(
    peak_envelope: np.ndarray,
    sample_rate: int,
    *,
    ceiling_db: float,
    lookahead_ms: float = LOOKAHEAD_MS,
    release_ms: float = RELEASE_MS,
) -> np.ndarray:
    """The limiter's gain (T,) in dB (<= 0) for a linear true-peak envelope (T,).

    Computed on the linear gain g, all steps vectorised:

    1. ``need``: the gain each sample requires to bring its peak to the ceiling.
    2. Lookahead hold: the minimum of ``need`` over the next L samples.
    3. Release: g rises at most 1 per ``release_ms`` (from 0.5 back to 1 takes
       half of it, from -1 dB a ninth), a min-plus convolution with a ramp,
       computed exactly as a running minimum.
    4. Attack: two moving averages whose lengths sum to L. Every sample they
       average lies within L samples before n, and each of those already holds
       a gain <= need[n], so the smoothed gain still meets the ceiling at n.

    So g changes by at most (1 - min g) / (L / 2 + 1) per sample: no clicks.
    """
    frames = peak_envelope.shape[0]
    if frames == 0:
        return np.zeros(0)
    lookahead = max(2, round(lookahead_ms * sample_rate / 1000.0))
    need = np.minimum(1.0, 10.0 ** (ceiling_db / 20.0) / np.maximum(peak_envelope, 1e-12))
    size = lookahead + 1
    hold = minimum_filter1d(need, size, mode="constant", cval=1.0, origin=-(size // 2))
    ramp = np.arange(frames) * (1000.0 / (release_ms * sample_rate))
    released = np.minimum.accumulate(hold - ramp) + ramp
    first = lookahead // 2
    gain = _moving_average(_moving_average(released, first), lookahead - first)
    return 20.0 * np.log10(np.clip(gain, 1e-6, 1.0))


def normalize_loudness(
    audio: np.ndarray, sample_rate: int, *, target_lufs: float, true_peak_db: float
) -> np.ndarray:
    """``audio`` (C, T) gained to ``target_lufs`` and limited to ``true_peak_db`` dBTP.

    Silence and audio under 400 ms keep their level (they have no loudness) and
    are only limited. Returns float32 (C, T).
    """
    audio = as_audio(audio)
    if audio.shape[1] == 0:
        return audio.copy()
    ceiling_db = true_peak_db
    envelope = _peak_envelope(audio, sample_rate)
    measured = measure_lufs(audio, sample_rate)
    if measured <= LUFS_FLOOR:
        return _trim_to_ceiling(_limit(audio, envelope, sample_rate, 0.0, ceiling_db), sample_rate, ceiling_db)
    gain_db = target_lufs - measured
    max_gain_db = gain_db + _MAX_EXTRA_GAIN_DB
    best, best_miss, previous = audio, np.inf, None
    for _ in range(_MAX_ITERATIONS):
        out = _limit(audio, envelope, sample_rate, gain_db, ceiling_db)
        got = measure_lufs(out, sample_rate)
        miss = target_lufs - got
        if abs(miss) < best_miss:
            best, best_miss = out, abs(miss)
        if abs(miss) <= _LUFS_TOLERANCE or gain_db >= max_gain_db:
            break
        # Limiting makes loudness grow slower than gain: secant step on the measured slope.
        slope = 1.0 if previous is None else (got - previous[1]) / (gain_db - previous[0])
        previous = (gain_db, got)
        gain_db = min(gain_db + miss / float(np.clip(slope, 0.2, 1.0)), max_gain_db)
    return _trim_to_ceiling(best, sample_rate, ceiling_db)


def _limit(
    audio: np.ndarray, envelope: np.ndarray, sample_rate: int, gain_db: float, ceiling_db: float
) -> np.ndarray:
    """``audio`` with ``gain_db`` applied and limited to ``ceiling_db`` (minus the margin)."""
    gain = gain_db + limiter_gain_db(
        envelope * 10.0 ** (gain_db / 20.0), sample_rate, ceiling_db=ceiling_db - _LIMIT_MARGIN_DB
    )
    return (audio * (10.0 ** (gain / 20.0)).astype(np.float32)).astype(np.float32, copy=False)


def _trim_to_ceiling(audio: np.ndarray, sample_rate: int, ceiling_db: float) -> np.ndarray:
    """Static trim for the rare inter-sample overshoot the gain modulation creates."""
    over_db = _to_db(float(_peak_envelope(audio, sample_rate).max())) - ceiling_db
    if over_db > 0.0:
        audio = audio * np.float32(10.0 ** (-(over_db + 0.01) / 20.0))
    return audio


def _peak_envelope(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Linear true peak around each sample, max over channels: (T,).

    The oversampled points between samples n and n + 1 are computed phase by
    phase (the same Kaiser-windowed FIR as ``scipy.signal.resample_poly``, but
    without interleaving the output, which is 3x faster). Sample n covers the
    points from n - 1 to n + 1, so a peak between two samples constrains the
    gain at both.
    """
    frames = audio.shape[1]
    peaks = np.maximum(audio.max(axis=0), -audio.min(axis=0))
    for first_tap, taps in _oversampling_phases(_oversampling_factor(sample_rate)):
        padded = np.pad(audio, ((0, 0), (-first_tap, first_tap + len(taps) - 1)))
        phase = correlate1d(padded, taps, axis=-1, mode="constant", origin=-(len(taps) // 2))
        phase = phase[:, :frames]
        peaks = np.maximum(peaks, np.maximum(phase.max(axis=0), -phase.min(axis=0)))
    return np.maximum(peaks, np.concatenate(([0.0], peaks[:-1])))


def _oversampling_factor(sample_rate: int) -> int:
    return 4 if sample_rate < 88200 else 2 if sample_rate < 176400 else 1


@functools.cache
def _oversampling_phases(factor: int) -> tuple[tuple[int, np.ndarray], ...]:
    """(first input offset, taps) of each fractional phase 1..factor-1.

    Phase p at sample n is sum_i taps[i] * x[n + first + i], the point
    p / factor of the way from sample n to n + 1.
    """
    if factor == 1:
        return ()
    half = 10 * factor
    fir = firwin(2 * half + 1, 1.0 / factor, window=("kaiser", 5.0)) * factor
    phases = []
    for p in range(1, factor):
        offsets = [k for k in range(-half, half + 1) if 0 <= p + half - factor * k <= 2 * half]
        taps = np.array([fir[p + half - factor * k] for k in offsets], dtype=np.float32)
        phases.append((offsets[0], taps))
    return tuple(phases)


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Mean over values[n - width .. n], padding before the start with values[0]."""
    if width <= 0:
        return values
    padded = np.concatenate((np.full(width + 1, values[0]), values))
    sums = np.cumsum(padded)
    return (sums[width + 1 :] - sums[: -(width + 1)]) / (width + 1)


def _to_db(linear: float) -> float:
    return max(20.0 * float(np.log10(linear)), PEAK_FLOOR_DB) if linear > 0 else PEAK_FLOOR_DB
