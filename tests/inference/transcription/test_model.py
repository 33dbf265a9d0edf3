"""Basic Pitch on onnxruntime against notes of exact truth (bridge/tools/listen_truth.py): note F1 at 50 ms onset
tolerance, with controls that must fail (a semitone off, 80 ms late); frame times across windows; the model
file's checks. Accuracy over the whole set is `continuo bench listen` (docs/benchmarks.md)."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.tools import listen_truth as truth_sets
from inference.errors import Cancelled, ModelLoadError
from inference.transcription import model as bp_model
from inference.transcription.model import FRAME_S, KEPT_FRAMES, BasicPitch, frame_times, load_session
from inference.transcription.notes import Note, NoteSettings, drop_overtones


@pytest.fixture(scope="module")
def basic_pitch() -> BasicPitch:
    return BasicPitch(threads=2)


def pairs(notes) -> list[tuple[int, float]]:
    return [(note.pitch, note.start_s) for note in notes]


@pytest.mark.parametrize(("build", "floor"), [
    (lambda: truth_sets.melody(seed=0, count=16), 0.9),
    (lambda: truth_sets.bass_line(seed=1, count=16), 0.85),
    (lambda: truth_sets.chord_progression(9, "minor", repeats=1), 0.8),
])
def test_notes_of_melodies_bass_lines_and_chords(basic_pitch, build, floor):
    truth = build()
    found = basic_pitch.transcribe(truth.audio, truth.sample_rate)
    assert truth_sets.note_f1(pairs(found), pairs(truth.notes), 0.05) >= floor
    onsets = [min((f.start_s - t.start_s for f in found if f.pitch == t.pitch and abs(f.start_s - t.start_s) < 0.05),
                  key=abs, default=None) for t in truth.notes]
    offsets = [offset for offset in onsets if offset is not None]
    assert abs(float(np.mean(offsets))) < 0.015  # frame times carry no bias


def test_the_note_check_fails_a_semitone_off_or_late(basic_pitch):
    """Controls: the same notes a semitone up, or 80 ms late, are not the melody."""
    truth = truth_sets.melody(seed=2, count=16)
    found = pairs(basic_pitch.transcribe(truth.audio, truth.sample_rate))
    assert truth_sets.note_f1(found, pairs(truth.notes), 0.05) >= 0.9
    assert truth_sets.note_f1([(p + 1, t) for p, t in found], pairs(truth.notes), 0.05) < 0.2
    assert truth_sets.note_f1([(p, t + 0.08) for p, t in found], pairs(truth.notes), 0.05) < 0.2


def test_overtones_taken_for_notes_are_dropped(basic_pitch):
    """Bright bass tones: without the overtone rule basic-pitch adds notes an octave and a twelfth up."""
    truth = truth_sets.bass_line(seed=3, count=16)
    raw = basic_pitch.transcribe(truth.audio, truth.sample_rate, NoteSettings(overtone_ratio=0.0))
    kept = basic_pitch.transcribe(truth.audio, truth.sample_rate)
    f1_raw = truth_sets.note_f1(pairs(raw), pairs(truth.notes), 0.05)
    f1_kept = truth_sets.note_f1(pairs(kept), pairs(truth.notes), 0.05)
    assert len(kept) < len(raw) and f1_kept > f1_raw + 0.1


def test_drop_overtones_keeps_strong_doublings_and_weak_notes_elsewhere():
    bass = Note(36, 0.0, 1.0, 100)
    assert drop_overtones([bass, Note(48, 0.02, 0.5, 40)], 0.7) == [bass]  # a weak octave: a partial
    doubled = [bass, Note(48, 0.02, 0.5, 90)]  # a strong octave: played
    assert drop_overtones(doubled, 0.7) == doubled
    apart = [bass, Note(50, 0.1, 0.5, 40), Note(48, 1.2, 1.5, 40)]  # not a partial's interval; after it
    assert drop_overtones(apart, 0.7) == apart


def test_pitch_range_and_silence(basic_pitch):
    truth = truth_sets.melody(seed=4, count=12, low=60, high=72)
    high_only = basic_pitch.transcribe(truth.audio, truth.sample_rate, NoteSettings(min_pitch=67))
    assert high_only and all(note.pitch >= 67 for note in high_only)
    assert basic_pitch.transcribe(np.zeros((2, 44100 * 3), np.float32), 44100) == []


def test_frame_times_are_continuous_across_windows():
    times = frame_times(3 * KEPT_FRAMES)
    steps = np.diff(times)
    assert np.all(steps > 0)
    assert np.allclose(steps[steps > 0.9 * FRAME_S], FRAME_S)
    assert steps.min() == pytest.approx(FRAME_S - 188 / 22050)  # a window boundary: 188 samples fewer


def test_posteriors_cover_the_clip_and_can_be_cancelled(basic_pitch):
    audio = truth_sets.melody(seed=5, count=30).audio
    seen = []
    posteriors = basic_pitch.posteriors(audio, 44100, on_progress=seen.append)
    assert posteriors.frames.shape[1] == 88 and posteriors.times_s[-1] == pytest.approx(audio.shape[1] / 44100,
                                                                                          abs=0.05)
    assert seen[-1] == 1.0
    with pytest.raises(Cancelled):
        basic_pitch.posteriors(audio, 44100, should_cancel=lambda: True)


def test_a_missing_broken_or_altered_model_file_says_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="missing: reinstall"):
        load_session(tmp_path / "nmp.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_session(broken)
    altered = tmp_path / "altered.onnx"
    data = bytearray(bp_model.MODEL_PATH.read_bytes())
    data[-1] ^= 1
    altered.write_bytes(bytes(data))
    monkeypatch.setattr(bp_model, "MODEL_PATH", altered)
    with pytest.raises(ModelLoadError, match="not the one continuo ships"):
        load_session(altered)


def test_the_vendored_model_is_the_pinned_one():
    import hashlib

    assert hashlib.sha256(bp_model.MODEL_PATH.read_bytes()).hexdigest() == bp_model.MODEL_SHA256
    folder = bp_model.MODEL_PATH.parent
    assert "Apache License" in (folder / "LICENSE").read_text() and "Spotify" in (folder / "NOTICE").read_text()


def test_a_note_refuses_nonsense():
    with pytest.raises(ValueError):
        Note(60, 1.0, 0.5, 100)
    with pytest.raises(ValueError):
        Note(60, 0.0, 0.5, 0)
