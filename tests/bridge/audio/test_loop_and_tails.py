"""Loop mode (equal-power fold of the tail into the head), effect tails, hard cuts, continuation lead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bridge.audio.context import MusicalContext
from bridge.audio.effects import EffectSpec
from bridge.audio.presets import Preset
from bridge.audio.render import LOOP_CROSSFADE_S, fold_into_head_, render_mix, shape_length

MODEL_RATE = 32000


def sine(freq_hz: float, rate: int, seconds: float, amplitude: float = 0.4, phase: float = 0.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t + phase))[None].astype(np.float32)


def plain(**changes) -> Preset:
    return Preset(name="plain", path=Path("plain.toml"), **changes)


def seam_jump(audio: np.ndarray) -> float:
    """|last frame -> first frame| step when the file loops."""
    return float(np.abs(audio[:, 0] - audio[:, -1]).max())


def max_step(audio: np.ndarray) -> float:
    return float(np.abs(np.diff(audio, axis=1)).max())


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("bpm, beats_per_bar, beat_unit, bars", [(120.0, 4, 4, 1), (97.0, 3, 4, 2), (174.0, 7, 8, 1)])
def test_loop_seam_is_as_smooth_as_the_signal(rate, bpm, beats_per_bar, beat_unit, bars):
    context = MusicalContext(bpm=bpm, beats_per_bar=beats_per_bar, beat_unit=beat_unit, sample_rate=rate)
    frames = context.frames_for_bars(bars)
    source = sine(331.3, MODEL_RATE, context.seconds_for_bars(bars) + LOOP_CROSSFADE_S + 0.05, phase=np.pi / 2)
    looped = render_mix(source, MODEL_RATE, frames=frames, sample_rate=rate, preset=plain(), loop=True).audio
    assert looped.shape == (2, frames)
    assert seam_jump(looped) <= 1.2 * max_step(looped)
    cut = render_mix(source, MODEL_RATE, frames=frames, sample_rate=rate, preset=plain()).audio
    assert seam_jump(cut) > 5 * max_step(looped)  # without loop mode the seam clicks (the test can tell)


def test_equal_power_crossfade_keeps_the_level_of_uncorrelated_material():
    rng = np.random.default_rng(0)
    body, rest = rng.standard_normal((1, 48000)), rng.standard_normal((1, 4800))
    original = body.copy()
    fold_into_head_(body, rest, 4800)
    assert np.mean(body[:, :4800] ** 2) == pytest.approx(1.0, rel=0.1)
    assert np.array_equal(body[:, 4800:], original[:, 4800:])


def test_fold_wraps_a_tail_longer_than_the_body():
    body = np.zeros((1, 10), np.float32)
    fold_into_head_(body, np.ones((1, 25), np.float32), 0)
    assert body.tolist() == [[3, 3, 3, 3, 3, 2, 2, 2, 2, 2]]


ECHO = (EffectSpec("Delay", {"delay_seconds": 0.3, "feedback": 0.3, "mix": 0.5}),)


def test_one_shot_keeps_the_effect_tail_beside_the_file():
    rate, frames = 48000, 48000
    audio = sine(440.0, rate, 1.0)
    body, tail = shape_length(audio, rate, frames=frames, chain=ECHO)
    assert body.shape == (1, frames) and tail is not None and tail.shape[1] > round(0.3 * rate)
    whole, _ = shape_length(np.pad(audio, ((0, 0), (0, 5 * rate))), rate, frames=6 * rate, chain=ECHO, hard_cut=True)
    joined = np.concatenate([body, tail], axis=1)
    n = joined.shape[1] - round(0.006 * rate)  # all but the tail's own 5 ms fade
    assert np.allclose(joined[:, :n], whole[:, :n], atol=1e-5)


def test_hard_cut_drops_the_tail_with_a_fade():
    body, tail = shape_length(sine(440.0, 48000, 1.0), 48000, frames=48000, chain=ECHO, hard_cut=True)
    assert tail is None and body[0, -1] == pytest.approx(0.0, abs=1e-6)


def test_loop_folds_the_effect_tail_into_the_head():
    rate = 48000
    click = np.zeros((1, rate), np.float32)
    click[0, rate - 2400] = 1.0  # 50 ms before the end; its echo lands 250 ms into the next pass
    echo = (EffectSpec("Delay", {"delay_seconds": 0.3, "feedback": 0.0, "mix": 0.5}),)
    body, tail = shape_length(click, rate, frames=rate, chain=echo, loop=True)
    assert tail is None
    echo_at = np.argmax(np.abs(body[0, : rate // 2]))
    assert abs(echo_at - (0.3 * rate - 2400)) < 10 and body[0, echo_at] > 0.2
    cut, _ = shape_length(click, rate, frames=rate, chain=echo, loop=True, hard_cut=True)
    assert np.abs(cut[0, : rate // 2]).max() < 1e-3  # hard cut in loop mode: no tail to fold


def test_render_reports_a_normalised_tail():
    rate = 48000
    rendered = render_mix(sine(440.0, MODEL_RATE, 1.0), MODEL_RATE, frames=rate, sample_rate=rate,
                          preset=plain(master=ECHO))
    assert rendered.tail is not None and rendered.audio.shape == (2, rate)
    assert np.abs(rendered.tail).max() <= 10 ** (-1.0 / 20) + 1e-3
    looped = render_mix(sine(440.0, MODEL_RATE, 1.2), MODEL_RATE, frames=rate, sample_rate=rate,
                        preset=plain(master=ECHO), loop=True)
    assert looped.tail is None


def test_lead_frames_are_dropped_from_the_start():
    rate = 48000
    ramp = np.linspace(0, 0.5, 2 * rate, dtype=np.float32)[None]
    out = render_mix(ramp, rate, frames=rate, sample_rate=rate, preset=plain(target_lufs=-40.0),
                     lead_frames=rate // 2, channels=1).audio
    gain = out[0, 100] / ramp[0, rate // 2 + 100]
    assert np.allclose(out[0, 100:rate - 1000], gain * ramp[0, rate // 2 + 100: rate // 2 + rate - 1000], rtol=1e-3)
