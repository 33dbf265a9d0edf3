"""MIDI files a DAW opens at the session's tempo: notes round-trip within a tick, the tempo, metre, name and
drum channel are in the file, quantise snaps to the grid from a downbeat, and a stem's transcription comes back
from its file."""

from __future__ import annotations

import mido
import pytest

from bridge.audio.context import MusicalContext
from bridge.audio.files import daw_file_name
from bridge.audio.midi_files import (
    TICKS_PER_QUARTER,
    MidiTrack,
    midi_bytes,
    quantize,
    read_midi_notes,
    write_midi,
)
from bridge.audio.transcription import stem_midi
from bridge.errors import BadRequest
from bridge.tools import listen_truth as truth_sets
from inference.transcription.notes import Note

NOTES = [Note(60, 0.0, 0.5, 100), Note(64, 0.5, 1.0, 80), Note(67, 0.25, 1.75, 64)]


def test_notes_tempo_and_metre_round_trip(tmp_path):
    path = tmp_path / "take.mid"
    write_midi(path, NOTES, MidiTrack(name="other", bpm=92.0, beats_per_bar=6, beat_unit=8))
    notes, bpm = read_midi_notes(path)
    assert bpm == pytest.approx(92.0, abs=1e-3)
    tick_s = 60 / 92 / TICKS_PER_QUARTER
    for found, sent in zip(notes, sorted(NOTES, key=lambda n: n.start_s), strict=True):
        assert (found.pitch, found.velocity) == (sent.pitch, sent.velocity)
        assert found.start_s == pytest.approx(sent.start_s, abs=tick_s)
        assert found.end_s == pytest.approx(sent.end_s, abs=tick_s)
    midi = mido.MidiFile(str(path))
    meta = {message.type: message for message in midi.tracks[0] if message.is_meta}
    assert meta["track_name"].name == "other"
    assert (meta["time_signature"].numerator, meta["time_signature"].denominator) == (6, 8)
    assert midi.type == 0 and midi.ticks_per_beat == TICKS_PER_QUARTER


def test_drums_are_on_channel_ten(tmp_path):
    data = midi_bytes([Note(36, 0.0, 0.06, 110)], MidiTrack(name="drums", bpm=120.0, drums=True))
    path = tmp_path / "drums.mid"
    path.write_bytes(data)
    channels = {m.channel for m in mido.MidiFile(str(path)).tracks[0] if m.type in ("note_on", "note_off")}
    assert channels == {9}


def test_quantise_snaps_to_the_grid_from_a_downbeat():
    step = 60 / 120 / 4  # 1/16 at 120 BPM
    origin = 0.31
    jittered = [Note(60, origin + 4 * step + 0.02, origin + 6 * step - 0.01, 90),
                Note(62, origin + 7 * step - 0.03, origin + 7 * step + 0.01, 90)]
    snapped = quantize(jittered, bpm=120.0, division=16, origin_s=origin)
    assert snapped[0].start_s == pytest.approx(origin + 4 * step)
    assert snapped[0].end_s == pytest.approx(origin + 6 * step)
    assert snapped[1].end_s == pytest.approx(origin + 8 * step)  # at least one step long
    half = quantize(jittered, bpm=120.0, division=16, origin_s=origin, strength=0.5)
    assert half[0].start_s == pytest.approx(origin + 4 * step + 0.01)
    twice = [Note(60, 1.0, 1.2, 90), Note(60, 1.01, 1.5, 70)]  # one step: one note, the longer
    assert [(n.start_s, n.end_s) for n in quantize(twice, bpm=120.0)] == [(1.0, 1.5)]
    with pytest.raises(BadRequest, match="1/16"):
        quantize(jittered, bpm=120.0, division=5)


def test_a_midi_file_takes_its_stem_s_daw_name():
    assert daw_file_name("job-1", "bass", bars=8, bpm=92, key="F# minor", suffix=".mid") == \
        "job-1_bass_8bars_92bpm_F#min.mid"
    assert daw_file_name("job-1", "bass", bars=8, bpm=92) == "job-1_bass_8bars_92bpm.wav"


def test_a_bass_stem_s_midi_at_the_session_tempo(tmp_path):
    truth = truth_sets.bass_line(seed=2, count=12, bpm=96.0)
    context = MusicalContext(bpm=96.0, key="C major", sample_rate=44100)
    result = stem_midi(truth.audio, truth.sample_rate, "bass", context=context)
    path = tmp_path / "bass.mid"
    path.write_bytes(result.data)
    notes, bpm = read_midi_notes(path)
    assert bpm == pytest.approx(96.0, abs=1e-3)
    f1 = truth_sets.note_f1([(n.pitch, n.start_s) for n in notes], [(n.pitch, n.start_s) for n in truth.notes])
    assert f1 >= 0.85
    quantised = stem_midi(truth.audio, truth.sample_rate, "bass", context=context, grid=16)
    step = 60 / 96 / 4
    assert all(abs(n.start_s / step - round(n.start_s / step)) < 1e-6 for n in quantised.notes)
    with pytest.raises(BadRequest, match="no MIDI for a stem"):
        stem_midi(truth.audio, truth.sample_rate, "cowbell", context=context)
