"""`continuo bench train` (inference/bench/training.py) on the tiny shapes of both families: both sides run a LoRA,
and the rows carry what docs/benchmarks.md reports."""

from __future__ import annotations

import pytest
import torch

from inference.bench.training import random_decoder, run_acestep_train_bench, run_train_bench


@pytest.mark.slow
def test_both_sides_run_and_report():
    ours, plain, estimate = run_train_bench(quick=True, shape="tiny", steps=1)
    assert ours["side"] == "ours" and plain["side"].startswith("plain peft")
    for row in (ours, plain):
        assert row["steps_per_s"] > 0 and row["peak_added_mb"] >= 0 and row["trainable"] > 0
    assert ours["trainable"] < ours["weights"] / 10  # a LoRA, not the model
    assert estimate["steps"] == 40 and estimate["seconds_per_step"] > 0 and "vs_plain_peft" in ours


def test_the_random_decoder_is_filled():
    decoder = random_decoder("tiny")
    weight = decoder.layers[0].attention.wqkv.weight
    assert torch.isfinite(weight).all() and weight.abs().max() > 0


def test_acestep_sides_run_on_one_dit_and_report():
    ours, plain, estimate = run_acestep_train_bench(quick=True, shape="acestep-tiny", steps=1)
    assert ours["side"] == "ours" and plain["side"].startswith("plain peft/diffusers")
    for row in (ours, plain):
        assert row["steps_per_s"] > 0 and row["peak_added_mb"] >= 0 and row["trainable"] > 0
    assert ours["trainable"] == plain["trainable"] < ours["dit_weights"] / 5  # the same LoRA each, not the DiT
    assert not ours["shared_layers"] and ours["absent_gib"] == 0  # tiny: whole, nothing left out
    assert estimate["steps"] == 40 and estimate["seconds_per_step"] > 0 and "vs_plain_peft" in ours
