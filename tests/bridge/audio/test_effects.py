import numpy as np
import pedalboard
import pytest
import soundfile as sf

from bridge.audio.effects import _BOOL, _PATH, PLUGIN_PARAMS, EffectSpec, apply_chain, build_pedalboard, check_effect
from bridge.errors import AudioError, BadRequest


@pytest.fixture(scope="module")
def impulse_response(tmp_path_factory) -> str:
    """A short decaying-noise impulse response for Convolution."""
    path = tmp_path_factory.mktemp("ir") / "room.wav"
    rng = np.random.default_rng(0)
    ir = (rng.standard_normal(4800) * np.exp(-np.arange(4800) / 800)).astype(np.float32)
    sf.write(path, ir, 48000)
    return str(path)


def sine(freq_hz: float, sample_rate: int, seconds: float, channels: int = 2, amplitude: float = 0.5):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return np.tile(amplitude * np.sin(2 * np.pi * freq_hz * t), (channels, 1)).astype(np.float32)


def rms_db(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(audio, dtype=np.float64)))


def extreme_value(allowed, end: int, path: str):
    if allowed is _BOOL:
        return bool(end)
    if allowed is _PATH:
        return path
    return allowed[0 if end == 0 else -1] if isinstance(allowed[0], str) else allowed[end]


def extreme_params(plugin: str, end: int, path: str = "") -> dict:
    """Every parameter at its minimum (end=0) or maximum (end=1) from the table."""
    return {name: extreme_value(allowed, end, path) for name, allowed in PLUGIN_PARAMS[plugin].items()}


def required_params(plugin: str, path: str) -> dict:
    return {name: path for name, allowed in PLUGIN_PARAMS[plugin].items() if allowed is _PATH}


@pytest.mark.parametrize("plugin", sorted(PLUGIN_PARAMS))
@pytest.mark.parametrize("end", [0, 1], ids=["min", "max"])
def test_table_ranges_are_accepted_by_pedalboard(plugin, end, impulse_response):
    spec = EffectSpec(plugin, extreme_params(plugin, end, impulse_response))
    assert check_effect(spec) == []
    board = build_pedalboard([spec], sample_rate=48000)
    assert isinstance(board[0], getattr(pedalboard, plugin))


@pytest.mark.parametrize("plugin", sorted(PLUGIN_PARAMS))
def test_every_plugin_keeps_shape_and_stays_finite(plugin, impulse_response):
    audio = sine(440.0, 22050, 0.25)
    out = apply_chain(audio, 22050, [EffectSpec(plugin, required_params(plugin, impulse_response))])
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
    with pytest.raises(AudioError, match="audio"):
        apply_chain(audio, 48000, [EffectSpec("Gain", {})])


def test_bad_tail():
    with pytest.raises(BadRequest, match="tail_s"):
        apply_chain(sine(440.0, 48000, 0.1), 48000, [], tail_s=-1.0)


@pytest.mark.parametrize("params, key, fragment", [
    ({"impulse_response_filename": "/no/such/ir.wav"}, "impulse_response_filename", "existing file"),
    ({"impulse_response_filename": 3}, "impulse_response_filename", "existing file"),
])
def test_convolution_needs_an_existing_impulse_response(params, key, fragment):
    assert any(name == key and fragment in reason for name, reason in check_effect(EffectSpec("Convolution", params)))


@pytest.mark.parametrize("plugin, params, key, fragment", [
    ("BrickwallLimiter", {"true_peak": 1}, "true_peak", "true or false"),
    ("Resample", {"quality": "Best"}, "quality", "WindowedSinc"),
    ("GSMFullRateCompressor", {"quality": 3}, "quality", "must be one of"),
])
def test_new_builtins_validate_their_parameters(plugin, params, key, fragment):
    assert any(name == key and fragment in reason for name, reason in check_effect(EffectSpec(plugin, params)))


def test_convolution_path_in_a_preset_is_relative_to_the_preset_file(tmp_path, impulse_response):
    from bridge.audio.presets import load_presets

    (tmp_path / "irs").mkdir()
    (tmp_path / "irs" / "room.wav").write_bytes(open(impulse_response, "rb").read())
    (tmp_path / "roomy.toml").write_text(
        '[[master]]\nplugin = "Convolution"\nimpulse_response_filename = "irs/room.wav"\nmix = 0.3\n')
    spec = load_presets([tmp_path])["roomy"].master[0]
    assert spec.params["impulse_response_filename"] == str(tmp_path / "irs" / "room.wav")
    out = apply_chain(sine(440.0, 48000, 0.2), 48000, [spec])
    assert out.shape == (2, 9600) and np.isfinite(out).all()
