"""The ACE-Step benchmark's pieces (inference.bench.acestep) on the tiny pipeline: shared layers counted once,
and the phase meter hearing all three phases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inference.acestep.engine import TURBO_STEPS, AceStepEngine
from inference.api import GenerationRequest
from inference.loading import load_engine, resolve_model

CPU = torch.device("cpu")
REQUEST = GenerationRequest(prompt="warm piano", duration_s=1.0, seed=5, instrumental=True)


@pytest.fixture(scope="module")
def fp32_engine(tiny_acestep_dir) -> AceStepEngine:
    source = resolve_model(str(tiny_acestep_dir), tiny_dir=tiny_acestep_dir.parent / "unused")
    return load_engine(source, warm_up=False, weights="fp32")


def test_shared_layers_count_once_and_the_meter_sees_three_phases(fp32_engine):
    from inference.bench.acestep import PHASES, absent_bytes, metered, share_layer_weights_, weight_bytes

    layers = nn.ModuleList([nn.Sequential(nn.Linear(8, 8)) for _ in range(3)])
    share_layer_weights_(layers)
    assert layers[2][0].weight is layers[0][0].weight
    assert weight_bytes([layers]) == (3 * 72 * 4, 72 * 4) and absent_bytes([layers], rows=0) == 2 * 72 * 4
    meter = metered(fp32_engine.pipeline, CPU, lambda: fp32_engine.generate(REQUEST))
    assert list(meter.seconds) == list(PHASES) and meter.steps == TURBO_STEPS
    assert all(seconds > 0 for seconds in meter.seconds.values())
    assert all(peak is None or peak > 0 for peak in meter.peak_bytes.values())
    assert "decode" not in vars(fp32_engine.pipeline.vae)  # the meter's hook is gone
