"""Both engines (ours, and transformers' as the reference) on the tiny random checkpoint: shapes, seeds,
continuation, progress, cancel. The fixtures run every test once per backend."""

from __future__ import annotations

import time

import numpy as np
import pytest

from inference.api import GenerationRequest
from inference.errors import Cancelled, InferenceError
from inference.loading import load_engine, resolve_model

RATE = 32_000


# Our engine runs fp32 here: on the tiny random model the text barely moves the logits, and int8
# activations round that away (int8 is held to its tolerances in test_quantize.py).
BACKENDS = ["engine", "transformers"]
MODES = {"engine": {"weights": "fp32"}, "transformers": {}}


@pytest.fixture(scope="module", params=BACKENDS)
def mono(request, tiny_model_dir, tmp_path_factory):
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    return load_engine(source, device="cpu", backend=request.param, **MODES[request.param])


@pytest.fixture(scope="module", params=BACKENDS)
def stereo(request, tiny_stereo_model_dir, tmp_path_factory):
    source = resolve_model(str(tiny_stereo_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    return load_engine(source, device="cpu", backend=request.param, **MODES[request.param])


def request(duration_s=0.5, seed=7, **overrides):
    return GenerationRequest(prompt="warm piano chords", duration_s=duration_s, seed=seed, **overrides)


@pytest.mark.parametrize("duration_s", [0.5, 1.01, 2.0])
def test_mono_length_and_finite(mono, duration_s):
    out = mono.generate(request(duration_s))
    assert out.sample_rate == RATE
    assert out.audio.dtype == np.float32
    assert out.audio.shape[0] == 1
    assert out.audio.shape[1] >= round(duration_s * RATE)
    assert out.audio.shape[1] - round(duration_s * RATE) < 640  # at most one frame over
    assert np.isfinite(out.audio).all()
    assert np.abs(out.audio).max() > 0


def test_stereo_has_two_distinct_channels(stereo):
    assert stereo.info.channels == 2
    out = stereo.generate(request(1.0))
    assert out.audio.shape == (2, RATE)
    assert np.isfinite(out.audio).all()
    assert not np.allclose(out.audio[0], out.audio[1])


def test_same_seed_same_audio(mono):
    first = mono.generate(request(seed=3)).audio
    second = mono.generate(request(seed=3)).audio
    np.testing.assert_array_equal(first, second)


def test_different_seed_different_audio(mono):
    assert not np.allclose(mono.generate(request(seed=3)).audio, mono.generate(request(seed=4)).audio)


def test_different_prompt_different_audio(mono):
    other = GenerationRequest(prompt="dark techno kick", duration_s=0.5, seed=7)
    assert not np.allclose(mono.generate(request()).audio, mono.generate(other).audio)


def test_seeding_leaves_global_rng_alone(mono):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    mono.generate(request())
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "overrides",
    [
        {"guidance_scale": 1.0},
        {"temperature": 0.0},
        {"top_p": 0.9},
        {"top_k": 0},
        {"temperature": 0.7, "top_k": 10, "guidance_scale": 5.0},
    ],
)
def test_sampling_settings(mono, overrides):
    out = mono.generate(request(0.3, **overrides))
    assert out.audio.shape == (1, round(0.3 * 50) * 640)
    assert np.isfinite(out.audio).all()


def test_greedy_is_deterministic_across_seeds(mono):
    first = mono.generate(request(0.3, seed=1, temperature=0.0)).audio
    second = mono.generate(request(0.3, seed=2, temperature=0.0)).audio
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("mono", ["transformers"], indirect=True)  # our engine has no generation config
def test_shared_generation_config_untouched(mono):
    before = mono.model.generation_config.to_dict()
    mono.generate(request(0.3, top_p=0.5, temperature=0.5, guidance_scale=1.0))
    assert mono.model.generation_config.to_dict() == before


@pytest.mark.parametrize("prompt_s", [0.5, 0.51])
def test_continuation_returns_only_new_audio(mono, prompt_s):
    prompt = mono.generate(request(1.0)).audio[:, : round(prompt_s * RATE)]
    out = mono.generate(request(0.6, audio_prompt=prompt))
    assert out.audio.shape == (1, round(0.6 * RATE))
    assert np.isfinite(out.audio).all()


def test_continuation_depends_on_the_prompt(mono):
    rng = np.random.default_rng(0)
    first = rng.standard_normal((1, RATE // 2)).astype(np.float32) * 0.1
    second = rng.standard_normal((1, RATE // 2)).astype(np.float32) * 0.1
    a = mono.generate(request(0.4, audio_prompt=first)).audio
    b = mono.generate(request(0.4, audio_prompt=second)).audio
    assert not np.allclose(a, b)


def test_continuation_takes_the_models_channel_count(mono, stereo):
    """The caller maps channels (the bridge does, once, in bridge/audio/prompts.py:load_prompt); the engine only
    checks them."""
    sine = np.sin(2 * np.pi * 220 * np.arange(RATE // 2) / RATE).astype(np.float32)
    assert mono.generate(request(0.4, audio_prompt=sine[None, :])).audio.shape == (1, round(0.4 * RATE))
    assert stereo.generate(request(0.4, audio_prompt=np.stack([sine, sine]))).audio.shape == (2, round(0.4 * RATE))
    with pytest.raises(InferenceError, match=r"2 channel\(s\); this model takes 1"):
        mono.generate(request(0.4, audio_prompt=np.stack([sine, sine])))
    with pytest.raises(InferenceError, match=r"1 channel\(s\); this model takes 2"):
        stereo.generate(request(0.4, audio_prompt=sine[None, :]))


def test_continuation_must_fit_the_window(mono):
    prompt = np.zeros((1, (20 if not hasattr(mono, "decoder") else 31) * RATE), dtype=np.float32)
    with pytest.raises(InferenceError, match="exceeds"):  # ours re-prompts past the window, but a prompt must fit
        mono.generate(request(11.0, audio_prompt=prompt))


def test_prompt_shorter_than_a_frame_is_refused(mono):
    with pytest.raises(InferenceError, match="shorter than one codec frame"):
        mono.generate(request(audio_prompt=np.zeros((1, 100), dtype=np.float32)))


def test_duration_over_max_is_refused(mono):
    with pytest.raises(InferenceError, match="exceeds"):
        mono.generate(request(mono.info.max_output_s + 0.5))


@pytest.mark.parametrize(
    "overrides, match",
    [({"duration_s": 0.0}, "duration_s"), ({"top_p": 1.5}, "top_p"), ({"top_k": -1}, "top_k"),
     ({"temperature": -1.0}, "temperature")],
)
def test_bad_settings_are_named(mono, overrides, match):
    settings = {"prompt": "x", "duration_s": 0.5, "seed": 0} | overrides
    with pytest.raises(InferenceError, match=match):
        mono.generate(GenerationRequest(**settings))


def test_progress_is_monotonic_and_complete(mono, monkeypatch):
    monkeypatch.setattr("inference.runtime.progress.PROGRESS_INTERVAL_S", 0.0)  # report every step
    calls = []
    mono.generate(request(0.5), on_progress=lambda fraction, stage: calls.append((fraction, stage)))
    fractions = [fraction for fraction, _ in calls]
    stages = [stage for _, stage in calls]
    assert stages[0] == "conditioning" and stages[-1] == "decoding"
    assert stages.count("generating") == 25 + 3  # one per decode step: 25 frames + delay pattern
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0 and ("generating", 1.0) == (stages[-2], fractions[-2])


def test_progress_is_throttled(mono):
    times = []

    def on_progress(fraction, stage):
        if stage == "generating":
            times.append(time.monotonic())

    mono.generate(request(2.0), on_progress=on_progress)
    gaps = np.diff(times[:-1])  # the final 1.0 comes whenever the last step ends
    assert (gaps >= 0.25).all()


def test_cancel_takes_effect_within_a_step(mono):
    checks = []

    def should_cancel():
        checks.append(time.monotonic())
        return len(checks) > 3  # once before the text encoder, then after each step

    with pytest.raises(Cancelled, match="after 3 of 1003 steps") as error:
        mono.generate(request(20.0), should_cancel=should_cancel)
    assert error.value.code == "cancelled"
    assert len(checks) == 4  # no step ran after the cancel


def test_cancel_before_start(mono):
    with pytest.raises(Cancelled):
        mono.generate(request(), should_cancel=lambda: True)


def test_engine_recovers_after_cancel(mono):
    with pytest.raises(Cancelled):
        mono.generate(request(1.0), should_cancel=lambda: True)
    first = mono.generate(request(seed=9)).audio
    np.testing.assert_array_equal(first, mono.generate(request(seed=9)).audio)


def test_failure_inside_generate_is_an_inference_error(mono):
    def broken(fraction, stage):
        if stage == "generating":
            raise ValueError("callback exploded")

    with pytest.raises(InferenceError, match="callback exploded"):
        mono.generate(request(), on_progress=broken)


def test_info_describes_the_smoke_model(mono):
    info = mono.info
    assert info.is_random and "SMOKE" in info.name and "noise" in info.name
    assert (info.sample_rate, info.channels, info.frame_rate) == (RATE, 1, 50.0)
    assert 0 < info.parameters < 5_000_000


def test_running_out_of_memory_becomes_out_of_memory_with_a_hint(mono, monkeypatch):
    from inference.errors import OutOfMemory

    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")

    target = "decode" if hasattr(mono, "decode") else "build_inputs"
    monkeypatch.setattr(mono, target, exhausted)
    with pytest.raises(OutOfMemory) as info:
        mono.generate(request())
    assert info.value.code == "out_of_memory"
    assert "int8" in str(info.value) and "fewer bars" in str(info.value)


def test_any_other_failure_becomes_an_inference_error(mono, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("shape mismatch")

    target = "decode" if hasattr(mono, "decode") else "build_inputs"
    monkeypatch.setattr(mono, target, broken)
    with pytest.raises(InferenceError, match="generation failed: ValueError: shape mismatch"):
        mono.generate(request())


def test_a_repeated_prompt_skips_the_text_encoder(tiny_model_dir, tmp_path_factory):
    """T5 conditioning cached per (prompt, styles): the second render of a prompt runs no T5 pass and gives the same
    audio; a new prompt or a style does run it (the control)."""
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    engine = load_engine(source, device="cpu", weights="fp32")
    passes = []
    encoder = engine.text_encoder
    original = encoder.forward
    encoder.forward = lambda *args, **kwargs: passes.append(1) or original(*args, **kwargs)
    first = engine.generate(request())
    assert len(passes) == 1
    again = engine.generate(request())
    assert len(passes) == 1 and np.array_equal(first.audio, again.audio)
    engine.generate(GenerationRequest(prompt="dark techno kick", duration_s=0.5, seed=7))
    engine.generate(request(styles=(("ambient pad", 0.5),)))
    assert len(passes) == 3


def test_warm_up_measures_the_real_time_factor_and_saves_it_for_doctor(tiny_model_dir, tmp_path_factory):
    """warm_up times a 1 s take on the warm-up prompt (its T5 states cached: no T5 pass in the take) into
    measured_speed, saved per checkpoint and modes; the figure is the take's wall over its audio (a fake clock:
    0.75 s over 1 s is 0.75, over 0.5 s it is 1.5 and does not keep up: the control of the divisor)."""
    from inference.runtime.plans import load_plan

    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    engine = load_engine(source, device="cpu", weights="fp32")  # warmed up
    speed = engine.measured_speed
    assert speed is not None and (speed.source, speed.audio_s) == ("warm-up", 1.0) and speed.rtf > 0
    assert engine.speed_key.settings.startswith(f"weights=fp32 kv_cache={engine.kv_cache.value} ")
    assert load_plan(engine.speed_key)["rtf"] == speed.rtf
    passes = []
    original = engine.text_encoder.forward
    engine.text_encoder.forward = lambda *args, **kwargs: passes.append(1) or original(*args, **kwargs)
    times = iter([10.0, 10.75, 20.0, 20.75])
    timed = engine.measure_speed(clock=lambda: next(times))
    assert (timed.rtf, timed.keeps_up()) == (0.75, True) and passes == []
    short = engine.measure_speed(0.5, clock=lambda: next(times))
    assert (short.rtf, short.keeps_up()) == (1.5, False)
    assert load_plan(engine.speed_key)["rtf"] == 1.5  # the last measurement is what doctor shows
