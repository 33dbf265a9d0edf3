"""The ACE-Step DiT's linears on the CPU (inference.acestep.dit_linears): which kind is picked where, how close the
converted pipeline stays to fp32 and that the weights setting turns it off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inference.acestep import dit_linears
from inference.acestep.dit_linears import (
    FP32,
    INT8_KINDS,
    MIN_WEIGHTS,
    candidate_kinds,
    convert_dit_linears_,
    plan_dit_linears,
    resolve_dit_mode,
)
from inference.acestep.engine import AceStepEngine
from inference.api import GenerationRequest, LoraAdapter
from inference.errors import InferenceError
from inference.loading import load_engine, resolve_model

CPU = torch.device("cpu")
REQUEST = GenerationRequest(prompt="warm piano", duration_s=1.0, seed=5, instrumental=True)
INT8_TOLERANCE = 0.02  # relative L2 distance of the final latents, int8 DiT linears against fp32 (tiny pipeline)


def load(tiny_acestep_dir, weights: str) -> AceStepEngine:
    with pytest.MonkeyPatch.context() as patch:  # shorter timing windows: the choice is not what these tests check
        patch.setattr(dit_linears, "TIMING_CALLS", 2)
        source = resolve_model(str(tiny_acestep_dir), tiny_dir=tiny_acestep_dir.parent / "unused")
        return load_engine(source, warm_up=False, weights=weights)


@pytest.fixture(scope="module")
def fp32_engine(tiny_acestep_dir) -> AceStepEngine:
    return load(tiny_acestep_dir, "fp32")


@pytest.fixture(scope="module")
def int8_engine(tiny_acestep_dir) -> AceStepEngine:
    return load(tiny_acestep_dir, "int8")


def plain_linears(module: nn.Module) -> int:
    return sum(type(layer) is nn.Linear for layer in module.modules())


def fake_timer(mode: str, fastest: str):
    """A timer that reports `fastest` at 1 ms and every other candidate at 10 ms (kinds are timed in order)."""
    order = candidate_kinds(mode)
    calls = []

    def timer(module, x) -> float:
        kind = order[len(calls) % len(order)]
        calls.append(kind)
        return 1.0 if kind == fastest else 10.0

    return timer


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(32, 32), nn.Linear(1024, 1024))


def test_modes_from_the_weights_setting():
    assert [resolve_dit_mode(name, CPU) for name in ("auto", "INT8", "bf16", "fp32")] == ["auto", "int8", "bf16",
                                                                                           "fp32"]
    with pytest.raises(ValueError, match="auto, int8, bf16, fp32"):
        resolve_dit_mode("bnb-nf4", CPU)
    for name in ("auto", "int8", "fp16", "bnb-nf4"):  # on CUDA the pipeline's bf16 is left alone
        assert resolve_dit_mode(name, torch.device("cuda")) == FP32


def test_measuring_leaves_the_global_random_state_alone():
    layers = model()
    state = torch.random.get_rng_state()
    plan_dit_linears(layers, "int8", timer=fake_timer("int8", INT8_KINDS[0]))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_auto_picks_the_measured_fastest_and_keeps_small_linears_fp32():
    fastest = next(kind for kind in candidate_kinds("auto") if kind != FP32)
    layers = model()
    plan = convert_dit_linears_(layers, "auto", timer=fake_timer("auto", fastest))
    assert plan.choices == {"1024x1024@125": fastest, "32x32@125": FP32}
    assert set(plan.timings_ms) == {"1024x1024@125"}  # under MIN_WEIGHTS nothing is even timed
    assert 32 * 32 < MIN_WEIGHTS <= 1024 * 1024
    assert (plan.converted, plan.total) == (2, 3) and type(layers[2]) is nn.Linear
    assert type(layers[0]) is not nn.Linear and type(layers[3]) is not nn.Linear


def test_auto_keeps_fp32_where_it_measures_fastest_and_int8_never_does():
    plan = plan_dit_linears(model(), "auto", timer=fake_timer("auto", FP32))
    assert set(plan.choices.values()) == {FP32} and not plan.active
    plan = plan_dit_linears(model(), "int8", timer=fake_timer("int8", FP32))
    assert set(plan.choices.values()) <= set(INT8_KINDS)


@pytest.mark.parametrize("kind", candidate_kinds("auto"))
def test_every_kind_computes_the_same_linear(kind):
    torch.manual_seed(0)
    linear = nn.Linear(256, 192)
    x = torch.randn(2, 7, 256)  # (B, T, D) as the DiT feeds them
    with torch.inference_mode():
        reference, ours = linear(x), dit_linears.build_linear(kind, linear, 7)(x)
    assert ours.shape == reference.shape and ours.dtype == torch.float32
    assert ((ours - reference).norm() / reference.norm()).item() < {FP32: 1e-6, "bf16": 0.01}.get(kind, 0.03)


def test_fp32_converts_nothing_and_auto_leaves_the_tiny_pipeline_as_diffusers_built_it(fp32_engine, tiny_acestep_dir):
    assert not fp32_engine.dit_linears.active
    assert plain_linears(fp32_engine.pipeline.transformer) == fp32_engine.dit_linears.total > 0
    auto = load(tiny_acestep_dir, "auto")  # every tiny linear is under MIN_WEIGHTS: parity tests stay exact
    assert not auto.dit_linears.active
    torch.testing.assert_close(auto.sample(REQUEST), fp32_engine.sample(REQUEST), rtol=0, atol=0)


def test_int8_converts_every_dit_linear_and_stays_close_to_fp32(int8_engine, fp32_engine):
    plan = int8_engine.dit_linears
    assert plan.active and plan.converted == plan.total and plain_linears(int8_engine.pipeline.transformer) == 0
    assert set(plan.choices.values()) <= set(INT8_KINDS)
    assert plain_linears(int8_engine.pipeline.text_encoder) > 0  # only the DiT is converted
    ours, reference = int8_engine.sample(REQUEST), fp32_engine.sample(REQUEST)
    distance = ((ours - reference).norm() / reference.norm()).item()
    assert 0 < distance < INT8_TOLERANCE, distance
    other = fp32_engine.sample(GenerationRequest(**{**REQUEST.__dict__, "seed": 6}))
    assert ((other - reference).norm() / reference.norm()).item() > 10 * distance  # close means closer than a seed


def test_a_lora_request_on_converted_linears_says_how_to_apply_it(int8_engine, tiny_lora_dir):
    request = GenerationRequest(**{**REQUEST.__dict__, "adapter": LoraAdapter("grain", tiny_lora_dir / "grain", 1.0)})
    with pytest.raises(InferenceError, match="--weights fp32"):
        int8_engine.generate(request)
    assert int8_engine.generate(REQUEST).audio.shape[0] == 2  # and the engine still renders
