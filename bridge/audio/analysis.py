"""Listening to a clip: tempo, beats, downbeats, metre, key, loudness and its length in bars.

Why here: this is signal processing on (C, T) arrays, like loudness.py, with no model and no torch, so it lives in
the audio wing where the worker (a render's check), admission (a request without bpm) and the tools can all
reach it. Transcription to notes needs a trained network and lives in inference/transcription/.

Why our own DSP, not librosa: librosa (ISC) installs cleanly here, but it brings numba, llvmlite and
scikit-learn (about 100 MB), a JIT compile of several seconds on a fresh process's first beat track, and it
still has no downbeat, metre or key estimate, which is most of what is needed. The pieces below are the
textbook ones on numpy and scipy (already dependencies). madmom's downbeat models are CC BY-NC-SA: not in a
default install.

The pipeline, at 22050 Hz mono (``analyze``):

1. **Onset envelope** (``onset_envelopes``): an STFT of 1024 samples every 256 (86 frames per second),
   magnitudes in log-spaced bands (12 per octave, 30 Hz to 10 kHz), log-compressed, and their rise from one
   frame to the next over the neighbouring bands' max a frame before (SuperFlux: a vibrato is not an onset);
   also split in three (under 150 Hz: the kick; over 3 kHz: the hats; between). A peak comes
   ``ONSET_DELAY_S`` before its hit (measured on clicks and drums), which beat times add back.
2. **The tatum** (``pulse_period``): the envelope's autocorrelation between 0.15 and 1.6 s; the slowest peak
   that every strong peak is a whole multiple of. No tempo prior: a 180 BPM click is 180 BPM.
3. **Beats** (``track_beats``): Ellis' dynamic programme (2007) at that period, each beat moved to its peak's
   vertex, then a straight line through them by their index (``fit_grid``): DAW material keeps its tempo, and
   the line gives it to a few hundredths of a BPM. Confidence: the autocorrelation peak times the share of
   beats within a twentieth of a period of the line (a drifting or rubato clip scores low).
4. **Metre and downbeats** (``find_metre``): per tatum, the three bands' rise and the chord change across it.
   The bar is the fewest tatums (lasting 0.9 to 4.5 s) after which these repeat (a drum pattern, an accent
   pattern); 3, 6 or 12 tatums are 3/4, or 6/8 when the middle of the bar outweighs its thirds; 2, 4, 8 or 16
   are 4/4, or 6/8 when the hits between tatums fall on their thirds (dotted quarters). The downbeat is the
   bar position with the strongest accent (the rise, the kick counted twice more, the chord change).
5. **Key** (``estimate_key``): per frame of 8192 samples, each semitone's strongest partial (C1 to D#7),
   log-compressed, folded into 12 pitch classes and summed over the clip, then correlated with the 24
   rotations of Albrecht and Shanahan's major and minor profiles (``KEY_PROFILES`` says why not
   Krumhansl-Kessler's); confidence is the winning correlation.
6. **Loudness** (bridge/audio/loudness.py) and the length in bars at the found tempo and metre.

Tempo is in quarter notes per minute, like the session's bpm (bridge/audio/context.py): a 6/8 bar lasts three
quarters. Beats are beat_unit notes (eighths in 6/8).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from bridge.audio.context import MusicalContext
from bridge.audio.loudness import measure_lufs, true_peak_db
from bridge.audio.render import resample
from bridge.audio.samples import as_audio

ANALYSIS_RATE = 22050
N_FFT = 1024
HOP = 256
FPS = ANALYSIS_RATE / HOP  # onset frames per second
ONSET_DELAY_S = 0.008  # an envelope peak comes this long before its hit (the hit enters the window first)
LOW_BAND_HZ = 150.0
HIGH_BAND_HZ = 3000.0
PULSE_RANGE_S = (0.15, 1.6)
TIGHTNESS = 100.0  # the beat tracker's tempo rigidity (Ellis 2007; librosa's default)
CHROMA_FFT = 8192
CHROMA_HOP = 1024
CHROMA_PITCHES = (24, 100)  # C1 (33 Hz) to D#7 (2.5 kHz), MIDI numbers
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Key profiles, tonic first: Albrecht & Shanahan (2013), pitch-class distributions of a corpus of major and
# minor pieces. Krumhansl & Kessler's (1982) probe-tone ratings are kept for comparison (KEY_PROFILES): on
# recorded piano and bass (FluidR3 through fluidsynth) they put 4 of 4 minor songs in the parallel major, whose
# third a bass's fifth partial feeds; these get all 8 right and the 48 synthetic progressions too.
AS_MAJOR = np.array([0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081])
AS_MINOR = np.array([0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052])
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
KEY_PROFILES = {"albrecht-shanahan": (AS_MAJOR, AS_MINOR), "krumhansl-kessler": (KK_MAJOR, KK_MINOR)}
MIN_SECONDS = 2.0  # shorter clips have no tempo worth a number
BAR_RANGE_S = (0.9, 4.5)  # a bar lasts this long: 4/4 from 53 to 267 BPM, 3/4 and 6/8 from 40 to 200
BAR_TATUMS = (2, 3, 4, 6, 8, 12, 16)  # tatums per bar the metre search tries
KICK_WEIGHT = 2.0  # the low band's power rise in a downbeat's accent, against the onset's 1
LOW_SHARE = 0.05  # ... counted where the low band holds this share of the clip's power rises


@dataclass(frozen=True)
class Analysis:
    """What a listener hears in a clip. Times in seconds from the clip's start."""

    seconds: float
    bpm: float  # quarter notes per minute
    bpm_confidence: float  # 0..1
    beats_per_bar: int
    beat_unit: int
    metre_confidence: float  # 0..1: how much closer tatums a bar apart are than two at random
    beats_s: tuple[float, ...]  # every beat_unit note
    downbeats_s: tuple[float, ...]
    key: str  # "A minor"; "" when nothing tonal was heard
    key_confidence: float  # 0..1
    lufs: float
    peak_db: float
    bars: float  # seconds at bpm and the metre

    @property
    def metre(self) -> str:
        return f"{self.beats_per_bar}/{self.beat_unit}"

    @property
    def first_downbeat_s(self) -> float:
        return self.downbeats_s[0] if self.downbeats_s else 0.0

    @property
    def bar_s(self) -> float:
        return self.beats_per_bar * 60.0 / self.bpm * 4.0 / self.beat_unit

    def context(self, sample_rate: int) -> MusicalContext:
        """The session context this clip implies (its tempo, metre and key) at sample_rate."""
        return MusicalContext(bpm=round(self.bpm, 2), beats_per_bar=self.beats_per_bar, beat_unit=self.beat_unit,
                              key=self.key, sample_rate=sample_rate)

    def to_json(self) -> dict:
        """Plain data (rounded to what a DAW can use), for --json, HTTP and manifests."""
        data = asdict(self)
        data.update(metre=self.metre, first_downbeat_s=round(self.first_downbeat_s, 4))
        for name in ("bpm", "bars", "seconds", "lufs", "peak_db"):
            data[name] = round(data[name], 3)
        for name in ("bpm_confidence", "metre_confidence", "key_confidence"):
            data[name] = round(data[name], 3)
        data["beats_s"] = [round(t, 4) for t in self.beats_s]
        data["downbeats_s"] = [round(t, 4) for t in self.downbeats_s]
        return data


@dataclass(frozen=True)
class Envelopes:
    """Onset envelopes at FPS frames per second, and the chroma at its own hop."""

    onset: np.ndarray  # (N,) all bands
    bands: np.ndarray  # (3, N): under LOW_BAND_HZ (kick), between, over HIGH_BAND_HZ (hats)
    power: np.ndarray  # (3, N): the same three groups' power (linear), for what a hit is made of
    chroma: np.ndarray  # (12, M)


@dataclass(frozen=True)
class Grid:
    """A constant-tempo grid through tracked beats: beat n at origin_s + n * period_s."""

    origin_s: float
    period_s: float
    indices: np.ndarray  # (B,) each tracked beat's index on the grid
    beats_s: np.ndarray  # (B,) the tracked beats
    inliers: float  # share of beats within a twentieth of a period of the line


def analyze(audio: np.ndarray, sample_rate: int) -> Analysis:
    """Tempo, beats, downbeats, metre, key and loudness of ``audio`` (C, T) at ``sample_rate``.

    Works on any length; under ``MIN_SECONDS`` (or silence) the tempo is 0 with confidence 0 and no beats.
    """
    audio = as_audio(audio, finite=True)
    seconds = audio.shape[1] / sample_rate
    lufs, peak = measure_lufs(audio, sample_rate), true_peak_db(audio, sample_rate)
    mono = mono_at_analysis_rate(audio, sample_rate)
    envelopes = onset_envelopes(mono)
    key, key_confidence = estimate_key(envelopes.chroma)
    rhythm = _rhythm(envelopes, seconds)
    if rhythm is None:
        return Analysis(seconds=seconds, bpm=0.0, bpm_confidence=0.0, beats_per_bar=4, beat_unit=4,
                        metre_confidence=0.0, beats_s=(), downbeats_s=(), key=key, key_confidence=key_confidence,
                        lufs=lufs, peak_db=peak, bars=0.0)
    bpm, confidence, metre, beats, downbeats = rhythm
    per_bar, unit = metre.beats_per_bar, metre.beat_unit
    bar_s = per_bar * 60.0 / bpm * 4.0 / unit
    return Analysis(seconds=seconds, bpm=bpm, bpm_confidence=confidence, beats_per_bar=per_bar, beat_unit=unit,
                    metre_confidence=metre.confidence, beats_s=beats, downbeats_s=downbeats, key=key,
                    key_confidence=key_confidence, lufs=lufs, peak_db=peak, bars=seconds / bar_s)


@dataclass(frozen=True)
class Metre:
    """How the tatums group into bars: the time signature, tatums per bar, and the grid index of a downbeat."""

    beats_per_bar: int
    beat_unit: int
    tatums_per_bar: int
    phase: int
    confidence: float

    def bpm(self, tatum_s: float) -> float:
        """Quarter notes per minute when a tatum lasts tatum_s."""
        bar_quarters = self.beats_per_bar * 4.0 / self.beat_unit
        return 60.0 * bar_quarters / (self.tatums_per_bar * tatum_s)


def _rhythm(envelopes: Envelopes, seconds: float):
    """(bpm, confidence, metre, beats, downbeats), or None for no pulse."""
    if seconds < MIN_SECONDS or not np.any(envelopes.onset > 0):
        return None
    period, clarity = pulse_period(envelopes.onset)
    if period <= 0:
        return None
    beat_frames = track_beats(envelopes.onset, period)
    if len(beat_frames) < 4:
        return None
    grid = fit_grid(refine_peaks(envelopes.onset, beat_frames) / FPS + ONSET_DELAY_S, period / FPS)
    metre = find_metre(envelopes, grid)
    beats, downbeats = beat_times(grid, metre)
    return metre.bpm(grid.period_s), float(np.clip(clarity * grid.inliers, 0.0, 1.0)), metre, beats, downbeats


def mono_at_analysis_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(T',) float32: the channels' mean at ANALYSIS_RATE, scaled to a peak of 1 (analysis is level-free)."""
    mono = resample(audio.mean(axis=0, keepdims=True), sample_rate, ANALYSIS_RATE)[0]
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    return mono / peak if peak > 1e-6 else np.zeros_like(mono)


def stft_magnitude(signal: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| (F, N) of a (T,) signal, Hann window, centred frames (frame n at n * hop), scaled so a
    full-scale sine peaks near 1."""
    padded = np.pad(signal.astype(np.float32), (n_fft // 2, n_fft // 2))
    if padded.size < n_fft:
        padded = np.pad(padded, (0, n_fft - padded.size))
    window = np.hanning(n_fft).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * window, axis=1)).T * (2.0 / window.sum())


def _log_bands(n_fft: int, low_hz: float = 30.0, high_hz: float = 10000.0, per_octave: int = 12) -> np.ndarray:
    """(B, F) 0/1 matrix gathering STFT bins into log-spaced bands; bands no bin falls in are dropped."""
    freqs = np.arange(n_fft // 2 + 1) * ANALYSIS_RATE / n_fft
    usable = (freqs >= low_hz) & (freqs <= high_hz)
    band = np.full(freqs.shape, -1)
    band[usable] = np.round(per_octave * np.log2(freqs[usable] / low_hz)).astype(int)
    kept = np.unique(band[usable])
    matrix = (band[None, :] == kept[:, None]).astype(np.float32)
    return matrix


_BANDS = _log_bands(N_FFT)
_BAND_LOW_EDGE_HZ = np.array([np.nonzero(row)[0][0] * ANALYSIS_RATE / N_FFT for row in _BANDS])


def onset_envelopes(mono: np.ndarray) -> Envelopes:
    """The onset envelopes (all bands; low, middle and high), the three groups' power at FPS, and the chroma
    (12, M), of the analysis-rate signal."""
    magnitude = stft_magnitude(mono, N_FFT, HOP)
    linear = _BANDS @ magnitude  # (B, N)
    bands = np.log1p(100.0 * linear)
    previous = maximum_filter1d(bands, size=3, axis=0)  # SuperFlux: the neighbours' max a frame before
    rise = np.maximum(bands[:, 1:] - previous[:, :-1], 0.0)
    rise = np.concatenate([np.zeros((bands.shape[0], 1), dtype=rise.dtype), rise], axis=1)
    low, high = _BAND_LOW_EDGE_HZ < LOW_BAND_HZ, _BAND_LOW_EDGE_HZ >= HIGH_BAND_HZ
    groups = (low, ~low & ~high, high)
    split = np.stack([rise[group].sum(axis=0) for group in groups])
    power = np.stack([(linear[group] ** 2).sum(axis=0) for group in groups])
    return Envelopes(onset=rise.sum(axis=0), bands=split, power=power, chroma=chroma(mono))


def pulse_period(onset: np.ndarray) -> tuple[float, float]:
    """(tatum period in frames, clarity 0..1) from the envelope's autocorrelation in PULSE_RANGE_S; (0, 0) when
    it has no peak.

    The tatum is the slowest peak that every strong peak (half the strongest or more) is a whole multiple of:
    in 6/8 the dotted quarter and the bar are strong, and so is two eighths (a hat on every eighth makes it), but
    only the eighth divides all three; in 4/4 the eighth divides the quarter and the bar. Where no peak divides
    them all (a loose performance), the one that divides the most of their weight.
    """
    detrended = onset - uniform_filter1d(onset, size=int(FPS), mode="nearest")
    size = 1 << int(math.ceil(math.log2(2 * detrended.size)))
    spectrum = np.fft.rfft(detrended, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: detrended.size]
    if acf[0] <= 0:
        return 0.0, 0.0
    acf = acf / acf[0]
    lo, hi = int(PULSE_RANGE_S[0] * FPS), min(int(PULSE_RANGE_S[1] * FPS), acf.size - 2)
    if hi <= lo + 2:
        return 0.0, 0.0
    inner = np.arange(lo, hi + 1)
    peaks = inner[(acf[inner] > acf[inner - 1]) & (acf[inner] >= acf[inner + 1]) & (acf[inner] > 0.05)]
    if peaks.size == 0:
        return 0.0, 0.0
    lags = np.array([parabolic_peak(acf, int(p)) for p in peaks])
    heights = acf[peaks]
    strong = heights >= 0.5 * heights.max()

    def coverage(lag: float) -> float:
        multiples = lags[strong] / lag
        whole = np.abs(multiples - np.round(multiples)) * lag <= np.maximum(2.0, 0.03 * lags[strong])
        return float(heights[strong][whole & (np.round(multiples) >= 1)].sum() / heights[strong].sum())

    covered = np.array([coverage(lag) for lag in lags])
    chosen = int(np.nonzero(covered >= covered.max() - 0.1)[0][-1])
    return float(lags[chosen]), float(heights[chosen])


def parabolic_peak(values: np.ndarray, index: int) -> float:
    """The vertex of the parabola through values[index - 1 .. index + 1]: a peak's fractional position."""
    if index <= 0 or index >= values.size - 1:
        return float(index)
    a, b, c = values[index - 1], values[index], values[index + 1]
    denominator = a - 2 * b + c
    return float(index) if denominator == 0 else float(index + 0.5 * (a - c) / denominator)


def track_beats(onset: np.ndarray, period: float, tightness: float = TIGHTNESS) -> np.ndarray:
    """Beat frames (B,) through the envelope at about ``period`` frames apart (Ellis 2007).

    Each frame's score is its onset plus the best earlier beat's score within half to twice the period, less
    tightness * log(interval / period)**2; the path is traced back from the last strong score. Beats at either
    end weaker than half the envelope's RMS are dropped (a fade in or out is not a beat).
    """
    local = onset / (onset.std() + 1e-9)
    offsets = np.arange(-int(round(2 * period)), -int(round(period / 2)) + 1)
    penalty = -tightness * np.log(-offsets / period) ** 2
    score = local.astype(np.float64).copy()
    back = np.full(local.size, -1)
    for t in range(-offsets[-1], local.size):
        positions = t + offsets
        valid = positions >= 0
        candidates = score[positions[valid]] + penalty[valid]
        best = int(np.argmax(candidates))
        if candidates[best] > 0:
            score[t] += candidates[best]
            back[t] = positions[valid][best]
    tail = score[-int(2 * period):] if local.size > 2 * period else score
    end = local.size - tail.size + int(np.argmax(tail))
    beats = [end]
    while back[beats[-1]] >= 0:
        beats.append(int(back[beats[-1]]))
    frames = np.array(beats[::-1])
    threshold = 0.5 * math.sqrt(float(np.mean(local ** 2)))
    strong = np.nonzero(_peak_near(local, frames) > threshold)[0]
    return frames[strong[0]: strong[-1] + 1] if strong.size else frames[:0]


def _peak_near(envelope: np.ndarray, frames: np.ndarray, width: int = 2) -> np.ndarray:
    """The envelope's maximum within width frames of each frame."""
    padded = np.pad(envelope, (width, width))
    return np.max(np.stack([padded[frames + k] for k in range(2 * width + 1)]), axis=0)


def _rise_near(envelope: np.ndarray, frames: np.ndarray, width: int = 2) -> np.ndarray:
    """The envelope summed within width frames of each frame: a hit's whole rise, however the STFT frames fall
    on it (its peak alone moves by half with the frames' phase)."""
    padded = np.pad(envelope, (width, width))
    return np.sum(np.stack([padded[frames + k] for k in range(2 * width + 1)]), axis=0)


def fit_grid(beats_s: np.ndarray, period_s: float) -> Grid:
    """The straight line (least squares, twice: the second time without outliers) through the beats by their
    index on a grid of about period_s."""
    indices = np.round((beats_s - beats_s[0]) / period_s).astype(int)
    slope, origin = np.polyfit(indices, beats_s, 1)
    for _ in range(2):
        indices = np.round((beats_s - origin) / slope).astype(int)
        residual = beats_s - (origin + slope * indices)
        keep = np.abs(residual) < 0.05 * slope
        if keep.sum() >= 3 and len(np.unique(indices[keep])) >= 2:
            slope, origin = np.polyfit(indices[keep], beats_s[keep], 1)
    indices = np.round((beats_s - origin) / slope).astype(int)
    residual = beats_s - (origin + slope * indices)
    inliers = float(np.mean(np.abs(residual) < 0.05 * slope))
    return Grid(origin_s=float(origin), period_s=float(slope), indices=indices, beats_s=beats_s, inliers=inliers)


def refine_peaks(envelope: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Each frame moved to the parabola vertex of the envelope's peak within a frame of it (fractional frames);
    a frame with no peak there stays."""
    refined = frames.astype(np.float64)
    for k, frame in enumerate(frames):
        lo, hi = max(1, frame - 1), min(envelope.size - 2, frame + 1)
        if lo > hi:
            continue
        peak = lo + int(np.argmax(envelope[lo: hi + 1]))
        if envelope[peak] > envelope[peak - 1] and envelope[peak] >= envelope[peak + 1]:
            refined[k] = parabolic_peak(envelope, peak)
    return refined


def tatum_features(envelopes: Envelopes, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Per tracked tatum: (features (B, 4), accent (B,)).

    Features: the low, middle and high band onsets and the chord change across the tatum (scaled to the onsets'
    mean), all over one common scale (the onsets' spread), so a band with nothing in it adds no noise. Accent
    (what marks a downbeat): the onset over its largest, the low band's power rise over its largest counted
    ``KICK_WEIGHT`` times (where the clip's low band holds ``LOW_SHARE`` of its power rise: a kick, a bass note;
    a snare's crack is loud in every band but carries little power down there), and the chord change (0-1)."""
    frames = np.clip(np.round((grid.beats_s - ONSET_DELAY_S) * FPS).astype(int), 0, envelopes.onset.size - 1)
    onset = _rise_near(envelopes.onset, frames)
    bands = np.stack([_rise_near(band, frames) for band in envelopes.bands])
    change = _chroma_change(envelopes.chroma, grid.beats_s, grid.period_s)
    features = np.vstack([bands, float(np.mean(onset)) * change]).T
    features = (features - features.mean(axis=0)) / max(float(onset.std()), 1e-9)
    power = power_rises(envelopes.power, frames)
    accent = onset / max(float(onset.max()), 1e-12) + change
    if power[:, 0].sum() >= LOW_SHARE * power.sum():
        accent = accent + KICK_WEIGHT * power[:, 0] / max(float(power[:, 0].max()), 1e-12)
    return features, accent


def power_rises(power: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(H, 3): how much each band group's power rose at each frame (its most over the next 3 frames less its
    mean over the 3 before)."""
    count = power.shape[1]
    rises = np.zeros((frames.size, power.shape[0]))
    for k, frame in enumerate(frames):
        after = power[:, frame: min(count, frame + 4)].max(axis=1)
        before = power[:, max(0, frame - 4): max(1, frame - 1)].mean(axis=1)
        rises[k] = np.maximum(after - before, 0.0)
    return rises


def _chroma_change(chroma_frames: np.ndarray, times_s: np.ndarray, span_s: float) -> np.ndarray:
    """1 - cosine similarity of the mean chroma in the span before and the span after each time."""
    rate = ANALYSIS_RATE / CHROMA_HOP
    span = max(2, int(round(span_s * rate)))
    columns = chroma_frames.shape[1]
    change = np.zeros(times_s.size)
    for k, t in enumerate(times_s):
        centre = int(round(t * rate))
        before = chroma_frames[:, max(0, centre - span): max(0, centre)]
        after = chroma_frames[:, min(columns, centre): min(columns, centre + span)]
        if before.shape[1] and after.shape[1]:
            a, b = before.mean(axis=1), after.mean(axis=1)
            norm = float(np.linalg.norm(a) * np.linalg.norm(b))
            change[k] = 1.0 - float(a @ b) / norm if norm > 1e-9 else 0.0
    return change


def repetition_distance(features: np.ndarray, indices: np.ndarray, lag: int) -> float:
    """Mean squared difference between the feature vectors of tatums lag apart, the largest tenth left out (the
    clip's edges); 0 when the pattern repeats every lag tatums, nan with fewer than 3 pairs."""
    position = {int(n): k for k, n in enumerate(indices)}
    pairs = [(k, position[int(n) + lag]) for k, n in enumerate(indices) if int(n) + lag in position]
    if len(pairs) < 3:
        return math.nan
    first, second = (np.array(side) for side in zip(*pairs, strict=True))
    squared = np.sort(np.sum((features[first] - features[second]) ** 2, axis=1))
    return float(np.mean(squared[: max(3, int(math.ceil(0.9 * squared.size)))]))  # the clip's edges aside


def find_metre(envelopes: Envelopes, grid: Grid) -> Metre:
    """The bar: the fewest tatums (a bar of BAR_RANGE_S) after which the tatums' features repeat best; its
    downbeat: the position whose folded accent is strongest. Three, six or twelve tatums are 3/4, or 6/8 when
    the middle of the bar outweighs its thirds; two, four, eight or sixteen are 4/4. Confidence: how much
    closer the tatums a bar apart are than two tatums taken at random."""
    features, accent = tatum_features(envelopes, grid)
    indices = grid.indices
    fitting = [size for size in BAR_TATUMS if BAR_RANGE_S[0] <= size * grid.period_s <= BAR_RANGE_S[1]]
    if not fitting:
        fitting = [min(BAR_TATUMS, key=lambda size: abs(math.log(size * grid.period_s / 2.0)))]
    distance = {size: repetition_distance(features, indices, size) for size in fitting}
    known = {size: d for size, d in distance.items() if not math.isnan(d)}
    unrelated = 2.0 * float(np.mean(np.sum(features ** 2, axis=1)))  # the distance of two random tatums
    if known and unrelated > 0:
        best = min(known.values())
        size = min(s for s, d in known.items() if d <= best + 0.1 * unrelated)
        confidence = float(np.clip(1.0 - known[size] / unrelated, 0.0, 1.0))
    else:
        size, confidence = fitting[0], 0.0
    phase, profile = _downbeat_phase(accent, indices, size)
    if size % 2 == 0 and subdivides_in_three(envelopes.onset, grid):  # dotted quarters: 6/8, two a bar
        return Metre(beats_per_bar=6, beat_unit=8, tatums_per_bar=2, phase=phase % 2, confidence=confidence)
    if size == 2:  # only an on/off alternation: no bar heard; count 4/4 bars of the fitting length
        size = next((s for s in (4, 8) if s in fitting), size)
        phase, profile = _downbeat_phase(accent, indices, size)
        confidence = 0.0
    if size % 3 == 0:
        third, half = size // 3, size // 2
        compound = size > 3 and profile[half] > (profile[third] + profile[2 * third]) / 2
        per_bar, unit = (6, 8) if compound else (3, 4)
    else:
        per_bar, unit = 4, 4
    return Metre(beats_per_bar=per_bar, beat_unit=unit, tatums_per_bar=size, phase=phase, confidence=confidence)


def subdivides_in_three(onset: np.ndarray, grid: Grid) -> bool:
    """Whether the hits between tatums fall at their thirds rather than their middle (a compound metre counted
    in dotted quarters): the envelope's rise at 1/3 and 2/3 of each tatum against its rise at 1/2."""
    order = np.argsort(grid.indices)
    starts, ends = grid.beats_s[order][:-1], grid.beats_s[order][1:]
    whole = np.diff(grid.indices[order]) == 1
    if whole.sum() < 4:
        return False
    starts, ends = starts[whole], ends[whole]

    def rise_at(fraction: float) -> float:
        times = starts + fraction * (ends - starts) - ONSET_DELAY_S
        frames = np.clip(np.round(times * FPS).astype(int), 0, onset.size - 1)
        return float(np.mean(_rise_near(onset, frames, width=1)))

    thirds, half = (rise_at(1 / 3) + rise_at(2 / 3)) / 2, rise_at(1 / 2)
    return thirds > 2.0 * half and thirds > 0.1 * rise_at(0.0)


def _downbeat_phase(accent: np.ndarray, indices: np.ndarray, size: int) -> tuple[int, np.ndarray]:
    """(phase, the folded accent profile starting at that phase): the bar position with the strongest mean
    accent."""
    positions = indices % size
    counts = np.maximum(np.bincount(positions, minlength=size), 1)
    profile = np.bincount(positions, weights=accent, minlength=size) / counts
    phase = int(np.argmax(profile))
    return phase, np.roll(profile, -phase)


def beat_times(grid: Grid, metre: Metre) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(beats, downbeats) between the first and the last tracked tatum: beat_unit notes and bar starts, read
    off the tracked tatums (interpolated between them where a beat falls inside a tatum)."""
    first, last = int(grid.indices.min()), int(grid.indices.max())
    tatums_per_beat = metre.tatums_per_bar / metre.beats_per_bar
    start = metre.phase - math.floor((metre.phase - first) / tatums_per_beat) * tatums_per_beat
    positions = np.arange(start, last + 1e-9, tatums_per_beat)
    order = np.argsort(grid.indices)
    times = np.interp(positions, grid.indices[order], grid.beats_s[order])
    on_bar = np.isclose(((positions - metre.phase) / metre.tatums_per_bar) % 1.0, 0.0, atol=1e-6) | np.isclose(
        ((positions - metre.phase) / metre.tatums_per_bar) % 1.0, 1.0, atol=1e-6)
    return tuple(float(t) for t in times), tuple(float(t) for t in times[on_bar])


def chroma(mono: np.ndarray) -> np.ndarray:
    """(12, M) pitch-class energy, C first: for each semitone from CHROMA_PITCHES, the largest STFT magnitude
    within half a semitone of it (a partial, not the leakage around it), log-compressed, folded into its
    pitch class."""
    magnitude = stft_magnitude(mono, CHROMA_FFT, CHROMA_HOP)
    out = np.zeros((12, magnitude.shape[1]), dtype=np.float32)
    for pitch, (lo, hi) in _PITCH_BINS.items():
        out[pitch % 12] += np.log1p(100.0 * magnitude[lo:hi].max(axis=0))
    return out


def _pitch_bins() -> dict[int, tuple[int, int]]:
    """MIDI pitch -> the STFT bins (lo, hi) within half a semitone of it; pitches no bin falls near are left out."""
    bins = {}
    for pitch in range(*CHROMA_PITCHES):
        centre = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        lo = int(math.ceil(centre * 2.0 ** (-0.5 / 12) * CHROMA_FFT / ANALYSIS_RATE))
        hi = int(math.ceil(centre * 2.0 ** (0.5 / 12) * CHROMA_FFT / ANALYSIS_RATE))
        if lo < hi <= CHROMA_FFT // 2:
            bins[pitch] = (lo, hi)
    return bins


_PITCH_BINS = _pitch_bins()


def estimate_key(chroma_frames: np.ndarray, profiles: str = "albrecht-shanahan") -> tuple[str, float]:
    """("A minor", confidence) from chroma frames (12, M): the key profile (24 rotations of KEY_PROFILES'
    major and minor) the summed chroma correlates with best; ("", 0.0) when there is no pitch content."""
    profile = chroma_frames.sum(axis=1) if chroma_frames.size else np.zeros(12)
    if not np.any(profile > 0) or np.ptp(profile) < 1e-6:
        return "", 0.0
    best, name = -2.0, ""
    for tonic in range(12):
        for mode, template in zip(("major", "minor"), KEY_PROFILES[profiles], strict=True):
            r = _correlation(profile, np.roll(template, tonic))
            if r > best:
                best, name = r, f"{PITCH_CLASSES[tonic]} {mode}"
    return name, float(np.clip(best, 0.0, 1.0))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm > 1e-12 else 0.0


@dataclass(frozen=True)
class GridCheck:
    """How a render sits on the grid it was asked for: the tempo heard against the asked one, and how far the
    downbeats heard lie from the asked bar lines (where the metre heard differs, the beats from the asked beats)."""

    bpm_heard: float
    bpm_confidence: float
    tempo_error_pct: float | None  # heard against asked (against x2, x1/2, ... when octave); None: no tempo heard
    octave: str  # "" when the tempo heard is the asked one, else the ratio heard ("2", "1/2", "3/2", ...)
    offset_ms: float | None  # median signed distance of the marks heard from the asked grid's; + is late
    against: str  # "downbeats" or "beats": which marks were compared

    def to_json(self) -> dict:
        return {"bpm_heard": round(self.bpm_heard, 3), "bpm_confidence": round(self.bpm_confidence, 3),
                "tempo_error_pct": None if self.tempo_error_pct is None else round(self.tempo_error_pct, 3),
                "octave": self.octave,
                "offset_ms": None if self.offset_ms is None else round(self.offset_ms, 1), "against": self.against}


OCTAVES = {"2": 2.0, "1/2": 0.5, "3": 3.0, "1/3": 1 / 3, "3/2": 1.5, "2/3": 2 / 3}


def check_grid(audio: np.ndarray, sample_rate: int, context: MusicalContext, *, origin_s: float = 0.0) -> GridCheck:
    """Beat-track a render (C, T) and measure it against the grid of context: its downbeats at origin_s +
    seconds_for_bars(n) (bar 0 at the file's start unless the render keeps an input whose first downbeat was
    heard later)."""
    found = analyze(audio, sample_rate)
    if not found.bpm:
        return GridCheck(0.0, 0.0, None, "", None, "")
    ratio, octave = 1.0, ""
    if abs(found.bpm / context.bpm - 1.0) > 0.02:
        name = min(OCTAVES, key=lambda key: abs(found.bpm / (context.bpm * OCTAVES[key]) - 1.0))
        if abs(found.bpm / (context.bpm * OCTAVES[name]) - 1.0) <= 0.02:
            ratio, octave = OCTAVES[name], name
    error = 100.0 * (found.bpm / (context.bpm * ratio) - 1.0)
    same_metre = (found.beats_per_bar, found.beat_unit) == (context.beats_per_bar, context.beat_unit)
    marks, step = (found.downbeats_s, context.seconds_for_bars(1)) if same_metre else (
        found.beats_s, context.seconds_for_beats(1))
    offsets = [(t - origin_s) - round((t - origin_s) / step) * step for t in marks]
    offset_ms = 1000.0 * float(np.median(offsets)) if offsets else None
    return GridCheck(found.bpm, found.bpm_confidence, error, octave, offset_ms,
                     "downbeats" if same_metre else "beats")
