"""MusicGen-melody checkpoints through our engine: the same codes as transformers' generate, text and melody."""

from __future__ import annotations

import numpy as np
import pytest

from inference.api import Capability, GenerationRequest
from inference.errors import InferenceError, ModelLoadError
from inference.loading import load_engine, resolve_model
from inference.musicgen.engine import EngineOptions, engine_from_hf_model

RATE = 32_000
FULL_PRECISION = EngineOptions(weights="fp32", kv_cache="fp32", attention="sdpa")


def melody_audio(seconds: float = 2.0) -> np.ndarray:
    """A little tune: four notes of a minor arpeggio, 0.5 s each (mono, 32 kHz)."""
    t = np.arange(int(RATE * 0.5)) / RATE
    notes = [220.0, 261.6, 329.6, 440.0]
    tune = np.concatenate([0.4 * np.sin(2 * np.pi * hz * t) for hz in notes])
    return np.tile(tune, int(np.ceil(seconds / 2)))[: int(seconds * RATE)].astype(np.float32)[None, :]


@pytest.fixture(scope="module")
def reference(tiny_melody_model_dir):
    """(transformers model, processor, codes it hands to EnCodec)."""
    from transformers import AutoProcessor, MusicgenMelodyForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_melody_model_dir)
    model = MusicgenMelodyForConditionalGeneration.from_pretrained(tiny_melody_model_dir).eval()
    captured = []
    decode = model.audio_encoder.decode

    def recording_decode(codes, *args, **kwargs):
        captured.append(codes.clone())
        return decode(codes, *args, **kwargs)

    model.audio_encoder.decode = recording_decode
    return model, processor, captured


def reference_codes(reference, request: GenerationRequest) -> np.ndarray:
    import torch

    model, processor, captured = reference
    kwargs = {"text": [request.prompt], "padding": True, "return_tensors": "pt"}
    if request.melody is not None:
        kwargs.update(audio=request.melody[0], sampling_rate=RATE)
    inputs = processor(**kwargs)
    frames = round(request.duration_s * 50)
    captured.clear()
    with torch.inference_mode():
        model.generate(**inputs, do_sample=False, guidance_scale=request.guidance_scale, max_new_tokens=frames + 3)
    return captured[0][0].numpy()  # (1, K, frames)


def ours(reference, options=FULL_PRECISION):
    model, processor, _ = reference
    return engine_from_hf_model(model, processor.tokenizer, options=options,
                                chroma_extractor=processor.feature_extractor)


def greedy(guidance_scale: float, melody: np.ndarray | None, duration_s: float = 0.6) -> GenerationRequest:
    return GenerationRequest(prompt="warm piano chords", duration_s=duration_s, seed=1, temperature=0.0,
                             guidance_scale=guidance_scale, melody=melody)


@pytest.mark.parametrize("guidance_scale", [1.0, 3.0])
@pytest.mark.parametrize("with_melody", [False, True])
def test_codes_match_transformers(reference, guidance_scale, with_melody):
    request = greedy(guidance_scale, melody_audio() if with_melody else None)
    expected = reference_codes(reference, request)
    np.testing.assert_array_equal(ours(reference).generate_codes(request).numpy(), expected)


def test_the_melody_changes_the_codes(reference):
    engine = ours(reference)
    plain = engine.generate_codes(greedy(3.0, None)).numpy()
    with_tune = engine.generate_codes(greedy(3.0, melody_audio())).numpy()
    assert (plain != with_tune).mean() > 0.05


def test_fused_decode_attention_follows_the_prefix(reference):
    request = greedy(3.0, melody_audio(), duration_s=1.0)
    sdpa = ours(reference).generate_codes(request).numpy()
    fused = ours(reference, EngineOptions(weights="fp32", kv_cache="fp32", attention="auto")).generate_codes(request)
    np.testing.assert_array_equal(fused.numpy(), sdpa)


@pytest.fixture(scope="module")
def served(tiny_melody_model_dir, tmp_path_factory):
    source = resolve_model(str(tiny_melody_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    return source, load_engine(source, device="cpu", warm_up=False)


def test_melody_checkpoints_load_through_the_daemon_path(served):
    _, engine = served
    assert engine.info.supports(Capability.MELODY) and engine.info.max_duration_s == 30.0
    out = engine.generate(GenerationRequest(prompt="dark techno", duration_s=1.0, seed=2, melody=melody_audio(3.0)))
    assert out.audio.shape == (1, RATE) and np.isfinite(out.audio).all()


def test_windowed_output_past_30_s_keeps_the_prefix(served):
    _, engine = served
    codes = engine.generate_codes(GenerationRequest(prompt="ambient", duration_s=31.0, seed=3, melody=melody_audio()))
    assert codes.shape[-1] == 31 * 50


def test_the_transformers_backend_refuses_melody_with_a_way_out(served):
    source, _ = served
    with pytest.raises(ModelLoadError, match="our engine serves it"):
        load_engine(source, device="cpu", warm_up=False, backend="transformers")


def test_a_plain_checkpoint_refuses_a_melody(tiny_model_dir, tmp_path_factory):
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    engine = load_engine(source, device="cpu", warm_up=False)
    assert not engine.info.supports(Capability.MELODY)
    with pytest.raises(InferenceError, match="takes no melody"):
        engine.generate(GenerationRequest(prompt="x", duration_s=0.2, seed=0, melody=melody_audio()))


def test_stereo_melody_codes_match_transformers(tmp_path_factory):
    """musicgen-stereo-melody's layout: left/right codebooks interleaved, one chroma prefix."""
    import torch
    from transformers import AutoProcessor, MusicgenMelodyForConditionalGeneration

    from inference.musicgen.tiny import build_tiny_musicgen

    directory = build_tiny_musicgen(tmp_path_factory.mktemp("stereo-melody"), seed=1, channels=2, melody=True)
    processor = AutoProcessor.from_pretrained(directory)
    model = MusicgenMelodyForConditionalGeneration.from_pretrained(directory).eval()
    captured = []
    decode = model.audio_encoder.decode
    model.audio_encoder.decode = lambda codes, *a, **k: (captured.append(codes.clone()), decode(codes, *a, **k))[1]
    request = greedy(3.0, melody_audio())
    inputs = processor(text=[request.prompt], audio=request.melody[0], sampling_rate=RATE, padding=True,
                       return_tensors="pt")
    with torch.inference_mode():
        model.generate(**inputs, do_sample=False, guidance_scale=3.0, max_new_tokens=round(0.6 * 50) + 3)
    left, right = captured[0][0].numpy(), captured[1][0].numpy()  # each (1, 4, frames)
    expected = np.stack([left, right], axis=2).reshape(1, -1, left.shape[-1])
    engine = engine_from_hf_model(model, processor.tokenizer, options=FULL_PRECISION,
                                  chroma_extractor=processor.feature_extractor)
    np.testing.assert_array_equal(engine.generate_codes(request).numpy(), expected)
