"""Sampling gives the tokens it gave before issue 24's cheaper path, bit for bit, for the same seeds.

The formulas the decoder sampled with before (guide out of place, the top-k threshold as the sorted k-th value, the
top-p softmax twice, one softmax call over every row, each row's noise in a tensor of its own, argmax row by row)
are kept here as the reference; the new path must give the same tokens over many seeds, shapes and settings,
ties included, and the same generator states after. Each comparison has a control: the reference drawn with other
seeds must differ, so the check can see a different draw.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from inference.musicgen.decode import (
    UNKNOWN,
    Sampler,
    apply_pattern,
    build_delay_pattern,
    predicted_columns,
    sample,
    softmax_rows,
)


def reference_guide(logits: Tensor, guidance_scale: float | None) -> Tensor:
    if guidance_scale is None:
        return logits
    conditional, null = logits.chunk(2, dim=0)
    return null + (conditional - null) * guidance_scale


def reference_filter(logits: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    logits = logits / temperature
    if top_p > 0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) > top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    if 0 < top_k < logits.shape[-1]:
        threshold = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    return logits


def reference_sample(logits: Tensor, generators: list[torch.Generator] | None, temperature: float, top_k: int,
                     top_p: float) -> Tensor:
    if temperature <= 0 or generators is None:
        return logits.argmax(dim=-1)
    probs = torch.softmax(reference_filter(logits, temperature, top_k, top_p), dim=-1)
    rows = []
    for b, generator in enumerate(generators):
        noise = torch.empty_like(probs[b]).exponential_(1, generator=generator)
        rows.append(torch.argmax(probs[b] / noise, dim=-1))
    return torch.stack(rows)


def decoder_logits(rows: int, codebooks: int, vocab: int, seed: int, ties: bool) -> Tensor:
    """(rows, K, 1, V) as the decoder gives them; ties: values on a coarse grid (many equal logits, as quantized
    heads can give), with a few -inf."""
    logits = torch.randn(rows, codebooks, 1, vocab, generator=torch.Generator().manual_seed(seed)) * 3
    if ties:
        logits = torch.round(logits * 2) / 2
        logits[..., ::97] = float("-inf")
    return logits


def generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


SETTINGS = [  # (guidance_scale, temperature, top_k, top_p): the engine's default first
    (3.0, 1.0, 250, 0.0), (3.0, 0.7, 250, 0.0), (None, 1.0, 250, 0.0), (3.0, 1.3, 50, 0.0), (3.0, 1.0, 1, 0.0),
    (3.0, 1.0, 0, 0.0), (1.0, 1.0, 2048, 0.0), (3.0, 1.0, 0, 0.9), (None, 0.8, 0, 0.5), (3.0, 0.0, 250, 0.0),
]
SHAPES = [(1, 4, 2048), (2, 4, 2048), (3, 8, 2048), (2, 4, 37)]  # (samples, K, V): mono, two variations, stereo, odd V


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "cfg{}-t{}-k{}-p{}".format(*s))
def test_the_sampler_draws_the_reference_tokens_for_the_same_seeds(settings):
    guidance_scale, temperature, top_k, top_p = settings
    mismatched_controls = 0
    for (samples, codebooks, vocab), ties in itertools.product(SHAPES, (False, True)):
        seeds = [1000 * samples + 7 * codebooks + index for index in range(samples)]
        copies = 1 if guidance_scale is None else 2
        sampler = Sampler(guidance_scale, temperature, top_k, top_p, generators(seeds))
        reference = generators(seeds)
        control = generators([seed + 1 for seed in seeds])  # the broken input: other seeds
        for step in range(6):
            logits = decoder_logits(copies * samples, codebooks, vocab, seed=step, ties=ties)
            guided = reference_guide(logits[:, :, -1], guidance_scale)
            expected = reference_sample(guided, reference, temperature, top_k, top_p)
            before = logits.clone()
            tokens = sampler(logits)
            assert torch.equal(logits, before)  # the decoder's logits are left as they were
            assert tokens.dtype == expected.dtype and torch.equal(tokens, expected), (samples, codebooks, vocab, step)
            drawn = reference_sample(guided, control, temperature, top_k, top_p)
            mismatched_controls += not torch.equal(drawn, expected)
        for mine, theirs in zip(sampler.generators, reference):
            assert torch.equal(mine.get_state(), theirs.get_state())  # the same draws consumed, no more
    if temperature > 0 and top_k != 1:
        assert mismatched_controls > 0  # the check sees a different draw
    elif temperature <= 0:
        assert mismatched_controls == 0  # greedy: the seeds do not matter (top-k 1: only where logits tie)


def test_the_sampler_keeps_the_reference_on_logits_with_nan_and_inf():
    logits = decoder_logits(2, 4, 2048, seed=3, ties=False)
    logits[0, 1, 0, 5] = float("nan")
    logits[1, 2, 0, :] = float("-inf")
    logits[0, 3, 0, 10:20] = float("inf")
    for guidance_scale in (3.0, None):
        rows = 1 if guidance_scale is not None else 2
        sampler = Sampler(guidance_scale, 1.0, 250, 0.0, generators(list(range(rows))))
        expected = reference_sample(reference_guide(logits[:, :, -1], guidance_scale), generators(list(range(rows))),
                                    1.0, 250, 0.0)
        assert torch.equal(sampler(logits), expected)


def test_sample_refuses_a_generator_count_other_than_its_rows():
    with pytest.raises(ValueError, match="2 generators for 1 rows"):
        sample(torch.randn(1, 4, 16), generators([1, 2]), 1.0, 0, 0.0)


@pytest.mark.parametrize("shape", [(1, 4, 2048), (3, 8, 2048), (2, 4, 37), (5, 3), (2048,)])
def test_softmax_rows_is_torch_softmax_bit_for_bit(shape):
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 4
    assert torch.equal(softmax_rows(logits), torch.softmax(logits, dim=-1))
    strided = torch.randn((*shape[:-1], 2 * shape[-1]))[..., ::2]  # not contiguous: the rows are copied first
    assert torch.equal(softmax_rows(strided), torch.softmax(strided, dim=-1))
    nudged = logits.clone()
    nudged.view(-1)[0] += 1e-3  # control: one logit off by a thousandth
    assert not torch.equal(softmax_rows(nudged), torch.softmax(logits, dim=-1))


def test_whole_predicted_columns_are_those_apply_pattern_keeps_whole():
    prompt = torch.randint(0, 50, (2, 4, 3))
    pattern = build_delay_pattern(prompt, frames=9, channels=1, pad_id=99)
    whole = predicted_columns(pattern)
    predicted = torch.randint(100, 150, pattern.shape)  # never a pattern value
    kept = [torch.equal(apply_pattern(predicted[:, :, p], pattern[:, :, p]), predicted[:, :, p])
            for p in range(pattern.shape[2])]
    assert whole == kept
    assert whole == [bool((pattern[:, :, p] == UNKNOWN).all()) for p in range(pattern.shape[2])]
    assert any(whole) and not all(whole)  # control: both kinds of column are there
    broken = pattern.clone()
    broken[1, 2, whole.index(True)] = 99  # one known entry in a whole column: no longer whole
    assert predicted_columns(broken) != whole
