"""Drums to MIDI notes by onset and band: kick, snare and closed hi-hat on the General MIDI drum map.

A drum stem has no pitch for Basic Pitch to find (inference/transcription/), so it is transcribed here, with no
model, on the analysis' onset envelopes (bridge/audio/analysis.py:onset_envelopes):

1. Hits (``hit_frames``) are the peaks of the whole envelope, at least ``MIN_GAP_S`` apart, over a twentieth of
   the loudest and over a fifth of the loudest within 0.1 s (a hit's ringing is not another hit), each at its
   peak's vertex, less the envelope's delay.
2. What a hit is made of (``power_rises``): how much the power rose in three band groups (under 150 Hz, 150 Hz
   to 3 kHz, over 3 kHz); power, not the log rise, so the loudest part of the hit weighs most.
3. Which drums (``classify_hits``): a kick where the low group holds ``KICK_SHARE`` of the rise or more; the
   kicks' own attack is taken off the middle group; what remains of the middle and high groups is a snare where
   the middle holds ``HAT_MID_SHARE`` of it or more (a snare's body and wires), else a hi-hat. Each needs
   ``PRESENT`` of that drum's strong hits (those it leads), so a soft hat on a kick is heard, and a drum that
   leads no hit in the clip is not there (a kick's attack is no snare). A hat struck with a snare is heard as
   the snare.

Velocity follows the drum's rise against its strong hits (40 to 127). Each note lasts ``NOTE_S``: drum machines
and DAWs read onsets. It is measured on synthetic kits only (docs/benchmarks.md, "Listen"): real kits with toms,
rides, crashes or ghost notes get those as the nearest of the three, or miss them.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d

from bridge.audio.analysis import (
    FPS,
    ONSET_DELAY_S,
    mono_at_analysis_rate,
    onset_envelopes,
    parabolic_peak,
    power_rises,
)
from inference.transcription.notes import Note

GM_DRUMS = {"kick": 36, "snare": 38, "hat": 42}  # General MIDI: bass drum 1, acoustic snare, closed hi-hat
NOTE_S = 0.06
MIN_GAP_S = 0.03
MASK_S = 0.1  # a peak under MASK_RATIO of a hit within this long is that hit's ringing, not a hit
MASK_RATIO = 0.2
FLOOR_RATIO = 0.05  # peaks under this share of the loudest are noise
PRESENT = 0.1  # a drum sounds when its power rose a tenth (-10 dB) of its strong hits' rise or more
KICK_SHARE = 0.3  # of a hit's rise, the least a kick's low band holds (a snare's thud holds 2 %)
HAT_MID_SHARE = 0.08  # of a bright hit's middle + high rise: under it a hat, over it a snare


def transcribe_drums(audio: np.ndarray, sample_rate: int) -> list[Note]:
    """Kick, snare and hi-hat notes of a drum stem (C, T) at sample_rate, sorted by start then pitch."""
    envelopes = onset_envelopes(mono_at_analysis_rate(audio, sample_rate))
    frames = hit_frames(envelopes.onset)
    if frames.size == 0:
        return []
    notes = []
    for frame, drums in zip(frames, classify_hits(power_rises(envelopes.power, frames)), strict=True):
        start = max(0.0, parabolic_peak(envelopes.onset, int(frame)) / FPS + ONSET_DELAY_S)
        for name, strength in drums:
            velocity = int(np.clip(round(40 + 87 * min(strength, 1.0)), 1, 127))
            notes.append(Note(pitch=GM_DRUMS[name], start_s=start, end_s=start + NOTE_S, velocity=velocity))
    return sorted(notes, key=lambda note: (note.start_s, note.pitch))


def hit_frames(onset: np.ndarray) -> np.ndarray:
    """Frames (H,) of the envelope's peaks: local maxima MIN_GAP_S apart, over FLOOR_RATIO of the loudest, and
    over MASK_RATIO of the loudest within MASK_S (a hit's decay is not another hit)."""
    gap = max(1, int(round(MIN_GAP_S * FPS)))
    local_max = (onset == maximum_filter1d(onset, size=2 * gap + 1)) & (onset > 0)
    masking = maximum_filter1d(onset, size=2 * int(round(MASK_S * FPS)) + 1)
    peaks = np.nonzero(local_max & (onset >= MASK_RATIO * masking))[0]
    if peaks.size == 0:
        return peaks
    peaks = peaks[onset[peaks] >= FLOOR_RATIO * float(onset[peaks].max())]
    kept: list[int] = []
    for frame in peaks:  # equal neighbours both pass the max filter: keep the first
        if not kept or frame - kept[-1] > gap:
            kept.append(int(frame))
    return np.array(kept, dtype=int)


def classify_hits(rises: np.ndarray) -> list[list[tuple[str, float]]]:
    """Per hit, the drums in it with a strength 0-1, from its power rise (low, middle, high).

    A kick's own middle (its attack) is taken off first, at the ratio the clip's kick-led hits show (their 90th
    percentile: a kick with a hat on it is still a kick and a hat, not a snare); what is left
    of the middle and the high band is a snare where the middle holds HAT_MID_SHARE of it or more, a hat where
    less. Each drum counts where its rise reaches PRESENT of that drum's strong hits (90th percentile of the hits
    it leads: over half their rise), so a soft hat beside a kick is heard and a snare's low thud is not a kick;
    a drum that leads no hit is not there.
    """
    low, mid, high = rises[:, 0], rises[:, 1], rises[:, 2]
    total = np.maximum(rises.sum(axis=1), 1e-12)
    kick_led = low / total >= 0.5
    leak = float(np.percentile(mid[kick_led] / np.maximum(low[kick_led], 1e-12), 90)) if kick_led.any() else 0.0
    bright = np.maximum(mid - leak * low, 0.0) + high
    mid_share = np.maximum(mid - leak * low, 0.0) / np.maximum(bright, 1e-12)
    bright_led = bright / total >= 0.5
    kick_ref = _strong(low, kick_led)
    snare_ref = _strong(bright, bright_led & (mid_share >= HAT_MID_SHARE))
    hat_ref = _strong(bright, bright_led & (mid_share < HAT_MID_SHARE))
    hits = []
    for k in range(rises.shape[0]):
        drums = []
        if low[k] >= KICK_SHARE * total[k] and low[k] >= PRESENT * kick_ref:
            drums.append(("kick", low[k] / kick_ref))
        if mid_share[k] >= HAT_MID_SHARE and bright[k] >= PRESENT * snare_ref:
            drums.append(("snare", bright[k] / snare_ref))
        elif mid_share[k] < HAT_MID_SHARE and bright[k] >= PRESENT * hat_ref:
            drums.append(("hat", bright[k] / hat_ref))
        hits.append(drums)
    return hits


def _strong(values: np.ndarray, led: np.ndarray) -> float:
    """The 90th percentile of values over the hits a drum leads; infinite when it leads none (a drum that
    never leads a hit is not in the clip: a kick's attack alone is not a snare)."""
    return max(float(np.percentile(values[led], 90)), 1e-12) if led.any() else np.inf
