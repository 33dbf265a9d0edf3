"""The ACE-Step DiT's linears on the CPU (inference.acestep.dit_linears): which kind is picked where (within the error
budget on captured activations, then the fastest), how close the converted pipeline stays to fp32, that the plan
is saved and reused, and that the weights setting turns it off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inference.acestep import dit_linears
from inference.acestep.dit_linears import (
    ERROR_BUDGET,
    FP32,
    INT8_KINDS,
    MIN_WEIGHTS,
    OURS_INT8,
    candidate_kinds,
    convert_dit_linears_,
    plan_dit_linears,
    relative_error,
    resolve_dit_mode,
)
from inference.acestep.engine import AceStepEngine
from inference.api import GenerationRequest, LoraAdapter
from inference.errors import InferenceError
from inference.loading import load_engine, resolve_model

CPU = torch.device("cpu")
REQUEST = GenerationRequest(prompt="warm piano", duration_s=1.0, seed=5, instrumental=True)
INT8_TOLERANCE = 0.02  # relative L2 distance of the final latents, int8 DiT linears against fp32 (tiny pipeline)


def load(tiny_acestep_dir, weights: str, **patches) -> AceStepEngine:
    with pytest.MonkeyPatch.context() as patch:  # shorter timing windows: the choice is not what these tests check
        patch.setattr(dit_linears, "TIMING_CALLS", 2)
        for name, value in patches.items():
            patch.setattr(dit_linears, name, value)
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
    return nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 32), nn.Linear(32, 1024))


def forward(layers: nn.Module, loud_row: float = 1.0):
    """A calibration forward of layers over 125 rows, one of them x loud_row."""
    x = torch.randn(125, 1024, generator=torch.Generator().manual_seed(1))
    x[7] *= loud_row
    return lambda: layers(x)


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
    plan_dit_linears(layers, "auto", forward(layers), timer=fake_timer("auto", INT8_KINDS[0]))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_auto_picks_the_fastest_within_budget_and_keeps_small_linears_fp32():
    fastest = next(kind for kind in candidate_kinds("auto") if kind != FP32)
    layers = model()
    plan = convert_dit_linears_(layers, "auto", run=forward(layers), timer=fake_timer("auto", fastest))
    assert plan.choices == {"1024x1024@125": fastest, "1024x32@125": FP32, "32x1024@125": FP32}
    assert set(plan.timings_ms) == set(plan.errors) == {"1024x1024@125"}  # under MIN_WEIGHTS nothing is measured
    assert 1024 * 32 < MIN_WEIGHTS <= 1024 * 1024
    assert plan.errors["1024x1024@125"][fastest] <= ERROR_BUDGET
    assert (plan.converted, plan.total) == (1, 3) and type(layers[2]) is nn.Linear and type(layers[0]) is not nn.Linear


def test_a_kind_beyond_the_budget_is_never_taken_however_fast():
    """One row x100 in a call: torch's dynamic int8 (one activation scale per call) is far beyond 1 % on the other
    rows, so even reported fastest it is not a candidate; ours (a scale per row) stays within (the control)."""
    dynamic = [kind for kind in INT8_KINDS if kind != OURS_INT8 and kind in candidate_kinds("auto")]
    if not dynamic:
        pytest.skip("no torch dynamic int8 engine in this build")
    layers = model()
    plan = plan_dit_linears(layers, "auto", forward(layers, loud_row=100.0), timer=fake_timer("auto", dynamic[0]))
    errors = plan.errors["1024x1024@125"]
    assert errors[dynamic[0]] > ERROR_BUDGET and dynamic[0] not in plan.timings_ms["1024x1024@125"]
    assert plan.choices["1024x1024@125"] != dynamic[0]
    if OURS_INT8 in errors:
        assert errors[OURS_INT8] <= ERROR_BUDGET


def test_auto_keeps_fp32_where_it_measures_fastest_and_named_int8_is_ours():
    layers = model()
    plan = plan_dit_linears(layers, "auto", forward(layers), timer=fake_timer("auto", FP32))
    assert set(plan.choices.values()) == {FP32}
    plan = plan_dit_linears(model(), "int8", None)
    assert set(plan.choices.values()) == {candidate_kinds("int8")[0]} and candidate_kinds("int8")[0] == OURS_INT8


@pytest.mark.parametrize("kind", candidate_kinds("auto"))
def test_every_kind_computes_the_same_linear(kind):
    torch.manual_seed(0)
    linear = nn.Linear(256, 192)
    x = torch.randn(2, 7, 256)  # (B, T, D) as the DiT feeds them
    with torch.inference_mode():
        reference, ours = linear(x), dit_linears.build_linear(kind, linear, 7)(x)
    assert ours.shape == reference.shape and ours.dtype == torch.float32
    assert ((ours - reference).norm() / reference.norm()).item() < {FP32: 1e-6, "bf16": 0.01}.get(kind, 0.03)


def test_fp32_converts_nothing_and_auto_leaves_the_tiny_pipeline_as_diffusers_built_it(fp32_engine, tiny_acestep_dir,
                                                                                       monkeypatch, tmp_path):
    monkeypatch.setenv("CONTINUO_PLANS_DIR", str(tmp_path / "plans"))
    assert not fp32_engine.dit_linears.active
    assert plain_linears(fp32_engine.pipeline.transformer) == fp32_engine.dit_linears.total > 0
    auto = load(tiny_acestep_dir, "auto")  # every tiny linear is under MIN_WEIGHTS: parity tests stay exact
    assert not auto.dit_linears.active
    torch.testing.assert_close(auto.sample(REQUEST), fp32_engine.sample(REQUEST), rtol=0, atol=0)


def test_int8_converts_every_dit_linear_but_the_time_embeddings_and_stays_close_to_fp32(int8_engine, fp32_engine):
    plan = int8_engine.dit_linears
    transformer = int8_engine.pipeline.transformer
    kept = [name for name, module in transformer.named_modules() if type(module) is nn.Linear]
    assert kept and all(name.startswith("time_embed") for name in kept)  # the adaLN inputs stay fp32
    assert plan.active and plan.converted == plan.total - len(kept)
    assert set(plan.choices.values()) <= {*INT8_KINDS, FP32}
    assert plain_linears(int8_engine.pipeline.text_encoder) > 0  # only the DiT is converted
    ours, reference = int8_engine.sample(REQUEST), fp32_engine.sample(REQUEST)
    distance = ((ours - reference).norm() / reference.norm()).item()
    assert 0 < distance < INT8_TOLERANCE, distance
    other = fp32_engine.sample(GenerationRequest(**{**REQUEST.__dict__, "seed": 6}))
    assert ((other - reference).norm() / reference.norm()).item() > 10 * distance  # close means closer than a seed


def ours_fastest(module, x) -> float:
    """A timer under which our int8 kernel wins (at tiny widths fp32 does: overhead, not arithmetic)."""
    return 1.0 if type(module).__name__ == "Int8Linear" else 10.0


def test_auto_measures_a_plan_on_captured_activations_saves_it_and_reuses_it(tiny_acestep_dir, monkeypatch,
                                                                              tmp_path, fp32_engine):
    """With every tiny linear counted as large: each group's kinds measured on the calibration render's own
    activations, int8 only within 1 % (checked again here), time embeddings fp32, the end-to-end check passed,
    the plan in the manifest's modes; a second load takes the saved plan (identical, not re-timed)."""
    monkeypatch.setenv("CONTINUO_PLANS_DIR", str(tmp_path / "plans"))
    first = load(tiny_acestep_dir, "auto", MIN_WEIGHTS=0, time_ms=ours_fastest)
    plan = first.dit_linears
    assert plan.active and not plan.reused and plan.errors
    assert all(kind == FP32 for key, kind in plan.choices.items() if key.startswith("keep:"))
    for key, kind in plan.choices.items():
        if kind in INT8_KINDS:
            assert plan.errors[key][kind] <= ERROR_BUDGET
    if set(plan.choices.values()) & set(INT8_KINDS):
        assert plan.end_to_end["within"]
    assert first.info.modes["dit_linears"]["choices"] == plan.choices
    again = load(tiny_acestep_dir, "auto", MIN_WEIGHTS=0, TIMING_CALLS=0)  # measuring again would fail
    assert again.dit_linears.reused and again.dit_linears.choices == plan.choices
    torch.testing.assert_close(again.sample(REQUEST), first.sample(REQUEST), rtol=0, atol=0)


def test_int8_groups_stay_within_budget_on_another_clip(tiny_acestep_dir, fp32_engine, monkeypatch, tmp_path):
    """The budget re-checked outside the plan: every linear of each group the plan runs int8, on the inputs a
    render of another seed feeds it, within 1 %; the groups left out of int8 include one beyond it (the control:
    the measurement decided something)."""
    monkeypatch.setenv("CONTINUO_PLANS_DIR", str(tmp_path / "plans"))
    plan = load(tiny_acestep_dir, "auto", MIN_WEIGHTS=0, time_ms=ours_fastest).dit_linears
    transformer = fp32_engine.pipeline.transformer
    captured = {}
    handles = [module.register_forward_pre_hook(lambda m, args: captured.setdefault(m, []).append(args[0].clone()))
               for module in transformer.modules() if type(module) is nn.Linear]
    fp32_engine.calibration_latents(3)
    for handle in handles:
        handle.remove()
    errors = {}
    for name, linear in transformer.named_modules():
        if linear in captured:
            key = dit_linears.group_key(name, linear)
            error = relative_error(dit_linears.build_linear(OURS_INT8, linear), linear, captured[linear])
            errors.setdefault(key, []).append(error)
    int8 = {key for key, kind in plan.choices.items() if kind == OURS_INT8}
    assert int8 and all(max(errors[key]) <= ERROR_BUDGET for key in int8), (plan.choices, errors)
    assert any(plan.errors[key][OURS_INT8] > ERROR_BUDGET for key in plan.errors if key not in int8), plan.errors


def test_the_end_to_end_check_sends_int8_groups_to_bf16_when_latents_move(tiny_acestep_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("CONTINUO_PLANS_DIR", str(tmp_path / "plans"))
    engine = load(tiny_acestep_dir, "auto", MIN_WEIGHTS=0, END_TO_END_FRACTION=0.0, time_ms=ours_fastest)
    plan = engine.dit_linears
    assert plan.end_to_end is not None and not plan.end_to_end["within"]
    assert not set(plan.choices.values()) & set(INT8_KINDS)
    assert any("int8 groups run" in line for line in plan.decisions)
    assert not any(type(module).__name__ == "Int8Linear" for module in engine.pipeline.transformer.modules())


def test_a_lora_request_on_converted_linears_says_how_to_apply_it(int8_engine, tiny_lora_dir):
    request = GenerationRequest(**{**REQUEST.__dict__, "adapter": LoraAdapter("grain", tiny_lora_dir / "grain", 1.0)})
    with pytest.raises(InferenceError, match="--weights fp32"):
        int8_engine.generate(request)
    assert int8_engine.generate(REQUEST).audio.shape[0] == 2  # and the engine still renders
