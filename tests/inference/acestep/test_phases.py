"""The three memory phases (encode, sample, decode) on the tiny ACE-Step pipeline, a CPU twin of the CUDA path.

The policy (`plan_placement`) is checked on sizes; the real three-phase flow runs the real pipeline with a fake
device mover that keeps a ledger of where each component would be, and forward pre-hooks on every submodule
check that each component only ever runs while the ledger has it on the device.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from inference.acestep import family
from inference.acestep.engine import AceStepEngine, components
from inference.acestep.phases import ACTIVATION_SHARE, WORKING_SETS, PhasePlacement, component_bytes, plan_placement
from inference.api import AudioEdit, GenerationRequest
from inference.errors import ModelLoadError
from inference.loading import resolve_model

CUDA = torch.device("cuda")
SIZES = {"text_encoder": 4, "condition_encoder": 1, "transformer": 8, "vae": 1}


def budget_for(usable: float) -> int:
    return math.ceil(usable / (1.0 - ACTIVATION_SHARE))


def test_no_placement_on_the_cpu_without_a_budget_or_when_everything_fits():
    assert plan_placement(SIZES, budget_for(100), torch.device("cpu")) is None
    assert plan_placement(SIZES, 0, CUDA) is None
    assert plan_placement(SIZES, budget_for(14), CUDA) is None  # 4 + 1 + 8 + 1 fit


def test_the_largest_components_stay_resident_while_every_phase_fits():
    placement = plan_placement(SIZES, budget_for(13), CUDA)
    # the transformer (8) is tried first but leaves no room for the encoders (4 + 1 + 1); the next largest fit
    assert placement.resident == {"text_encoder", "condition_encoder"}
    assert placement.on_device("sample") == {"text_encoder", "condition_encoder", "transformer"}
    for phase in ("encode", "sample", "decode"):
        assert sum(SIZES[n] for n in placement.on_device(phase)) <= 13
    tight = plan_placement(SIZES, budget_for(8), CUDA)
    assert tight.resident == frozenset() and tight.on_device("sample") == {"transformer"}
    assert tight.on_device("encode") == {"text_encoder", "condition_encoder", "vae"}


def test_a_phase_that_alone_exceeds_the_budget_is_a_clear_load_error():
    with pytest.raises(ModelLoadError, match="sample phase needs .* memory_budget_gb"):
        plan_placement(SIZES, budget_for(7), CUDA)


class Ledger:
    """A fake mover: where each component would be (nothing moves; the CPU computes), and every move made."""

    def __init__(self, modules: dict[str, torch.nn.Module], placement: PhasePlacement) -> None:
        self.names = {id(module): name for name, module in modules.items()}
        self.where = {name: "cuda" if name in placement.resident else "cpu" for name in modules}
        self.moves: list[tuple[str, str]] = []

    def __call__(self, module: torch.nn.Module, device: torch.device) -> None:
        name = self.names[id(module)]
        if self.where[name] != device.type:
            self.moves.append((name, device.type))
        self.where[name] = device.type


@pytest.fixture(scope="module")
def pipeline(tiny_acestep_dir):
    from diffusers import AceStepPipeline

    return AceStepPipeline.from_pretrained(tiny_acestep_dir, dtype=torch.float32, local_files_only=True)


def test_the_real_flow_moves_each_component_in_for_its_phase_only(pipeline):
    modules = components(pipeline)
    sizes = component_bytes(modules)
    need = max(sum(sizes[name] for name in WORKING_SETS[phase] & set(sizes)) for phase in WORKING_SETS)
    placement = plan_placement(sizes, budget_for(need), CUDA)  # the smallest budget every phase fits in
    assert placement is not None and "transformer" not in placement.resident
    ledger = Ledger(modules, placement)
    engine = AceStepEngine(pipeline, _info(pipeline), steps=2, placement=placement, mover=ledger)
    boundaries: list[tuple[str, dict[str, str]]] = []
    engine.phases.subscribe(lambda phase: boundaries.append((phase, dict(ledger.where))))
    ran_off_device: list[str] = []
    ran: set[str] = set()
    handles = []
    for name, module in modules.items():
        def check(_module, _args, name=name):
            ran.add(name)
            if ledger.where[name] != "cuda":
                ran_off_device.append(f"{name} in {engine.phases.current}")
        handles += [sub.register_forward_pre_hook(check) for sub in module.modules()]
    try:
        take = engine.generate(GenerationRequest(prompt="x", duration_s=0.4, seed=1, lyrics="la"))
        edit = AudioEdit(task="repaint", audio=np.zeros((2, 48_000), np.float32), start_s=0.2, end_s=0.6)
        engine.generate(GenerationRequest(prompt="x", duration_s=1.0, seed=1, edit=edit))
    finally:
        for handle in handles:
            handle.remove()
    assert take.audio.shape[0] == 2
    assert ran_off_device == [] and {"text_encoder", "condition_encoder", "transformer", "vae"} <= ran
    assert [phase for phase, _ in boundaries] == ["encode", "sample", "decode", "idle"] * 2
    for phase, where in boundaries:
        if phase != "idle":
            on_device = {name for name, device in where.items() if device == "cuda"}
            assert on_device == placement.on_device(phase), phase
    assert ("transformer", "cuda") in ledger.moves and ("transformer", "cpu") in ledger.moves


def test_the_phases_run_and_nothing_moves_on_the_cpu(tiny_acestep_dir, caplog):
    source = resolve_model(str(tiny_acestep_dir), tiny_dir=tiny_acestep_dir.parent / "unused")
    with caplog.at_level(logging.INFO, logger="continuo.inference"):
        engine = family.load(source.path, name="tiny", source_kind=source.kind, is_random=True, device="cpu",
                             memory_budget_gb=0.001)
    assert "no effect on the CPU" in caplog.text and engine.phases.placement is None
    heard: list[str] = []
    engine.phases.subscribe(heard.append)
    engine.generate(GenerationRequest(prompt="x", duration_s=0.2, seed=0))
    assert heard == ["encode", "sample", "decode", "idle"]
    assert {p.device.type for m in components(engine.pipeline).values() for p in m.parameters()} == {"cpu"}
    assert set(WORKING_SETS) == {"encode", "sample", "decode"}


def _info(pipeline):
    return family.describe_pipeline(pipeline, name="tiny", source_kind="local", is_random=True, device="cpu")
