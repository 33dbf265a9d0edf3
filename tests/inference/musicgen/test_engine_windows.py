"""Long output by windowed re-prompting: the plan, lengths, seeds, and seamless joins (tiny model, 1 s windows)."""

from __future__ import annotations

import numpy as np
import pytest

from inference.api import GenerationRequest
from inference.loading import load_engine, resolve_model
from inference.musicgen.engine import EngineOptions, plan_windows

RATE = 32_000


@pytest.mark.parametrize(
    "prompt, total, window, keep, expected",
    [
        (0, 40, 50, 20, [(0, 40)]),
        (0, 120, 50, 20, [(0, 50), (20, 30), (20, 30), (20, 10)]),
        (10, 70, 50, 20, [(10, 40), (20, 20)]),
        (0, 60, 50, 0, [(0, 50), (0, 10)]),
    ],
)
def test_plan_windows(prompt, total, window, keep, expected):
    plan = plan_windows(prompt, total, window, keep)
    assert plan == expected
    assert prompt + sum(new for _, new in plan) == total


def test_a_prompt_must_leave_room():
    with pytest.raises(ValueError, match="no room"):
        plan_windows(50, 60, 50, 10)


@pytest.fixture(scope="module")
def windowed(tiny_model_dir, tmp_path_factory):
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    engine = load_engine(source, device="cpu", warm_up=False, weights="fp32")
    engine.options = EngineOptions(weights="fp32", window_s=1.0, keep_s=0.4)
    return engine


def test_long_output_has_the_asked_length_and_is_reproducible(windowed):
    request = GenerationRequest(prompt="warm piano chords", duration_s=2.5, seed=4)
    calls = []
    first = windowed.generate(request, on_progress=lambda fraction, stage: calls.append(fraction))
    assert first.audio.shape == (1, round(2.5 * RATE))
    np.testing.assert_array_equal(first.audio, windowed.generate(request).audio)
    assert calls == sorted(calls) and calls[-1] == 1.0


def test_first_window_equals_a_short_render(windowed):
    long = windowed.generate_codes(GenerationRequest(prompt="warm piano chords", duration_s=2.5, seed=4))
    short = windowed.generate_codes(GenerationRequest(prompt="warm piano chords", duration_s=1.0, seed=4))
    assert long.shape[-1] == 125
    np.testing.assert_array_equal(long[:, :, :50].numpy(), short.numpy())


def test_joins_are_seamless(windowed):
    """The codes decode as one stream: no jump at a join larger than the jumps inside a window."""
    audio = windowed.generate(GenerationRequest(prompt="warm piano chords", duration_s=2.5, seed=4)).audio[0]
    jumps = np.abs(np.diff(audio))
    joins = [50 * 640, 80 * 640, 110 * 640]  # window 1 ends at 1 s, later windows add 0.6 s each
    assert max(jumps[j - 2 : j + 2].max() for j in joins) <= jumps.max()
    assert max(jumps[j - 2 : j + 2].max() for j in joins) <= 4 * np.percentile(jumps, 99)
