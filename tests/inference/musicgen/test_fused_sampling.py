"""The fused CPU sampling op (runtime/csrc/sampling.cpp) gives the Python path's tokens, bit for bit, for every seed.

Two levels: the probabilities it draws from equal torch's (guide, filter_logits, softmax_rows) bit for bit, so the
argmax over probs / noise cannot differ on any near-tie; and the tokens of a Sampler on the fused op equal those of
a Sampler on the Python path (Sampler.fused = False) step after step from the same seeds, with the same generator
states after. Controls, in the same harness: a top-k threshold off by one and a softmax without its max subtracted
must give other tokens, and a softmax equal in exact arithmetic but not in its roundings (division by the sum
instead of multiplication by its inverse) must give other probabilities.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from inference.musicgen.decode import (
    Sampler,
    draw_noise,
    filter_logits,
    fused_op_agrees,
    fused_sample_op,
    guide,
    softmax_rows,
)

pytestmark = pytest.mark.skipif(fused_sample_op() is None,
                                reason="no fused sampling op here (kernels not built, or another vector width)")

VOCABS = (2048, 37, 5)  # the model's, a tail of 5 after two AVX-512 vectors, shorter than one vector


def decoder_logits(rows: int, codebooks: int, vocab: int, seed: int, ties: bool = False, spread: float = 3.0
                   ) -> Tensor:
    """(rows, K, 1, V) as the decoder gives them; ties: a coarse grid (many equal logits), -inf in every other row."""
    logits = torch.randn(rows, codebooks, 1, vocab, generator=torch.Generator().manual_seed(seed)) * spread
    if ties:
        logits = torch.round(logits * 2) / 2
        logits[::2, ..., ::7] = float("-inf")  # under CFG some guided rows get -inf, some NaN (inf - inf)
    return logits


def same_bits(a: Tensor, b: Tensor) -> bool:
    """Bit for bit, NaN included (torch.equal says NaN differs from itself)."""
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


def generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def python_probs(logits: Tensor, guidance_scale: float | None, temperature: float, top_k: int) -> Tensor:
    return softmax_rows(filter_logits(guide(logits, guidance_scale), temperature, top_k, 0.0))


@pytest.mark.parametrize("vocab", VOCABS)
def test_the_fused_probabilities_are_torchs_bit_for_bit(vocab):
    op = torch.ops.continuo_cpu.guided_probs
    for seed, ties in itertools.product(range(25), (False, True)):
        logits = decoder_logits(6, 4, vocab, seed, ties, spread=2.0 + seed)[:, :, 0]
        for guidance_scale, temperature, top_k in itertools.product((3.0, 2.7, None), (1.0, 0.7, 1.3),
                                                                    (0, 1, 250, vocab - 1, vocab)):
            expected = python_probs(logits, guidance_scale, temperature, top_k)
            assert same_bits(op(logits, guidance_scale, temperature, top_k), expected), (seed, guidance_scale,
                                                                                        temperature, top_k)


def test_a_softmax_equal_in_exact_arithmetic_is_not_equal_bit_for_bit():
    # control for the test above: exp(x - max) / sum is softmax too, rounded differently; the comparison sees it
    logits = decoder_logits(2, 4, 2048, seed=0)[:, :, 0]
    expected = python_probs(logits, 3.0, 1.0, 250)
    guided = filter_logits(guide(logits, 3.0), 1.0, 250, 0.0)
    exps = torch.exp(guided - guided.amax(dim=-1, keepdim=True))
    assert not same_bits(exps / exps.sum(dim=-1, keepdim=True), expected)


SETTINGS = list(itertools.product((3.0, None), (1.0, 0.7), (0, 1, 250, 2048)))  # (guidance, temperature, top_k)


def run_both(guidance_scale: float | None, temperature: float, top_k: int, samples: int, vocab: int, steps: int,
             ties: bool, broken=None, spread: float | None = None) -> tuple[int, int]:
    """Sampler on the fused op against Sampler on the Python path (or `broken`, a Sampler of the Python path with
    other settings), from the same seeds, `steps` steps; returns (steps compared, steps that differ)."""
    seeds = [31 * samples + index for index in range(samples)]
    fused = Sampler(guidance_scale, temperature, top_k, 0.0, generators(seeds))
    python = broken(generators(seeds)) if broken else Sampler(guidance_scale, temperature, top_k, 0.0,
                                                               generators(seeds))
    python.fused = False
    copies = 1 if guidance_scale is None else 2
    assert fused.fused_op(torch.empty(copies * samples, 4, vocab)) is not None  # the fused op runs here
    differ = 0
    for step in range(steps):
        logits = decoder_logits(copies * samples, 4, vocab, seed=1000 + step, ties=ties,
                                spread=2.0 + step % 5 if spread is None else spread)
        before = logits.clone()
        tokens = fused(logits)
        assert torch.equal(logits, before)  # the decoder's logits are left as they were
        expected = python(logits)
        assert tokens.dtype == expected.dtype == torch.long and tokens.shape == expected.shape
        differ += not torch.equal(tokens, expected)
    if broken is None:
        for mine, theirs in zip(fused.generators, python.generators):
            assert torch.equal(mine.get_state(), theirs.get_state())  # the same draws consumed, no more
    return steps, differ


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "cfg{}-t{}-k{}".format(*s))
def test_the_fused_sampler_draws_the_python_paths_tokens(settings):
    guidance_scale, temperature, top_k = settings
    for samples, vocab, ties in itertools.product((1, 3), (2048, 37), (False, True)):
        top = min(top_k, vocab)
        steps, differ = run_both(guidance_scale, temperature, top, samples, vocab, steps=40, ties=ties)
        assert differ == 0, (samples, vocab, ties)


def test_the_fused_sampler_over_many_seeds_at_the_engines_settings():
    # the engine's default (CFG 3, temperature 1, top-k 250), musicgen-small's shape, 600 steps of 2 samples
    assert run_both(3.0, 1.0, 250, samples=2, vocab=2048, steps=600, ties=False) == (600, 0)


def test_the_fused_sampler_keeps_the_python_path_on_nan_and_inf():
    logits = decoder_logits(4, 4, 2048, seed=3)
    logits[0, 1, 0, 5] = float("nan")
    logits[1, 2, 0, :] = float("-inf")
    logits[0, 3, 0, 10:20] = float("inf")
    logits[3, 0, 0, :] = float("-inf")
    for guidance_scale, top_k in itertools.product((3.0, None), (0, 250)):
        rows = 2 if guidance_scale is not None else 4
        fused = Sampler(guidance_scale, 1.0, top_k, 0.0, generators(list(range(rows))))
        python = Sampler(guidance_scale, 1.0, top_k, 0.0, generators(list(range(rows))))
        python.fused = False
        assert torch.equal(fused(logits), python(logits))


def test_the_fused_sampler_refuses_a_generator_count_other_than_its_samples():
    sampler = Sampler(3.0, 1.0, 250, 0.0, generators([1, 2]))
    with pytest.raises(ValueError, match="2 generators for 1 rows"):
        sampler(torch.randn(2, 4, 1, 16))


def test_prefill_logits_of_several_positions_take_the_last():
    logits = torch.randn(4, 4, 3, 64, generator=torch.Generator().manual_seed(5))  # (B', K, T, V): not contiguous
    fused = Sampler(3.0, 0.7, 20, 0.0, generators([1, 2]))
    python = Sampler(3.0, 0.7, 20, 0.0, generators([1, 2]))
    python.fused = False
    assert torch.equal(fused(logits), python(logits))


@pytest.mark.parametrize("broken", ["threshold-off-by-one", "no-max-subtracted"])
def test_controls_a_wrong_variant_gives_other_tokens_in_the_same_harness(broken, monkeypatch):
    if broken == "threshold-off-by-one":  # the (k+1)-th value as the threshold: one token more survives, and
        # on flat logits (where it is drawn about once in 250) the harness sees it
        steps, differ = run_both(3.0, 1.0, 250, samples=2, vocab=2048, steps=300, ties=False,
                                 broken=lambda g: Sampler(3.0, 1.0, 251, 0.0, g), spread=0.3)
        assert differ > 0
        return

    def unstable_softmax(logits: Tensor) -> Tensor:  # exp(x) / sum: overflows on large logits
        exps = torch.exp(logits)
        return exps / exps.sum(dim=-1, keepdim=True)

    from inference.musicgen import decode

    monkeypatch.setattr(decode, "softmax_rows", unstable_softmax)
    seeds = [7, 8]
    fused, python = (Sampler(3.0, 1.0, 250, 0.0, generators(seeds)) for _ in range(2))
    python.fused = False
    differ = 0
    for step in range(20):
        logits = decoder_logits(4, 4, 2048, seed=step, spread=40.0)  # guided: logits past exp's range (88)
        differ += not torch.equal(fused(logits), python(logits))
    assert differ > 0


def test_noise_is_drawn_as_the_python_path_drew_it():
    noise = draw_noise((3, 4, 2048), generators([1, 2, 3]))
    for row, seed in zip(noise, (1, 2, 3)):
        assert torch.equal(row, torch.empty(4, 2048).exponential_(1, generator=torch.Generator().manual_seed(seed)))
    assert noise.is_contiguous() and noise.dtype == torch.float32
    assert draw_noise((1, 4, 8), generators([1]), torch.bfloat16).dtype == torch.bfloat16  # the logits' dtype


def test_the_check_at_first_use_passes_the_op_and_refuses_one_that_rounds_or_draws_otherwise():
    ops = torch.ops.continuo_cpu
    assert fused_op_agrees(ops.guided_sample, ops.guided_probs)

    def divided(logits: Tensor, guidance_scale: float | None, temperature: float, top_k: int) -> Tensor:
        exps = filter_logits(guide(logits, guidance_scale), temperature, top_k, 0.0)
        exps = torch.exp(exps - exps.amax(dim=-1, keepdim=True))
        return exps / exps.sum(dim=-1, keepdim=True)  # softmax in exact arithmetic, not in its roundings

    assert not fused_op_agrees(ops.guided_sample, divided)
    greedy = lambda logits, scale, temperature, top_k, noise: guide(logits, scale).argmax(dim=-1)  # noqa: E731
    assert not fused_op_agrees(greedy, ops.guided_probs)
