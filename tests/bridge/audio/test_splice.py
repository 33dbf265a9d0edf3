"""splice_range: the clip outside the range is untouched, the seams are equal-power crossfades inside it."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.audio.splice import match_level, splice_range
from bridge.errors import BadRequest


def sine(freq_hz: float, frames: int, rate: int = 48_000) -> np.ndarray:
    tone = 0.5 * np.sin(2 * np.pi * freq_hz * np.arange(frames) / rate).astype(np.float32)
    return np.stack([tone, tone])


@pytest.mark.parametrize("fade", [0, 1, 480, 10_000])
def test_outside_the_range_is_the_original_sample_for_sample(fade):
    original, replacement = sine(220, 48_000), sine(330, 48_000)
    out = splice_range(original, replacement, 12_000, 30_000, crossfade_frames=fade)
    assert np.array_equal(out[:, :12_000], original[:, :12_000])
    assert np.array_equal(out[:, 30_000:], original[:, 30_000:])
    fade = min(fade, 9_000)
    assert np.array_equal(out[:, 12_000 + fade:30_000 - fade], replacement[:, 12_000 + fade:30_000 - fade])


def test_the_seams_are_equal_power_crossfades():
    ones, zeros = np.ones((1, 1000), np.float32), np.zeros((1, 1000), np.float32)
    up = splice_range(zeros, ones, 100, 900, crossfade_frames=100)[0, 100:200]  # the replacement fades in
    down = splice_range(ones, zeros, 100, 900, crossfade_frames=100)[0, 100:200]  # the original fades out
    assert np.all(np.diff(up) > 0) and np.all(np.diff(down) < 0)
    np.testing.assert_allclose(up**2 + down**2, 1.0, rtol=1e-5)
    tail = splice_range(zeros, ones, 100, 900, crossfade_frames=100)[0, 800:900]
    assert np.all(np.diff(tail) < 0) and tail[-1] < 0.02  # back to the original at the range's end


def test_a_range_outside_the_clip_or_clips_of_two_shapes_are_refused():
    clip = sine(220, 1000)
    with pytest.raises(BadRequest, match="inside"):
        splice_range(clip, clip, 500, 1200, crossfade_frames=10)
    with pytest.raises(BadRequest, match="shape"):
        splice_range(clip, clip[:, :900], 0, 100, crossfade_frames=10)


def test_match_level_brings_the_new_part_to_the_clip_level():
    quiet, loud = sine(220, 4800) * 0.1, sine(330, 4800)
    matched = match_level(quiet, loud)
    np.testing.assert_allclose(np.sqrt(np.mean(matched**2)), np.sqrt(np.mean(quiet**2)), rtol=1e-4)
    assert match_level(np.zeros_like(quiet), loud) is loud  # a silent clip gives no level to match


def test_the_join_is_the_inputs_end_the_gap_to_the_downbeat_and_the_new_bars():
    """1.5 bars of a mono input at 24 kHz, a stereo continuation at 48 kHz: the join is the input's last 1.5 bars
    (all of it) resampled and doubled to stereo, half a bar of silence (the continuation starts on the next
    downbeat), then the continuation's first 2 bars; a control continuation that started at the input's end
    would have no gap."""
    from bridge.audio.context import MusicalContext
    from bridge.audio.splice import join_preview

    context = MusicalContext(bpm=120.0, sample_rate=48000)  # a bar is 2 s
    bar = context.frames_for_bars(1)
    source = np.full((1, int(1.5 * bar / 2)), 0.5, np.float32)  # 1.5 bars at 24 kHz
    continuation = np.full((2, 3 * bar), -0.25, np.float32)
    joined = join_preview(source, 24000, continuation, context)
    assert joined.shape == (2, int(1.5 * bar) + bar // 2 + 2 * bar)
    assert np.allclose(joined[:, bar // 4:bar], 0.5, atol=1e-3)  # the input, away from the resampler's edges
    assert not joined[:, int(1.5 * bar):2 * bar].any()  # the gap to the downbeat
    assert np.array_equal(joined[:, 2 * bar:], continuation[:, :2 * bar])
    on_grid = join_preview(np.full((1, bar), 0.5, np.float32), 48000, continuation, context)
    assert on_grid.shape[1] == 3 * bar  # an input of whole bars: no gap
