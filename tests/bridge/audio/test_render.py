import time
from pathlib import Path

import numpy as np
import pytest

from bridge.audio.context import MusicalContext
from bridge.audio.effects import EffectSpec
from bridge.audio.loudness import measure_lufs, true_peak_db
from bridge.audio.presets import Preset, builtin_presets_dir, load_presets
from bridge.audio.render import FADE_OUT_S, RenderedAudio, map_channels, render_mix, resample
from bridge.errors import AudioError, BadRequest

MODEL_RATE = 32000


def sine(freq_hz, sample_rate, seconds, channels=1, amplitude=0.5):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return np.tile(amplitude * np.sin(2 * np.pi * freq_hz * t), (channels, 1)).astype(np.float32)


def noise(sample_rate, seconds, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((channels, round(seconds * sample_rate)))).astype(np.float32)


def rms_db(audio):
    return 10 * np.log10(np.mean(np.square(audio, dtype=np.float64)))


def plain(**changes) -> Preset:
    return Preset(name="plain", path=Path("plain.toml"), **changes)


GENTLE = plain(
    master=(
        EffectSpec("HighpassFilter", {"cutoff_frequency_hz": 30.0}),
        EffectSpec("Compressor", {"threshold_db": -18.0, "ratio": 2.0}),
    )
)


# --- resampling ---------------------------------------------------------------


@pytest.mark.parametrize("target_rate", [44100, 48000, 96000])
@pytest.mark.parametrize("freq_hz", [440.0, 3000.0, 12000.0])
@pytest.mark.parametrize("channels", [1, 2])
def test_resample_keeps_frequency_and_level(target_rate, freq_hz, channels):
    audio = sine(freq_hz, MODEL_RATE, 1.0, channels)
    out = resample(audio, MODEL_RATE, target_rate)
    assert out.shape[0] == channels and out.dtype == np.float32
    assert abs(out.shape[1] - audio.shape[1] * target_rate / MODEL_RATE) <= 1
    middle = out[:, target_rate // 10 : -target_rate // 10]
    spectrum = np.abs(np.fft.rfft(middle[0] * np.hanning(middle.shape[1])))
    bin_hz = target_rate / middle.shape[1]
    assert abs(np.argmax(spectrum) * bin_hz - freq_hz) <= bin_hz
    reference = audio[:, MODEL_RATE // 10 : -MODEL_RATE // 10]
    assert rms_db(middle) == pytest.approx(rms_db(reference), abs=0.1)


def test_resample_same_rate_copies():
    audio = sine(440.0, 48000, 0.1)
    out = resample(audio, 48000, 48000)
    assert np.array_equal(out, audio) and out is not audio


def test_resample_aligns_in_time():
    # soxr compensates its delay: a click stays where it was.
    audio = np.zeros((1, MODEL_RATE), np.float32)
    audio[0, 16000] = 1.0
    out = resample(audio, MODEL_RATE, 48000)
    assert abs(int(np.argmax(np.abs(out[0]))) - 24000) <= 1


@pytest.mark.parametrize("rates", [(0, 48000), (32000, -1), (32000, 48000.5)])
def test_resample_rejects_bad_rates(rates):
    with pytest.raises(BadRequest, match="rate"):
        resample(sine(440.0, 32000, 0.1), *rates)


# --- render_mix ---------------------------------------------------------------

LENGTHS = [
    # (input seconds at 32 kHz, bars at 120 BPM 4/4): shorter and longer than the input
    (4.0, 1),  # cut: input longer
    (4.0, 2),  # exact: 2 bars = 4 s
    (2.0, 2),  # padded: input shorter
    (3.3, 1.5),
    (1.0, 4),
]


@pytest.mark.parametrize("seconds, bars", LENGTHS)
@pytest.mark.parametrize("sample_rate", [44100, 48000])
@pytest.mark.parametrize("in_channels, channels", [(1, 2), (2, 2), (2, 1), (1, 1)])
def test_render_is_bar_exact_and_mastered(seconds, bars, sample_rate, in_channels, channels):
    frames = MusicalContext(sample_rate=sample_rate).frames_for_bars(bars)
    audio = noise(MODEL_RATE, seconds, in_channels)
    rendered = render_mix(audio, MODEL_RATE, frames=frames, sample_rate=sample_rate, preset=GENTLE, channels=channels)
    assert isinstance(rendered, RenderedAudio)
    assert rendered.audio.shape == (channels, frames) and rendered.audio.dtype == np.float32
    assert (rendered.frames, rendered.channels, rendered.sample_rate) == (frames, channels, sample_rate)
    assert np.isfinite(rendered.audio).all()
    assert rendered.lufs == pytest.approx(GENTLE.target_lufs, abs=1.0)
    assert rendered.peak_db <= GENTLE.true_peak_db + 0.1
    assert rendered.lufs == pytest.approx(measure_lufs(rendered.audio, sample_rate), abs=1e-9)
    assert rendered.peak_db == pytest.approx(true_peak_db(rendered.audio, sample_rate), abs=1e-9)


@pytest.mark.parametrize("target_lufs, ceiling", [(-14.0, -1.0), (-9.0, -1.0), (-20.0, -3.0)])
@pytest.mark.parametrize("signal", ["sine", "noise"])
def test_render_hits_loudness_targets(target_lufs, ceiling, signal):
    audio = sine(220.0, MODEL_RATE, 3.0) if signal == "sine" else noise(MODEL_RATE, 3.0)
    preset = plain(target_lufs=target_lufs, true_peak_db=ceiling)
    rendered = render_mix(audio, MODEL_RATE, frames=48000 * 3, sample_rate=48000, preset=preset)
    assert rendered.lufs == pytest.approx(target_lufs, abs=1.0)
    assert rendered.peak_db <= ceiling + 0.1


def test_cut_gets_a_fade_out_and_padding_is_silent():
    sample_rate = 48000
    audio = sine(440.0, MODEL_RATE, 2.0, amplitude=0.3)
    fade = round(FADE_OUT_S * sample_rate)
    cut = render_mix(audio, MODEL_RATE, frames=sample_rate, sample_rate=sample_rate, preset=plain()).audio
    assert cut[:, -1] == pytest.approx(0.0, abs=1e-6)
    assert np.abs(cut[:, -fade // 4 :]).max() < np.abs(cut[:, : sample_rate // 2]).max() * 0.2
    padded = render_mix(audio, MODEL_RATE, frames=3 * sample_rate, sample_rate=sample_rate, preset=plain()).audio
    assert np.abs(padded[:, 2 * sample_rate + 100 :]).max() < 1e-4  # silence after the input ends
    assert np.abs(padded[:, 2 * sample_rate - fade : 2 * sample_rate - 100]).max() > 0.1  # no fade there


def test_effect_tails_inside_the_bar_range_are_kept():
    sample_rate = 48000
    audio = sine(440.0, MODEL_RATE, 0.5, amplitude=0.3)
    echo = plain(master=(EffectSpec("Delay", {"delay_seconds": 0.6, "feedback": 0.0, "mix": 0.5}),))
    rendered = render_mix(audio, MODEL_RATE, frames=2 * sample_rate, sample_rate=sample_rate, preset=echo)
    echo_part = rendered.audio[:, round(0.65 * sample_rate) : round(1.05 * sample_rate)]
    assert np.abs(echo_part).max() > 0.05


@pytest.mark.parametrize("name", ["default", "lofi_tape", "club_master"])
def test_shipped_presets_render(name):
    preset = load_presets([builtin_presets_dir()])[name]
    audio = sine(220.0, MODEL_RATE, 2.0) + noise(MODEL_RATE, 2.0)
    rendered = render_mix(audio, MODEL_RATE, frames=96000, sample_rate=48000, preset=preset)
    assert rendered.audio.shape == (2, 96000)
    assert rendered.lufs == pytest.approx(preset.target_lufs, abs=1.0)
    assert rendered.peak_db <= preset.true_peak_db + 0.1


def test_one_dimensional_input_is_mono():
    rendered = render_mix(sine(440.0, MODEL_RATE, 1.0)[0], MODEL_RATE, frames=48000, sample_rate=48000, preset=plain())
    assert rendered.audio.shape == (2, 48000)
    assert np.array_equal(rendered.audio[0], rendered.audio[1])


def test_zero_frames():
    rendered = render_mix(sine(440.0, MODEL_RATE, 1.0), MODEL_RATE, frames=0, sample_rate=48000, preset=GENTLE)
    assert rendered.audio.shape == (2, 0)


def test_map_channels():
    left, right = sine(440.0, 48000, 0.1)[0], sine(660.0, 48000, 0.1)[0]
    stereo = np.stack([left, right])
    assert np.allclose(map_channels(stereo, 1)[0], (left + right) / 2, rtol=1e-6)
    assert np.array_equal(map_channels(left[None], 2), np.stack([left, left]))
    assert map_channels(stereo, 2) is stereo
    surround = np.stack([left, right, left * 0.5])
    folded = map_channels(surround, 2)
    assert folded.shape == (2, left.size)
    assert np.allclose(folded[0], folded[1]) and np.allclose(folded[0], surround.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"frames": -1}, "frames"),
        ({"frames": 10.0}, "frames"),
        ({"channels": 3}, "channels"),
        ({"channels": True}, "channels"),
        ({"sample_rate": 0}, "target_rate"),
    ],
)
def test_render_rejects_bad_arguments(kwargs, fragment):
    arguments = {"audio": sine(440.0, MODEL_RATE, 0.1), "frames": 4800, "sample_rate": 48000, **kwargs}
    audio = arguments.pop("audio")
    with pytest.raises(BadRequest, match=fragment):
        render_mix(audio, MODEL_RATE, preset=GENTLE, **arguments)


@pytest.mark.parametrize("audio, fragment", [(np.full((1, 100), np.nan, np.float32), "non-finite"),
                                             (np.zeros((1, 100), np.int16), "floating"),
                                             (np.zeros((0, 100), np.float32), "shape")])
def test_broken_audio_is_an_audio_error_not_a_bad_request(audio, fragment):
    with pytest.raises(AudioError, match=fragment):
        render_mix(audio, MODEL_RATE, frames=4800, sample_rate=48000, preset=GENTLE)


def test_a_plugin_that_throws_mid_render_is_an_audio_error(monkeypatch):
    import bridge.audio.effects

    class ThrowingBoard:
        def __len__(self) -> int:
            return 1

        def process(self, *args, **kwargs):
            raise RuntimeError("plugin crashed in processBlock")

    monkeypatch.setattr(bridge.audio.effects, "build_pedalboard", lambda chain, sample_rate=None: ThrowingBoard())
    with pytest.raises(AudioError, match="effect chain failed while processing: plugin crashed") as caught:
        render_mix(sine(440.0, MODEL_RATE, 0.1), MODEL_RATE, frames=4800, sample_rate=48000, preset=GENTLE)
    assert caught.value.code == "audio_error"


@pytest.mark.serial  # timed on the wall clock: beside another test it missed 2.0 s (2.16 s under -n 2)
def test_render_16_s_is_fast_enough():
    preset = load_presets([builtin_presets_dir()])["default"]
    audio = sine(220.0, MODEL_RATE, 16.0) + noise(MODEL_RATE, 16.0)
    frames = MusicalContext().frames_for_bars(8)
    best = np.inf
    for _ in range(2):
        start = time.perf_counter()
        rendered = render_mix(audio, MODEL_RATE, frames=frames, sample_rate=48000, preset=preset)
        best = min(best, time.perf_counter() - start)
    assert rendered.audio.shape == (2, 768000)
    assert best < 2.0
