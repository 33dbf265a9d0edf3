"""Notes as standard MIDI files a DAW opens at the session's tempo, and notes quantised to the session's grid.

- **One track, time 0 = the audio's start.** A type-0 file: the track name (the stem), the tempo and time
  signature at tick 0, a program change for General MIDI players (bass: fingered bass, vocals: choir, drums on
  channel 10), then the notes. Dropped at the same position as its WAV, every note sits on the sound it came
  from; ticks are seconds at the file's tempo (480 per quarter note), so the DAW's grid lines up when the tempo
  is the session's.
- **Quantise** (``quantize``) is optional: each start moves to the nearest step of the grid (a 1/16 note by
  default) counted from ``origin_s`` (a downbeat), each end to the nearest step after its start (a note keeps at
  least one step); with ``strength`` under 1 the notes move that share of the way. Two notes of one pitch that
  land on one step become one (the longer).
- **Written atomically** (bridge/audio/files.py:write_bytes_atomic): a DAW never opens half a file.
- **Named beside the stem's WAV**: ``daw_file_name(..., suffix=".mid")``: ``job-1_bass_8bars_92bpm_F#min.mid``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import mido

from bridge.audio.files import write_bytes_atomic
from bridge.errors import BadRequest
from inference.transcription.notes import Note

TICKS_PER_QUARTER = 480
DRUM_CHANNEL = 9  # MIDI channel 10
PROGRAMS = {"bass": 33, "vocals": 52}  # General MIDI: electric bass (finger), choir aahs; others: piano
MIDI_STEMS = ("mix", "drums", "bass", "other", "vocals")  # what audio can become MIDI: a mix or one stem
GRID_DIVISIONS = (1, 2, 4, 8, 16, 32, 3, 6, 12, 24)  # whole, half, quarter, ... and the triplet grids


@dataclass(frozen=True)
class MidiTrack:
    """What a file says besides its notes."""

    name: str  # the stem: mix, bass, drums, ...
    bpm: float  # quarter notes per minute
    beats_per_bar: int = 4
    beat_unit: int = 4
    drums: bool = False


def quantize(notes: Sequence[Note], *, bpm: float, division: int = 16, origin_s: float = 0.0,
             strength: float = 1.0) -> list[Note]:
    """notes moved toward a grid of 1/division notes at bpm counted from origin_s (see the module docstring)."""
    if division not in GRID_DIVISIONS:
        raise BadRequest(f"the quantise grid must be one of 1/{', 1/'.join(map(str, GRID_DIVISIONS))}, "
                         f"got 1/{division}")
    if not 0.0 <= strength <= 1.0:
        raise BadRequest(f"quantise strength must be from 0 to 1, got {strength!r}")
    step = 60.0 / bpm * 4.0 / division
    kept: dict[tuple[int, float], Note] = {}
    for note in notes:
        start = _snap(note.start_s, step, origin_s)
        end = max(_snap(note.end_s, step, origin_s), start + step)
        start = note.start_s + strength * (start - note.start_s)
        end = max(note.end_s + strength * (end - note.end_s), start + 1e-3)
        moved = replace(note, start_s=max(0.0, start), end_s=max(end, max(0.0, start) + 1e-3))
        key = (note.pitch, round(moved.start_s, 6))
        if key not in kept or kept[key].end_s < moved.end_s:
            kept[key] = moved
    return sorted(kept.values(), key=lambda n: (n.start_s, n.pitch))


def _snap(time_s: float, step: float, origin_s: float) -> float:
    return origin_s + round((time_s - origin_s) / step) * step


def midi_bytes(notes: Sequence[Note], track: MidiTrack) -> bytes:
    """A type-0 standard MIDI file of notes (see the module docstring)."""
    if not 20.0 <= track.bpm <= 400.0:
        raise BadRequest(f"a MIDI file's tempo must be from 20 to 400 BPM, got {track.bpm!r}")
    channel = DRUM_CHANNEL if track.drums else 0
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order: offs before ons at one tick, message)
    for note in notes:
        start, end = _tick(note.start_s, track.bpm), _tick(note.end_s, track.bpm)
        end = max(end, start + 1)
        events.append((start, 1, mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity)))
        events.append((end, 0, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
    events.sort(key=lambda event: (event[0], event[1], event[2].note))
    meta = [
        mido.MetaMessage("track_name", name=track.name, time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(track.bpm), time=0),
        mido.MetaMessage("time_signature", numerator=track.beats_per_bar, denominator=track.beat_unit, time=0),
    ]
    if not track.drums:
        meta.append(mido.Message("program_change", channel=channel, program=PROGRAMS.get(track.name, 0), time=0))
    midi_track = mido.MidiTrack(meta)
    now = 0
    for tick, _order, message in events:
        midi_track.append(message.copy(time=tick - now))
        now = tick
    midi_track.append(mido.MetaMessage("end_of_track", time=0))
    data = io.BytesIO()
    mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_QUARTER, tracks=[midi_track]).save(file=data)
    return data.getvalue()


def _tick(time_s: float, bpm: float) -> int:
    return max(0, round(time_s * bpm / 60.0 * TICKS_PER_QUARTER))


def write_midi(path: Path, notes: Sequence[Note], track: MidiTrack) -> None:
    """notes as a standard MIDI file at path, atomically (DiskFull or IoError when the disk refuses)."""
    write_bytes_atomic(Path(path), midi_bytes(notes, track))


def read_midi_notes(path: Path) -> tuple[list[Note], float]:
    """(notes, bpm) of a file midi_bytes wrote (its first tempo): for tests, and clients that check a file."""
    midi = mido.MidiFile(str(path))
    bpm, now, tempo = 120.0, 0.0, 500000
    open_notes: dict[int, tuple[float, int]] = {}
    notes = []
    for message in mido.merge_tracks(midi.tracks):
        now += mido.tick2second(message.time, midi.ticks_per_beat, tempo)
        if message.type == "set_tempo":
            tempo = message.tempo
            bpm = mido.tempo2bpm(tempo) if not notes and not open_notes else bpm
        elif message.type == "note_on" and message.velocity > 0:
            open_notes[message.note] = (now, message.velocity)
        elif message.type in ("note_off", "note_on") and message.note in open_notes:
            start, velocity = open_notes.pop(message.note)
            notes.append(Note(pitch=message.note, start_s=start, end_s=max(now, start + 1e-3), velocity=velocity))
    return sorted(notes, key=lambda n: (n.start_s, n.pitch)), bpm
