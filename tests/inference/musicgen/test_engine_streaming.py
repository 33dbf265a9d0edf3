"""Streaming: chunks while decoding, adding up to the one-shot render (exactly with the codec stream; the crossfading
ChunkStreamer where the codec is one it does not know)."""

from __future__ import annotations

import numpy as np
import pytest

from inference.api import GenerationRequest
from inference.loading import load_engine, resolve_model
from inference.musicgen.engine import EngineOptions

RATE = 32_000


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    return load_engine(source, device="cpu", warm_up=False, weights="fp32")


def snr_db(audio, expected):
    return 10 * np.log10((expected**2).sum() / max(((audio - expected) ** 2).sum(), 1e-20))


@pytest.mark.parametrize("duration_s", [0.5, 2.3])
def test_chunks_add_up_to_the_render(engine, duration_s):
    chunks, progress = [], []

    def on_chunk(audio):
        chunks.append((audio, len(progress)))

    request = GenerationRequest(prompt="warm piano chords", duration_s=duration_s, seed=2)
    out = engine.generate(request, on_chunk=on_chunk, on_progress=lambda f, s: progress.append(f))
    streamed = np.concatenate([audio for audio, _ in chunks], axis=-1)
    assert streamed.shape == out.audio.shape
    assert snr_db(streamed, out.audio) > 20
    if duration_s > 1:
        first_audio, steps_before = chunks[0]
        assert first_audio.shape[-1] < RATE  # the first chunk comes after one second, less the held tail
        assert steps_before < len(progress)  # ...before decoding finished


def test_streaming_a_continuation_and_long_windows(engine):
    engine.options = EngineOptions(weights="fp32", window_s=1.0, keep_s=0.4)
    try:
        prompt = (np.random.default_rng(0).standard_normal((1, RATE // 2)) * 0.1).astype(np.float32)
        request = GenerationRequest(prompt="warm piano chords", duration_s=1.7, seed=2, audio_prompt=prompt)
        chunks = []
        out = engine.generate(request, on_chunk=chunks.append)
        assert np.concatenate(chunks, axis=-1).shape == out.audio.shape == (1, round(1.7 * RATE))
    finally:
        engine.options = EngineOptions(weights="fp32")


def test_streamed_render_is_the_one_shot_render_and_starts_after_half_a_second(engine):
    """With the codec streaming exactly (inference/musicgen/codec.py), the streamed render is the one-shot render
    within -60 dB (no crossfade), assembled from the chunks (no second decode), and the first chunk is
    first_chunk_s of audio, handed out while the steps run."""
    from inference.musicgen.streaming import ExactStreamer

    assert engine.fast_codec is not None and isinstance(engine.streamer(0, lambda audio: None), ExactStreamer)
    request = GenerationRequest(prompt="warm piano chords", duration_s=2.3, seed=5)
    chunks, steps = [], []
    streamed = engine.generate(request, on_chunk=lambda audio: chunks.append((audio, len(steps))),
                               should_cancel=lambda: steps.append(1) is not None)  # asked once per step
    whole = engine.generate(request)
    assert streamed.audio.shape == whole.audio.shape
    assert snr_db(streamed.audio, whole.audio) > 60
    assert snr_db(np.concatenate([audio for audio, _ in chunks], axis=-1), whole.audio) > 60
    first, steps_before = chunks[0]
    assert first.shape[-1] == round(engine.options.first_chunk_s * RATE)
    assert steps_before < len(steps) / 2  # first audio long before the end
