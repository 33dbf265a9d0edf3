"""Continuing from codes (GenerationRequest.prompt_codes): a jam's sliding context kept as the model's own codes.

The new frames' codes come back (GeneratedAudio.codes); continuing them is the same stream as one longer decode
(greedy: the same codes), nothing is re-encoded, and the lead-in lets the caller crossfade at the seam."""

from __future__ import annotations

import numpy as np
import pytest

from inference.api import GenerationRequest
from inference.errors import InferenceError
from inference.loading import load_engine, resolve_model

RATE = 32_000


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    return load_engine(source, device="cpu", warm_up=False, weights="fp32")


def greedy(duration_s: float, **overrides) -> GenerationRequest:
    return GenerationRequest(**({"prompt": "warm piano", "duration_s": duration_s, "seed": 3, "temperature": 0.0}
                                | overrides))


def test_the_new_frames_codes_come_back(engine):
    out = engine.generate(greedy(0.5))
    assert out.codes.shape == (engine.args.num_codebooks, 25) and out.codes.dtype == np.int64
    assert out.audio.shape == (1, round(0.5 * RATE)) and out.lead_in is None


def test_continuing_codes_is_the_same_stream_as_one_decode(engine, monkeypatch):
    whole = engine.generate(greedy(1.5))
    first = engine.generate(greedy(1.0))
    monkeypatch.setattr(engine.codec, "encode", lambda *a, **k: pytest.fail("a code prompt was re-encoded"))
    rest = engine.generate(greedy(0.5, prompt_codes=first.codes))
    np.testing.assert_array_equal(np.concatenate([first.codes, rest.codes], axis=1), whole.codes)
    assert rest.audio.shape == (1, round(0.5 * RATE))
    # decoded with its context's last frames, the new audio is the whole decode's, and so is the lead-in
    np.testing.assert_allclose(rest.audio, whole.audio[:, RATE:], atol=1e-4)
    lead = rest.lead_in.shape[-1]
    assert lead == round(0.2 * RATE)
    # the lead-in starts with no context of its own; its second half, where a seam's crossfade lies, is the stream
    np.testing.assert_allclose(rest.lead_in[:, lead // 2 :], whole.audio[:, RATE - lead // 2 : RATE], atol=1e-4)
    # control: the previous chunk's own tail, decoded without what follows, is not that stream at its edge
    assert np.abs(first.audio[:, -64:] - whole.audio[:, RATE - 64 : RATE]).max() > 1e-3


def test_the_prompt_codes_condition_the_continuation(engine):
    a = engine.generate(greedy(0.4, seed=1, temperature=1.0))
    b = engine.generate(greedy(0.4, seed=2, temperature=1.0))
    after_a = engine.generate(greedy(0.3, prompt_codes=a.codes))
    after_b = engine.generate(greedy(0.3, prompt_codes=b.codes))
    assert not np.array_equal(after_a.codes, after_b.codes)


@pytest.mark.parametrize("codes, match", [
    (np.zeros((3, 10), dtype=np.int64), "prompt_codes must be .codebooks, frames."),
    (np.zeros((4, 0), dtype=np.int64), "prompt_codes must be"),
    (np.full((4, 10), 5000, dtype=np.int64), "integer codes in 0..2047"),
    (np.zeros((4, 10), dtype=np.float32), "integer codes"),
])
def test_bad_codes_are_refused_by_name(engine, codes, match):
    with pytest.raises(InferenceError, match=match):
        engine.generate(greedy(0.2, prompt_codes=codes))


def test_audio_and_codes_together_are_refused(engine):
    audio = np.zeros((1, RATE // 2), dtype=np.float32)
    with pytest.raises(InferenceError, match="not both"):
        engine.generate(greedy(0.2, audio_prompt=audio, prompt_codes=np.zeros((4, 10), dtype=np.int64)))
