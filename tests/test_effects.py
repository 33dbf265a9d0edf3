import numpy as np
import pedalboard
import pytest

from bridge.effects import PLUGIN_PARAMS, EffectSpec, apply_chain, build_pedalboard, check_effect
from bridge.errors import BadRequest


def sine(freq_hz: float, sample_rate: int, seconds: float, channels: int = 2, amplitude: float = 0.5):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return np.tile(amplitude * np.sin(2 * np.pi * freq_hz * t), (channels, 1)).astype(np.float32)


def rms_db(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(audio, dtype=np.float64)))


def extreme_params(plugin: str, end: int) -> dict:
    """Every parameter at its minimum (end=0) or maximum (end=1) from the table."""
    return {
        name: allowed[0 if end == 0 else -1] if isinstance(allowed[0], str) else allowed[end]
        for name, allowed in PLUGIN_PARAMS[plugin].items()
    }


@pytest.mark.parametrize("plugin", sorted(PLUGIN_PARAMS))
@pytest.mark.parametrize("end", [0, 1], ids=["min", "max"])
def test_table_ranges_are_accepted_by_pedalboard(plugin, end):
    spec = EffectSpec(plugin, extreme_params(plugin, end))
    assert check_effect(spec) == []
    board = build_pedalboard([spec], sample_rate=48000)
    assert isinstance(board[0], getattr(pedalboard, plugin))


@pytest.mark.parametrize("plugin", sorted(PLUGIN_PARAMS))
def test_every_plugin_keeps_shape_and_stays_finite(plugin):
    audio = sine(440.0, 22050, 0.25)
    out = apply_chain(audio, 22050, [EffectSpec(plugin, {})])
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.parametrize("shape", [(1, 1), (1, 1000), (2, 2), (2, 4800), (2, 48000)])
@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000, 96000])
def test_gain_chain_keeps_shape_and_scales(shape, sample_rate):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    out = apply_chain(audio, sample_rate, [EffectSpec("Gain", {"gain_db": 6.0})])
    assert out.shape == shape
    assert np.allclose(out, audio * 10 ** (6 / 20), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("tail_s", [0.0, 0.1, 0.5])
def test_tail_extends_and_keeps_the_reverb_tail(tail_s):
    sample_rate = 48000
    audio = sine(440.0, sample_rate, 0.2)
    out = apply_chain(audio, sample_rate, [EffectSpec("Reverb", {"room_size": 0.9, "wet_level": 0.5})], tail_s=tail_s)
    tail_frames = round(tail_s * sample_rate)
    assert out.shape == (2, audio.shape[1] + tail_frames)
    if tail_frames:
        assert np.abs(out[:, audio.shape[1] :]).max() > 1e-3


def test_reset_makes_runs_independent():
    board = build_pedalboard([EffectSpec("Delay", {"delay_seconds": 0.05, "feedback": 0.5, "mix": 0.5})])
    audio = sine(220.0, 48000, 0.3)
    assert np.allclose(apply_chain(audio, 48000, board), apply_chain(audio, 48000, board), rtol=1e-6)


def test_empty_chain_copies():
    audio = sine(440.0, 48000, 0.1)
    out = apply_chain(audio, 48000, [])
    assert np.array_equal(out, audio) and out is not audio


def test_filters_filter():
    sample_rate = 48000
    low, high = sine(100.0, sample_rate, 0.5), sine(8000.0, sample_rate, 0.5)
    chain = [EffectSpec("LowpassFilter", {"cutoff_frequency_hz": 1000.0})]
    assert abs(rms_db(apply_chain(low, sample_rate, chain)) - rms_db(low)) < 0.5
    assert rms_db(apply_chain(high, sample_rate, chain)) < rms_db(high) - 12


def test_cutoff_above_nyquist_is_clamped():
    chain = [EffectSpec("LowpassFilter", {"cutoff_frequency_hz": 20000.0})]
    board = build_pedalboard(chain, sample_rate=22050)
    assert board[0].cutoff_frequency_hz == pytest.approx(0.45 * 22050)
    out = apply_chain(sine(1000.0, 22050, 0.5), 22050, chain)
    assert np.isfinite(out).all()


@pytest.mark.parametrize(
    "spec, fragment",
    [
        (EffectSpec("Flanger", {}), "unknown plugin 'Flanger'"),
        (EffectSpec("Compressor", {"threshhold_db": -3.0}), "unknown parameter 'threshhold_db' for Compressor"),
        (EffectSpec("Compressor", {"ratio": 0.5}), "ratio: must be from 1 to 100, got 0.5"),
        (EffectSpec("HighpassFilter", {"cutoff_frequency_hz": -5.0}), "cutoff_frequency_hz"),
        (EffectSpec("Gain", {"gain_db": "loud"}), "gain_db: must be a number"),
        (EffectSpec("Gain", {"gain_db": True}), "gain_db: must be a number"),
        (EffectSpec("Gain", {"gain_db": float("nan")}), "gain_db"),
        (EffectSpec("LadderFilter", {"mode": "LPF48"}), "mode: must be one of"),
        (EffectSpec("vst3", {}), "path: vst3 needs a path"),
        (EffectSpec("vst3", {"path": "/nonexistent/Plugin.vst3"}), "no such plugin"),
    ],
)
def test_build_errors_say_what_to_fix(spec, fragment):
    with pytest.raises(BadRequest) as info:
        build_pedalboard([EffectSpec("Gain", {}), spec])
    assert info.value.message.startswith(f"effect 1 ({spec.plugin})")
    assert fragment in info.value.message


def test_vst3_that_cannot_load_is_an_error_not_a_crash(tmp_path):
    fake = tmp_path / "Fake.vst3"
    fake.write_bytes(b"\x00not a plugin")
    spec = EffectSpec("vst3", {"path": str(fake), "drive": 0.5})
    assert check_effect(spec) == []
    with pytest.raises(BadRequest, match="cannot load"):
        build_pedalboard([spec])
    with pytest.raises(BadRequest, match="cannot load"):
        apply_chain(sine(440.0, 48000, 0.1), 48000, [spec])


def test_effect_spec_params_are_read_only():
    spec = EffectSpec("Gain", {"gain_db": 1.0})
    with pytest.raises(TypeError):
        spec.params["gain_db"] = 2.0  # type: ignore[index]
    assert spec == EffectSpec("Gain", {"gain_db": 1.0})


@pytest.mark.parametrize("audio", [np.zeros(10, np.float32), np.zeros((2, 10), np.int16), [[0.0]]])
def test_bad_audio(audio):
    with pytest.raises(BadRequest, match="audio"):
        apply_chain(audio, 48000, [EffectSpec("Gain", {})])


def test_bad_tail():
    with pytest.raises(BadRequest, match="tail_s"):
        apply_chain(sine(440.0, 48000, 0.1), 48000, [], tail_s=-1.0)
