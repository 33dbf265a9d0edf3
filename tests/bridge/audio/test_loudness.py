import time

import numpy as np
import pytest

from bridge.audio.loudness import (
    LUFS_FLOOR,
    PEAK_FLOOR_DB,
    limiter_gain_db,
    measure_lufs,
    normalize_loudness,
    true_peak_db,
)
from bridge.errors import AudioError

RATES = [44100, 48000, 96000]


def sine(freq_hz, sample_rate, seconds, channels=2, amplitude=0.5, phase=0.0):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = amplitude * np.sin(2 * np.pi * freq_hz * t + phase)
    return np.tile(wave, (channels, 1)).astype(np.float32)


def noise(sample_rate, seconds, channels=2, std=0.1, seed=0):
    rng = np.random.default_rng(seed)
    return (std * rng.standard_normal((channels, round(seconds * sample_rate)))).astype(np.float32)


def kicks(sample_rate, seconds, channels=2):
    """Decaying 55 Hz bursts twice a second: a high crest factor."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = np.sin(2 * np.pi * 55 * t) * np.exp(-(t % 0.5) * 12)
    return np.tile(wave, (channels, 1)).astype(np.float32)


SIGNALS = {"noise": noise, "sine": lambda sr, s, c: sine(997.0, sr, s, c), "kicks": kicks}


# --- measurement ---------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", RATES)
def test_full_scale_sine_reads_per_bs1770(sample_rate):
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS; in two, +0.0.
    mono = sine(997.0, sample_rate, 3.0, channels=1, amplitude=1.0)
    assert measure_lufs(mono, sample_rate) == pytest.approx(-3.01, abs=0.05)
    stereo = sine(997.0, sample_rate, 3.0, channels=2, amplitude=1.0)
    assert measure_lufs(stereo, sample_rate) == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("gain_db", [-6.0, -20.0])
def test_loudness_follows_gain(gain_db):
    audio = noise(48000, 2.0)
    change = measure_lufs(audio * np.float32(10 ** (gain_db / 20)), 48000) - measure_lufs(audio, 48000)
    assert change == pytest.approx(gain_db, abs=0.01)


@pytest.mark.parametrize("audio", [np.zeros((2, 48000), np.float32), noise(48000, 0.3), np.zeros((1, 0), np.float32)])
def test_floor_for_silence_and_short_audio(audio):
    assert measure_lufs(audio, 48000) == LUFS_FLOOR


def test_measure_rejects_bad_input():
    with pytest.raises(AudioError, match="channels"):
        measure_lufs(np.zeros((6, 48000), np.float32), 48000)
    with pytest.raises(AudioError, match="shape"):
        measure_lufs(np.zeros(48000, np.float32), 48000)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_true_peak_finds_inter_sample_peaks(sample_rate):
    # A sine at fs/4 sampled 45 degrees off its peaks: samples at -9.03 dB, true peak -6.02 dBTP.
    audio = sine(sample_rate / 4, sample_rate, 1.0, amplitude=0.5, phase=np.pi / 4)
    assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(-9.03, abs=0.01)
    assert true_peak_db(audio, sample_rate) == pytest.approx(-6.02, abs=0.2)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_true_peak_of_low_sine_is_its_amplitude(sample_rate, channels):
    audio = sine(100.0, sample_rate, 0.5, channels=channels, amplitude=0.25)
    assert true_peak_db(audio, sample_rate) == pytest.approx(20 * np.log10(0.25), abs=0.02)


def test_true_peak_floor_for_silence():
    assert true_peak_db(np.zeros((2, 100), np.float32), 48000) == PEAK_FLOOR_DB
    assert true_peak_db(np.zeros((2, 0), np.float32), 48000) == PEAK_FLOOR_DB


# --- normalisation ---------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SIGNALS))
@pytest.mark.parametrize("target_lufs", [-23.0, -14.0, -9.0])
@pytest.mark.parametrize("sample_rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_normalize_hits_target_under_ceiling(request, kind, target_lufs, sample_rate, channels):
    if (kind, target_lufs, channels) == ("kicks", -9.0, 1):  # strict: passing would mean the limiter changed
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="a bare mono kick at -9 LUFS / -1 dBTP needs more than the 12 dB of limiting allowed"))
    ceiling = -1.0
    audio = SIGNALS[kind](sample_rate, 3.0, channels)
    out = normalize_loudness(audio, sample_rate, target_lufs=target_lufs, true_peak_db=ceiling)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert measure_lufs(out, sample_rate) == pytest.approx(target_lufs, abs=1.0)
    assert true_peak_db(out, sample_rate) <= ceiling + 0.1


@pytest.mark.parametrize("ceiling", [-0.1, -1.0, -3.0, -6.0])
def test_ceiling_holds_when_target_is_unreachable(ceiling):
    audio = kicks(48000, 3.0) * np.float32(10 ** ((ceiling - 6) / 20))  # peaks 6 dB under the ceiling
    out = normalize_loudness(audio, 48000, target_lufs=-4.0, true_peak_db=ceiling)
    assert true_peak_db(out, 48000) <= ceiling + 0.1
    assert measure_lufs(out, 48000) > measure_lufs(audio, 48000) + 6  # limited, and louder for it


def test_quiet_material_is_not_limited():
    audio = sine(997.0, 48000, 2.0, amplitude=0.01)
    out = normalize_loudness(audio, 48000, target_lufs=-30.0, true_peak_db=-1.0)
    audible = np.abs(audio) > 1e-3
    gains = out[audible] / audio[audible]
    assert np.allclose(gains, gains[0], rtol=1e-4)  # one static gain, no limiting


def test_silence_and_short_audio_keep_their_level():
    silence = np.zeros((2, 48000), np.float32)
    assert np.array_equal(normalize_loudness(silence, 48000, target_lufs=-14, true_peak_db=-1), silence)
    short = sine(440.0, 48000, 0.2, amplitude=0.1)
    assert np.allclose(normalize_loudness(short, 48000, target_lufs=-14, true_peak_db=-1), short, rtol=1e-5)
    loud_short = sine(440.0, 48000, 0.2, amplitude=1.0)
    out = normalize_loudness(loud_short, 48000, target_lufs=-14, true_peak_db=-3)
    assert true_peak_db(out, 48000) <= -3 + 0.1


# --- the limiter ---------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [44100, 48000, 96000])
@pytest.mark.parametrize("lookahead_ms", [1.5, 2.5, 5.0])
def test_limiter_gain_meets_ceiling_and_moves_smoothly(sample_rate, lookahead_ms):
    rng = np.random.default_rng(1)
    envelope = np.abs(rng.standard_normal(sample_rate)) * 0.1
    envelope[sample_rate // 2 : sample_rate // 2 + 10] = 4.0  # a +12 dB spike
    ceiling_db = -1.0
    gain_db = limiter_gain_db(envelope, sample_rate, ceiling_db=ceiling_db, lookahead_ms=lookahead_ms)
    assert gain_db.shape == envelope.shape and (gain_db <= 1e-9).all()
    assert (envelope * 10 ** (gain_db / 20) <= 10 ** (ceiling_db / 20) * (1 + 1e-9)).all()
    # The linear gain moves at most (1 - its minimum) over half the lookahead per sample.
    gain = 10 ** (gain_db / 20)
    lookahead = round(lookahead_ms * sample_rate / 1000)
    assert np.abs(np.diff(gain)).max() <= (1 - gain.min()) / (lookahead // 2 + 1) * 1.001
    # ...and recovers: release is 100 ms per unit of gain, so 0.3 s after the spike it is done.
    assert gain_db[sample_rate // 2 + round(0.3 * sample_rate) :].min() > -1e-6


def test_limited_sine_does_not_click():
    # A 480 Hz sine jumping from -20 dBFS to 0 dBFS at a zero crossing: the output's
    # sample-to-sample step must stay within what a sine of the output's peak allows.
    sample_rate = 48000
    audio = sine(480.0, sample_rate, 2.0, amplitude=1.0)
    audio[:, :sample_rate] *= 0.1
    out = normalize_loudness(audio, sample_rate, target_lufs=-9.0, true_peak_db=-1.0)
    max_sine_step = np.abs(out).max() * 2 * np.pi * 480 / sample_rate
    assert np.abs(np.diff(out, axis=1)).max() <= max_sine_step * 1.05
    assert true_peak_db(out, sample_rate) <= -1.0 + 0.1


@pytest.mark.serial  # timed on the wall clock: beside another test it missed 1.0 s (1.27 s under -n 2)
def test_normalize_is_fast_enough():
    audio = noise(48000, 16.0, channels=2, std=0.3)
    best = np.inf
    for _ in range(2):
        start = time.perf_counter()
        normalize_loudness(audio, 48000, target_lufs=-9.0, true_peak_db=-1.0)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0


def test_waveform_peaks_of_hi_hats_are_not_flat_where_an_8_khz_decode_was():
    """Bright material (hi-hat-like bursts of noise above 8 kHz) at 48 kHz: the peaks measured at the full rate
    reach the bursts' level; the control, the same audio decoded at 8 kHz as the old page did, is a flat line."""
    from scipy.signal import butter, resample_poly, sosfilt

    from bridge.audio.loudness import PEAK_BUCKETS, waveform_peaks

    rate = 48000
    noise = np.random.default_rng(0).standard_normal(rate * 2)
    hats = sosfilt(butter(8, 8000, "highpass", fs=rate, output="sos"), noise)
    hats *= (np.arange(hats.size) % (rate // 4) < rate // 40)  # a 25 ms hat every quarter second
    hats = (0.5 * hats / np.abs(hats).max()).astype(np.float32)[None, :]
    peaks = np.frombuffer(waveform_peaks(np.vstack([hats, hats])), dtype=np.int8).reshape(PEAK_BUCKETS, 2)
    assert peaks[:, 1].max() >= 60 and peaks[:, 0].min() <= -60  # about 0.5 of full scale, both ways
    assert (peaks[:, 1] > 20).sum() >= 30  # every hat shows (8 hats, each over several columns)
    at_8k = resample_poly(hats[0], 1, 6).astype(np.float32)[None, :]
    assert np.abs(np.frombuffer(waveform_peaks(at_8k), dtype=np.int8)).max() <= 6  # the control: flat
    assert len(waveform_peaks(hats[:, :100])) == 2 * PEAK_BUCKETS  # a short file: silent columns past its end
