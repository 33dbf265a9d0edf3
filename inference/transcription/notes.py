"""Notes, and how Basic Pitch's posteriors become notes.

``decode_notes`` is basic-pitch's ``output_to_notes_polyphonic`` (basic_pitch/note_creation.py, 0.4.0,
Copyright 2022 Spotify AB, Apache License 2.0), ported: onsets are the peaks over time of the onset posterior
(plus the rises of the frame posterior, "inferred onsets"), each followed forward while its frame posterior
stays over ``frame_threshold`` (allowing ``ENERGY_TOLERANCE`` frames under it); notes no longer than
``min_frames`` are dropped; what remains of the frame posterior is then traced from its highest point both ways
(the "Melodia trick"), so a sustained note with a soft onset is still found. Each note's velocity is its mean
frame posterior times 127. Pitch bends are not estimated: the notes are for a DAW's piano roll.

Ours, after decoding (``drop_overtones``): a note an octave, a twelfth, two octaves, or 2 octaves and a third
(or fifth), or three octaves over a note that sounds when it starts, and weaker than ``overtone_ratio`` of it, is
taken for that note's partial and dropped. On bright synthetic tones (6-10 harmonics) basic-pitch reports such
partials as notes of velocity 40-55 beside the fundamental's 80-100: note F1 at 50 ms went from 0.90 to 1.00
(melodies), 0.73 to 0.98 (bass lines), 0.62 to 0.92 (four-voice chords); at a ratio of 1.0 chords fell to 0.64
(real doublings dropped), so 0.7. It is measured on synthetic tones only; ``overtone_ratio`` 0 turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIDI_OFFSET = 21  # the posteriors' first row is A0
ENERGY_TOLERANCE = 11  # frames a note may dip under the frame threshold and go on


@dataclass(frozen=True)
class Note:
    """One note: MIDI pitch, start and end in seconds from the audio's start, velocity 1-127."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127 or not 1 <= self.velocity <= 127 or not self.end_s > self.start_s >= 0:
            raise ValueError(f"not a note: pitch {self.pitch}, {self.start_s:.3f}-{self.end_s:.3f} s, "
                             f"velocity {self.velocity}")


@dataclass(frozen=True)
class NoteSettings:
    """What decoding keeps: onset and frame thresholds (0-1), the shortest note, and the pitch range (MIDI)."""

    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    min_note_s: float = 0.1277  # basic-pitch's default, 11 frames
    min_pitch: int = 21
    max_pitch: int = 108
    overtone_ratio: float = 0.7  # drop_overtones: a partial is weaker than this times its note; 0: keep all


def decode_notes(frames: np.ndarray, onsets: np.ndarray, times_s: np.ndarray, frame_s: float,
                 settings: NoteSettings = NoteSettings()) -> list[Note]:
    """Notes from the frame and onset posteriors (T, 88) at times_s (T,), sorted by start then pitch."""
    frames, onsets = frames.astype(np.float64).copy(), onsets.astype(np.float64).copy()
    low, high = settings.min_pitch - MIDI_OFFSET, settings.max_pitch - MIDI_OFFSET + 1
    for matrix in (frames, onsets):
        matrix[:, :max(low, 0)] = 0.0
        matrix[:, max(high, 0):] = 0.0
    min_frames = int(round(settings.min_note_s / frame_s))
    events = _decode(frames, _with_inferred_onsets(onsets, frames), settings.onset_threshold,
                     settings.frame_threshold, min_frames)
    notes = []
    for start, end, row, amplitude in events:
        velocity = int(np.clip(round(127 * amplitude), 1, 127))
        end_s = times_s[min(end, times_s.size - 1)]
        if end_s > times_s[start] >= 0:
            notes.append(Note(pitch=row + MIDI_OFFSET, start_s=float(times_s[start]), end_s=float(end_s),
                              velocity=velocity))
    if settings.overtone_ratio > 0:
        notes = drop_overtones(notes, settings.overtone_ratio)
    return sorted(notes, key=lambda note: (note.start_s, note.pitch))


OVERTONE_INTERVALS = frozenset({12, 19, 24, 28, 31, 36})  # partials 2, 3, 4, 5, 6 and 8, in semitones
ONSET_SLACK_S = 0.06


def drop_overtones(notes: list[Note], ratio: float) -> list[Note]:
    """notes without those that start while a note sounds a partial's interval below them and are weaker than
    ratio times it."""
    by_start = sorted(notes, key=lambda note: note.start_s)
    kept = []
    for note in by_start:
        partial = any(
            note.pitch - other.pitch in OVERTONE_INTERVALS and note.velocity < ratio * other.velocity
            and other.start_s - ONSET_SLACK_S <= note.start_s < other.end_s
            for other in by_start if other.start_s <= note.start_s + ONSET_SLACK_S)
        if not partial:
            kept.append(note)
    return kept


def _with_inferred_onsets(onsets: np.ndarray, frames: np.ndarray, n_diff: int = 2) -> np.ndarray:
    """The onset posterior, or the frame posterior's rise over 1..n_diff frames where larger (scaled to the
    onsets' maximum)."""
    diffs = []
    for n in range(1, n_diff + 1):
        shifted = np.concatenate([np.zeros((n, frames.shape[1])), frames])
        diffs.append(shifted[n:, :] - shifted[:-n, :])
    rise = np.maximum(np.min(diffs, axis=0), 0.0)
    rise[:n_diff, :] = 0.0
    top = rise.max()
    if top > 0:
        rise = onsets.max() * rise / top
    return np.maximum(onsets, rise)


def _decode(frames: np.ndarray, onsets: np.ndarray, onset_threshold: float, frame_threshold: float,
            min_frames: int) -> list[tuple[int, int, int, float]]:
    """(start frame, end frame, row, amplitude) per note; see the module docstring."""
    count, rows = frames.shape
    peaks = np.zeros_like(onsets)
    from scipy.signal import argrelmax  # here, not at import: the CLI's parser imports this module's callers

    where = argrelmax(onsets, axis=0)
    peaks[where] = onsets[where]
    onset_times, onset_rows = np.nonzero(peaks >= onset_threshold)
    remaining = frames.copy()
    events = []
    for start, row in zip(onset_times[::-1], onset_rows[::-1], strict=True):  # latest first
        if start >= count - 1:
            continue
        end = _follow(remaining, start, row, frame_threshold, +1)
        if end - start <= min_frames:
            continue
        _clear(remaining, start, end, row)
        events.append((int(start), int(end), int(row), float(np.mean(frames[start:end, row]))))
    while remaining.max() > frame_threshold:  # the Melodia trick: notes without an onset peak
        middle, row = np.unravel_index(int(np.argmax(remaining)), remaining.shape)
        remaining[middle, row] = 0.0
        end = _follow(remaining, middle, row, frame_threshold, +1, clear=True) - 1  # as basic-pitch ends these
        start = _follow(remaining, middle, row, frame_threshold, -1, clear=True)
        if end - start <= min_frames:
            continue
        events.append((int(start), int(end), int(row), float(np.mean(frames[start:end, row]))))
    return events


def _follow(remaining: np.ndarray, origin: int, row: int, threshold: float, step: int, *,
            clear: bool = False) -> int:
    """From origin, the last frame (going by step) before the posterior stays under threshold for
    ENERGY_TOLERANCE frames; with clear, the frames walked (and the rows beside) are zeroed as it goes."""
    count = remaining.shape[0]
    i, under = origin + step, 0
    while 0 < i < count - 1 and under < ENERGY_TOLERANCE:
        under = under + 1 if remaining[i, row] < threshold else 0
        if clear:
            _clear(remaining, i, i + 1, row)
        i += step
    return i - under if step > 0 else i + 1 + under


def _clear(remaining: np.ndarray, start: int, end: int, row: int) -> None:
    """Zero rows row-1..row+1 from start to end: a note takes its neighbours' energy (its partials' leakage)."""
    remaining[start:end, max(row - 1, 0): row + 2] = 0.0
