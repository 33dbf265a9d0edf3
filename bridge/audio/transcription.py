"""Audio to MIDI per stem: which transcriber hears which stem, and the MIDI file of a stem at the session tempo.

- **Pitched stems** (mix, bass, other, vocals) go to Basic Pitch (inference/transcription/model.py:BasicPitch),
  each within its instrument's range (``STEM_PITCHES``: a bass stem's notes are not over G4, so the model's
  guesses at its upper partials are left out; vocals from C2 to C7).
- **Drums** go to bridge/audio/drums.py (onsets and bands, on the General MIDI drum map, channel 10): Basic Pitch
  hears pitches, and a kick is not one.
- **The file** (``stem_midi``): the notes, optionally quantised to the session grid from a downbeat
  (bridge/audio/midi_files.py:quantize), written at the session's tempo and metre (``midi_bytes``), so a DAW at
  that tempo shows them on its grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bridge.audio.context import MusicalContext
from bridge.audio.drums import transcribe_drums
from bridge.audio.midi_files import MIDI_STEMS, MidiTrack, midi_bytes, quantize
from bridge.errors import BadRequest
from inference.transcription.model import BasicPitch
from inference.transcription.notes import Note, NoteSettings

STEM_PITCHES: dict[str, tuple[int, int]] = {  # MIDI pitch range heard per stem
    "mix": (21, 108), "other": (21, 108), "bass": (24, 67), "vocals": (36, 96),
}


@dataclass(frozen=True)
class StemMidi:
    """One stem's transcription: its notes and the MIDI file's bytes."""

    stem: str
    notes: tuple[Note, ...]
    data: bytes
    seconds: float  # the audio it came from


def transcribe_stem(audio: np.ndarray, sample_rate: int, stem: str, *, model: BasicPitch | None = None,
                    on_progress: Callable[[float], None] | None = None,
                    should_cancel: Callable[[], bool] | None = None) -> list[Note]:
    """The notes of one stem (C, T) at sample_rate: drums by onset and band, the others by Basic Pitch."""
    if stem not in MIDI_STEMS:
        raise BadRequest(f"no MIDI for a stem called {stem!r}; one of {', '.join(MIDI_STEMS)}")
    if stem == "drums":
        notes = transcribe_drums(audio, sample_rate)
        if on_progress is not None:
            on_progress(1.0)
        return notes
    low, high = STEM_PITCHES[stem]
    model = model or BasicPitch()
    return model.transcribe(audio, sample_rate, NoteSettings(min_pitch=low, max_pitch=high),
                            on_progress=on_progress, should_cancel=should_cancel)


def stem_midi(audio: np.ndarray, sample_rate: int, stem: str, *, context: MusicalContext,
              model: BasicPitch | None = None, grid: int = 0, origin_s: float = 0.0,
              on_progress: Callable[[float], None] | None = None,
              should_cancel: Callable[[], bool] | None = None) -> StemMidi:
    """A stem's notes (quantised to 1/grid notes from origin_s when grid is not 0) and its MIDI file at the
    context's tempo and metre."""
    notes = transcribe_stem(audio, sample_rate, stem, model=model, on_progress=on_progress,
                            should_cancel=should_cancel)
    if grid:
        notes = quantize(notes, bpm=context.bpm, division=grid, origin_s=origin_s)
    track = MidiTrack(name=stem, bpm=context.bpm, beats_per_bar=context.beats_per_bar, beat_unit=context.beat_unit,
                      drums=stem == "drums")
    return StemMidi(stem=stem, notes=tuple(notes), data=midi_bytes(notes, track),
                    seconds=audio.shape[-1] / sample_rate)
