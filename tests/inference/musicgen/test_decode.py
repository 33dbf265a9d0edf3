"""Delay pattern, guidance and sampling: pure functions on small tensors."""

from __future__ import annotations

import pytest
import torch

from inference.musicgen.decode import (
    UNKNOWN,
    apply_pattern,
    build_delay_pattern,
    delay_offsets,
    filter_logits,
    guide,
    pattern_length,
    sample,
    undelay,
)

P = 99  # pad id


def test_mono_pattern_matches_the_documented_example():
    prompt = torch.tensor([[[1], [2], [3], [4]]])  # (B=1, K=4, P=1)
    pattern = build_delay_pattern(prompt, frames=3, channels=1, pad_id=P)
    U = UNKNOWN
    expected = torch.tensor([
        [P, 1, U, U, P, P, P],
        [P, P, 2, U, U, P, P],
        [P, P, P, 3, U, U, P],
        [P, P, P, P, 4, U, U],
    ])
    assert torch.equal(pattern[0], expected)


def test_stereo_codebooks_share_their_delay():
    assert delay_offsets(8, 2).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert pattern_length(10, 8, 2) == pattern_length(10, 4, 1) == 14


@pytest.mark.parametrize("codebooks, channels, frames", [(4, 1, 1), (4, 1, 7), (8, 2, 5), (2, 1, 3)])
def test_undelay_inverts_the_pattern(codebooks, channels, frames):
    codes = torch.randint(0, 50, (2, codebooks, frames))
    pattern = build_delay_pattern(codes, frames, channels, pad_id=P)
    assert pattern.shape[-1] == pattern_length(frames, codebooks, channels)
    assert (pattern != UNKNOWN).all()
    assert torch.equal(undelay(pattern, frames, channels), codes)


def test_apply_pattern_keeps_known_entries():
    column = torch.tensor([[UNKNOWN, 5, P]])
    assert apply_pattern(torch.tensor([[7, 8, 9]]), column).tolist() == [[7, 5, P]]


def test_guidance_blends_conditional_and_null():
    conditional, null = torch.full((1, 2, 3), 2.0), torch.full((1, 2, 3), 1.0)
    assert torch.allclose(guide(torch.cat([conditional, null]), 3.0), torch.full((1, 2, 3), 4.0))
    assert guide(conditional, None) is conditional


def test_top_k_keeps_k_and_top_p_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, 1.0, 2, 0.0)).sum() == 2
    assert torch.isfinite(filter_logits(logits, 1.0, 0, 0.7)).sum() == 2  # 0.5 + 0.3 crosses 0.7
    assert torch.isfinite(filter_logits(logits, 1.0, 0, 0.0)).all()


def test_greedy_is_argmax_and_sampling_follows_its_generator():
    logits = torch.randn(2, 4, 16)
    assert torch.equal(sample(logits, None, 0.0, 0, 0.0), logits.argmax(-1))
    def draw(seeds):
        return sample(logits, [torch.Generator().manual_seed(s) for s in seeds], 1.0, 0, 0.0)

    assert torch.equal(draw([1, 2]), draw([1, 2]))
    assert torch.equal(draw([1, 2])[0], draw([1, 3])[0])  # each row has its own generator
    assert not torch.equal(draw([1, 2]), draw([3, 4]))


def test_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([0.7, 0.2, 0.1])).expand(1, 4000, 3)
    tokens = sample(logits, [torch.Generator().manual_seed(0)], 1.0, 0, 0.0)
    counts = torch.bincount(tokens.flatten(), minlength=3) / tokens.numel()
    assert torch.allclose(counts, torch.tensor([0.7, 0.2, 0.1]), atol=0.03)
