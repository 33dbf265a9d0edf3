"""bridge/audio/prompts.py: an input file as a model or a session takes it, in one call.

Synthetic files (a sine per channel), checked against the steps done by hand: read, tail, resample, map, fit.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.files import read_audio
from bridge.audio.prompts import fit_frames, load_prompt
from bridge.audio.render import map_channels, resample
from bridge.errors import NotFound


def write_clip(path, *, seconds: float, rate: int, channels: int):
    t = np.arange(int(seconds * rate)) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)
    sf.write(path, audio.T, rate, subtype="FLOAT")
    return audio


@pytest.mark.parametrize("channels_in, channels_out", [(1, 2), (2, 1), (2, 2), (6, 2), (2, None)])
@pytest.mark.parametrize("rate_in, rate_out", [(44100, 32000), (48000, 48000)])
def test_a_prompt_is_the_files_tail_at_the_asked_rate_and_channels(tmp_path, channels_in, channels_out, rate_in,
                                                                   rate_out):
    path = tmp_path / "clip.wav"
    write_clip(path, seconds=3.0, rate=rate_in, channels=channels_in)
    prompt = load_prompt(path, sample_rate=rate_out, channels=channels_out, tail_s=1.5)
    audio, rate = read_audio(path)
    expected = resample(audio[:, -int(round(1.5 * rate)):], rate, rate_out)
    expected = expected if channels_out is None else map_channels(expected, channels_out)
    np.testing.assert_allclose(prompt.audio, expected, atol=1e-6)
    assert prompt.audio.dtype == np.float32 and prompt.audio.flags.c_contiguous
    assert prompt.audio.shape[0] == (channels_in if channels_out is None else channels_out)
    assert prompt.seconds == pytest.approx(1.5, abs=2 / rate_out)
    assert (prompt.source_frames, prompt.source_rate) == (3 * rate_in, rate_in)  # the whole file, not the tail


def test_the_whole_files_length_converts_to_any_rate(tmp_path):
    path = tmp_path / "clip.wav"
    write_clip(path, seconds=1.25, rate=44100, channels=1)
    prompt = load_prompt(path, sample_rate=32000, tail_s=0.5)
    assert prompt.source_frames_at(48000) == 60000 and prompt.source_frames_at(44100) == 55125


def test_a_tail_shorter_than_a_frame_still_keeps_one(tmp_path):
    path = tmp_path / "clip.wav"
    write_clip(path, seconds=0.5, rate=8000, channels=1)
    assert load_prompt(path, sample_rate=8000, tail_s=0.0).audio.shape == (1, 1)


@pytest.mark.parametrize("frames", [100, 24000, 30000])
def test_frames_cut_or_pad_to_the_exact_length(tmp_path, frames):
    path = tmp_path / "clip.wav"
    audio = write_clip(path, seconds=0.5, rate=48000, channels=2)
    prompt = load_prompt(path, sample_rate=48000, channels=2, frames=frames)
    assert prompt.audio.shape == (2, frames)
    kept = min(frames, audio.shape[1])
    np.testing.assert_array_equal(prompt.audio[:, :kept], audio[:, :kept])
    assert not prompt.audio[:, kept:].any()


def test_fit_frames_is_a_cut_or_a_zero_pad():
    audio = np.ones((2, 10), dtype=np.float32)
    assert fit_frames(audio, 4).shape == (2, 4) and fit_frames(audio, 4).flags.c_contiguous
    padded = fit_frames(audio, 12)
    assert padded.dtype == np.float32 and padded[:, 10:].sum() == 0 and padded[:, :10].all()


def test_a_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        load_prompt(tmp_path / "gone.wav", sample_rate=32000)
