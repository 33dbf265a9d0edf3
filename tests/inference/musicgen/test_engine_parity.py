"""Our engine (fp32, greedy) against transformers' generate on the tiny checkpoints: the same codes, the same audio."""

from __future__ import annotations

import numpy as np
import pytest

from inference.api import GenerationRequest
from inference.errors import InferenceError
from inference.loading import load_engine, resolve_model
from inference.musicgen.engine import EngineOptions, engine_from_hf_model

RATE = 32_000
FULL_PRECISION = EngineOptions(weights="fp32", kv_cache="fp32", attention="sdpa")


def pair(model_dir, tmp_path_factory, options=FULL_PRECISION):
    """(reference, ours, captured codes list): the reference records the codes it hands to EnCodec."""
    source = resolve_model(str(model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    reference = load_engine(source, device="cpu", warm_up=False, backend="transformers")
    captured = []
    decode = reference.model.audio_encoder.decode

    def recording_decode(codes, *args, **kwargs):
        captured.append(codes.clone())
        return decode(codes, *args, **kwargs)

    reference.model.audio_encoder.decode = recording_decode
    ours = engine_from_hf_model(reference.model, reference.processor.tokenizer, options=options)
    return reference, ours, captured


@pytest.fixture(scope="module")
def mono(tiny_model_dir, tmp_path_factory):
    return pair(tiny_model_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def stereo(tiny_stereo_model_dir, tmp_path_factory):
    return pair(tiny_stereo_model_dir, tmp_path_factory)


def greedy(duration_s=0.5, guidance_scale=3.0, **overrides):
    return GenerationRequest(prompt="warm piano chords", duration_s=duration_s, seed=1, temperature=0.0,
                             guidance_scale=guidance_scale, **overrides)


def reference_codes(reference, captured, request):
    captured.clear()
    audio = reference.generate(request).audio
    codes = captured[0][0]  # (B, K, T); stereo: left then right halves, decoded separately
    if len(captured) == 2:
        codes = np.stack([captured[0][0].numpy(), captured[1][0].numpy()], axis=2).reshape(1, -1, codes.shape[-1])
    return np.asarray(codes), audio


@pytest.mark.parametrize("guidance_scale", [1.0, 3.0])
def test_text_prompt_codes_match_transformers(mono, guidance_scale):
    reference, ours, captured = mono
    request = greedy(guidance_scale=guidance_scale)
    expected, audio = reference_codes(reference, captured, request)
    np.testing.assert_array_equal(ours.generate_codes(request).numpy(), expected)
    np.testing.assert_allclose(ours.generate(request).audio, audio, atol=1e-6)


@pytest.mark.parametrize("guidance_scale", [1.0, 3.0])
def test_continuation_codes_match_transformers(mono, guidance_scale):
    reference, ours, captured = mono
    rng = np.random.default_rng(0)
    prompt = (rng.standard_normal((1, 13_000)) * 0.1).astype(np.float32)  # 20 frames + a partial one
    request = greedy(0.4, guidance_scale=guidance_scale, audio_prompt=prompt)
    expected, audio = reference_codes(reference, captured, request)
    np.testing.assert_array_equal(ours.generate_codes(request).numpy(), expected)
    out = ours.generate(request).audio
    assert out.shape == (1, round(0.4 * RATE))
    np.testing.assert_allclose(out, audio, atol=1e-6)


@pytest.mark.parametrize("with_prompt", [False, True])
def test_stereo_codes_match_transformers(stereo, with_prompt):
    reference, ours, captured = stereo
    sine = np.sin(2 * np.pi * 220 * np.arange(RATE // 2) / RATE).astype(np.float32)
    prompt = np.stack([sine, 0.5 * sine[::-1]]) if with_prompt else None
    request = greedy(0.4, audio_prompt=prompt)
    expected, audio = reference_codes(reference, captured, request)
    np.testing.assert_array_equal(ours.generate_codes(request).numpy(), expected)
    np.testing.assert_allclose(ours.generate(request).audio, audio, atol=1e-6)


def test_eager_attention_matches_sdpa(mono, tiny_model_dir, tmp_path_factory):
    _, ours, _ = mono
    _, eager, _ = pair(tiny_model_dir, tmp_path_factory, EngineOptions(weights="fp32", kv_cache="fp32",
                                                                        attention="eager"))
    request = greedy(0.6)
    np.testing.assert_array_equal(eager.generate_codes(request).numpy(), ours.generate_codes(request).numpy())


def test_static_cache_step_matches_trimmed(mono):
    """The static-shape step (whole cache + mask, padded text memory, position buffer: what compiled decode
    traces), run uncompiled, decodes the same codes on the CPU."""
    from inference.musicgen.decode import StaticStep, decode_one_token

    _, ours, _ = mono
    request = greedy(0.6)
    expected = ours.generate_codes(request).numpy()
    ours.static = ours.step_fn = StaticStep(lambda function: function, ours.device)
    try:
        np.testing.assert_array_equal(ours.generate_codes(request).numpy(), expected)
    finally:
        ours.static, ours.step_fn = None, decode_one_token


def test_variations_are_one_batch_with_a_seed_each(mono):
    _, ours, _ = mono
    request = GenerationRequest(prompt="warm piano chords", duration_s=0.4, seed=5, temperature=1.0)
    batch = ours.generate_batch(request, [5, 6, 7])
    assert [out.seed for out in batch] == [5, 6, 7]
    assert all(out.audio.shape == (1, round(0.4 * RATE)) for out in batch)
    single = ours.generate(GenerationRequest(prompt="warm piano chords", duration_s=0.4, seed=6, temperature=1.0))
    np.testing.assert_allclose(batch[1].audio, single.audio, atol=1e-5)  # a variation re-renders from its seed
    assert not np.allclose(batch[0].audio, batch[2].audio)


def test_style_mixing_blends_text_conditionings(mono):
    _, ours, _ = mono
    base = dict(duration_s=0.3, seed=1, temperature=0.0)
    plain = ours.teacher_forced_logits(GenerationRequest(prompt="warm piano chords", **base),
                                       ours.generate_codes(GenerationRequest(prompt="warm piano chords", **base)))
    codes = ours.generate_codes(GenerationRequest(prompt="warm piano chords", **base))
    weightless = GenerationRequest(prompt="warm piano chords", styles=(("dark techno kick", 0.0),), **base)
    mixed = GenerationRequest(prompt="warm piano chords", styles=(("dark techno kick", 1.0),), **base)
    unchanged = (ours.teacher_forced_logits(weightless, codes) - plain).abs().max()
    changed = (ours.teacher_forced_logits(mixed, codes) - plain).abs().max()
    assert unchanged < 1e-5 and changed > 10 * unchanged + 1e-6  # the tiny model's text effect is small
    with pytest.raises(InferenceError, match="style weights"):
        ours.generate(GenerationRequest(prompt="x", styles=(("y", -1.0),), **base))
