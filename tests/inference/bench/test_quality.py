"""The quality harness (inference/bench/quality.py): a model whose attention matters, stresses that keep its fp32
function, and one budget that what auto resolves to meets under outliers x100 while every control fails it.

Short: 200 positions, stepwise through the decode path (the benchmark runs 1500; docs/benchmarks.md).
"""

from __future__ import annotations

import pytest

from inference.bench.quality import (
    BEFORE,
    CONTROLS,
    FLOOR,
    HEAD_CONTROLS,
    OPTIONS,
    Harness,
    Stress,
    attention_errors,
    build_copy_musicgen,
)
from inference.musicgen.calibration import BUDGET
from inference.musicgen.fidelity import Fidelity, compare

FRAMES = 200
OUTLIERS = Stress("outliers x100", k=100, v=100, ln=100)
HEADS = Stress("heads x100", heads=100)
AUTO = next(option for option in OPTIONS if option.name == "auto")
AUTO_BEFORE = next(option for option in BEFORE if option.name.startswith("auto"))


@pytest.fixture(scope="module")
def copy_dir(tmp_path_factory):
    return build_copy_musicgen(tmp_path_factory.mktemp("quality") / "copy")


@pytest.fixture(scope="module")
def stressed(copy_dir):
    return Harness(copy_dir, OUTLIERS, frames=FRAMES)


@pytest.fixture(scope="module")
def floor(stressed):
    return stressed.measure(FLOOR)


def test_the_outlier_stresses_keep_the_fp32_function(copy_dir, stressed):
    """K x100 / Q / 100, V x100 / output / 100, LayerNorm x100 / next linear / 100: fp32 logits unchanged, while
    sharpening (not function-preserving, the control) changes them."""
    plain = Harness(copy_dir, Stress("none"), frames=FRAMES, stepwise=False)
    same = compare(plain.reference, Harness(copy_dir, OUTLIERS, frames=FRAMES, stepwise=False).reference)
    sharp = compare(plain.reference, Harness(copy_dir, Stress("sharp", sharp=3), frames=FRAMES,
                                             stepwise=False).reference)
    heads = compare(plain.reference, Harness(copy_dir, HEADS, frames=FRAMES, stepwise=False).reference)
    assert same.kl < 1e-6 and same.agreement == 1.0
    assert heads.kl < 1e-6 and heads.agreement == 1.0
    assert sharp.kl > 1e-3


def test_auto_stays_within_the_budget_under_outliers(stressed, floor):
    """The issue's target: at head size 64 over 200+ positions with outliers x100 (K channels and LayerNorm
    channels, and V), what auto resolves to on the CPU agrees >= 95 % with fp32, mean KL within the budget."""
    auto = stressed.measure(AUTO)
    assert stressed.last_modes["weights"] in ("int4", "int8") and stressed.last_modes["kv_cache"] == "int8"  # gated
    assert auto.steps >= 4 * FRAMES  # codebooks x positions (guided: one row), >= 200 positions
    assert auto.agreement >= 0.95 and BUDGET.allows(auto, floor), (auto, floor)


@pytest.mark.parametrize("option", [*CONTROLS, AUTO_BEFORE], ids=lambda option: option.name)
def test_every_control_fails_the_same_budget(stressed, floor, option):
    """Attention removed, 3-bit weights, and the CPU default before calibration (int8 weights with int8 heads and
    an int8 cache, nothing equalised): the same test refuses each."""
    assert not BUDGET.allows(stressed.measure(option), floor)


def test_equalised_int8_cache_attention_error_at_a_x30_k_channel():
    """<= 3 % attention error at a x30 K channel (1500 keys, head size 64, logits of std 3), where the int8 cache
    as it was (one scale per token and head) is beyond it: the control."""
    errors = attention_errors(30.0)
    assert errors["int8 equalised"] <= 0.03
    assert errors["int8, before"] > 0.03


@pytest.mark.parametrize("kind", ["cache", "weights"])
def test_equalisation_is_what_makes_int8_hold_the_outliers(stressed, floor, kind):
    """The int8 cache (K and V x100) and int8 weights (LayerNorm x100) as named: within the budget equalised, beyond
    it as they were (the control)."""
    after = next(option for option in OPTIONS if option.name == f"int8 {kind}")
    before = next(option for option in BEFORE if option.name == f"int8 {kind}, before")
    assert BUDGET.allows(stressed.measure(after), floor)
    assert not BUDGET.allows(stressed.measure(before), floor)


@pytest.fixture(scope="module")
def head_stressed(copy_dir):
    return Harness(copy_dir, HEADS, frames=FRAMES)


@pytest.fixture(scope="module")
def plain(copy_dir):
    return Harness(copy_dir, Stress("none"), frames=FRAMES)


NAIVE_HEADS = (*HEAD_CONTROLS, next(option for option in BEFORE if option.name == "int8 weights, before"))


@pytest.mark.parametrize("option", NAIVE_HEADS, ids=lambda option: option.name)
def test_naive_head_quantization_fails_the_heads_stress_alone(plain, head_stressed, option):
    """int8 heads with one scale per tensor, and int8 heads with nothing equalised (the default before calibration):
    within the budget on the plain model, beyond it once the final LayerNorm has outlier channels that only the
    heads read (a function-preserving change): the stress is what they fail."""
    assert BUDGET.allows(plain.measure(option), plain.measure(FLOOR))
    assert not BUDGET.allows(head_stressed.measure(option), head_stressed.measure(FLOOR))


def test_equalised_int8_heads_hold_the_heads_stress(head_stressed):
    option = next(option for option in OPTIONS if option.name == "int4 weights + int8 heads + int8 cache")
    fidelity = head_stressed.measure(option)
    assert head_stressed.last_modes["heads"] == "int8"
    assert BUDGET.allows(fidelity, head_stressed.measure(FLOOR)), fidelity


def test_auto_takes_the_first_quantized_head_within_the_budget(head_stressed):
    """The gate measures int4 heads, then int8, on the harness under the heads stress and serves the first within
    the budget (its own figures say which); here the equalised heads hold, so the heads are quantized."""
    head_stressed.measure(AUTO)
    record = head_stressed.last_modes["calibration"]
    floor, weights = Fidelity(**record["floor"]), record["weights"]
    taken = next((kind for kind in ("int4", "int8")
                  if BUDGET.allows(Fidelity(**record["measured"][f"{weights} weights + {kind} heads"]), floor)),
                 "bf16")
    assert record["heads"] == head_stressed.last_modes["heads"] == taken != "bf16"
    assert f"{weights} weights + int4 heads" in record["measured"]

