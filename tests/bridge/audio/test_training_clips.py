"""Data preparation for style training (bridge/audio/training_clips.py) on signals of exact truth: clips cut at the
heard downbeats, silence and unreadable files skipped with their reasons, captions from text + tempo + key, and the
clear errors (an empty folder, nothing readable, under a minute of audio)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from bridge.audio.training_clips import MIN_TOTAL_S, bar_spans, caption_for, fixed_spans, prepare_clips
from bridge.errors import BadRequest, NotFound
from bridge.tools.listen_truth import drum_pattern

RATE = 32_000  # the tiny MusicGen's rate


def write(path, audio, rate):
    soundfile.write(str(path), np.asarray(audio).T, rate)
    return path


@pytest.fixture(scope="module")
def groove():
    """16 bars of 4/4 drums at 120 bpm (2 s bars) after a half-bar pickup: 34 s at 44.1 kHz."""
    return drum_pattern(120.0, "4/4", bars=16)


def test_clips_start_on_downbeats_and_skips_are_reported(tmp_path, groove):
    write(tmp_path / "01 groove.wav", groove.audio, groove.sample_rate)
    write(tmp_path / "02 silence.wav", np.zeros((1, 44100 * 6), np.float32), 44100)
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / ".DS_Store").write_bytes(b"\0" * 10)  # hidden: not even listed
    prepared = prepare_clips(tmp_path, sample_rate=RATE, channels=1, clip_s=5.0, text="dusty drums", min_total_s=20)
    used = prepared.files[0]
    assert used.cut == "downbeats" and abs(used.bpm - 120) < 1
    truth = np.array(groove.downbeats_s)
    for clip in prepared.clips:
        assert np.abs(truth - clip.start_s).min() < 0.03  # every clip starts on a heard "one"
        assert clip.frames / RATE == pytest.approx(4.0, abs=0.05)  # two whole 2 s bars fit in 5 s
        assert clip.caption.startswith("dusty drums, 120 bpm")
    assert len(prepared.clips) == 8
    assert [f.name for f in prepared.files] == ["01 groove.wav", "02 silence.wav", "notes.txt"]
    silence, text = prepared.files[1], prepared.files[2]
    assert "silent" in silence.skipped and "not readable as audio" in text.skipped
    report = prepared.report()
    assert "skipped notes.txt: not readable" in report and "before the first downbeat" in report
    assert prepared.to_json()["files"][0]["sha256"] and len(used.sha256) == 64


def test_no_tempo_cuts_fixed_lengths(tmp_path):
    noise = np.random.default_rng(0).standard_normal((2, RATE * 12)).astype(np.float32) * 0.1
    write(tmp_path / "wash.flac", noise, RATE)
    prepared = prepare_clips(tmp_path, sample_rate=RATE, channels=1, clip_s=5.0, text="wash", min_total_s=10)
    assert prepared.files[0].cut == "fixed"
    assert [round(c.start_s, 3) for c in prepared.clips] == [0.0, 5.0]  # the 2 s tail is under half a clip
    assert prepared.clips[0].audio.shape == (1, RATE * 5)  # stereo mapped to the model's mono
    assert "10.0-12.0 s: shorter than 2.5 s" in prepared.report()


def test_resampled_to_the_model_rate(tmp_path):
    write(tmp_path / "a.wav", np.random.default_rng(1).standard_normal((1, 48000 * 6)).astype(np.float32) * .1, 48000)
    prepared = prepare_clips(tmp_path, sample_rate=RATE, channels=2, clip_s=3.0, min_total_s=5)
    assert all(c.audio.shape == (2, RATE * 3) for c in prepared.clips)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(BadRequest, match="holds no files"):
        prepare_clips(tmp_path, sample_rate=RATE, channels=1, clip_s=5.0)
    with pytest.raises(NotFound, match="no such folder"):
        prepare_clips(tmp_path / "nope", sample_rate=RATE, channels=1, clip_s=5.0)


def test_nothing_readable_names_every_file(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF garbage")
    (tmp_path / "b.mp3").write_text("hello")
    with pytest.raises(BadRequest, match=r"none of the 2 files(.|\n)*a.wav: not readable(.|\n)*b.mp3: not readable"):
        prepare_clips(tmp_path, sample_rate=RATE, channels=1, clip_s=5.0)


def test_under_a_minute_is_refused_and_a_minute_is_not(tmp_path):
    tone = (0.2 * np.sin(2 * np.pi * 220 * np.arange(RATE * 40) / RATE)).astype(np.float32)[None]
    write(tmp_path / "short.wav", tone, RATE)
    with pytest.raises(BadRequest, match=f"only 40.0 s of usable audio.*at least {MIN_TOTAL_S:.0f} s"):
        prepare_clips(tmp_path, sample_rate=RATE, channels=1, clip_s=10.0)
    write(tmp_path / "more.wav", tone, RATE)  # the control: 80 s passes
    assert prepare_clips(tmp_path, sample_rate=RATE, channels=1, clip_s=10.0).used_s == pytest.approx(80.0)


def test_spans_and_captions():
    assert bar_spans((0.5,), 2.0, 9.0, 4.5) == [(0.5, 4.5), (4.5, 8.5), (8.5, 9.0)]
    assert bar_spans((0.0,), 6.0, 20.0, 4.0) == []  # a bar longer than a clip: fixed lengths instead
    assert fixed_spans(7.0, 3.0) == [(0.0, 3.0), (3.0, 6.0), (6.0, 7.0)]
    assert caption_for(" lofi keys ", 91.6, "A minor") == "lofi keys, 92 bpm, A minor"
    assert caption_for("", 0.0, "") == ""
