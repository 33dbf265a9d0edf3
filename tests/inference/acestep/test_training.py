"""ACE-Step LoRA training (inference/acestep/training.py) on the tiny pipeline: peft through diffusers' add_adapter
lowers the flow-matching loss of its clips (at fixed draws), and the adapter it saves, in diffusers' format, loads
through the engine's lora path as a downloaded one does and changes the render; the next request is bare."""

from __future__ import annotations

import numpy as np
import pytest

from inference.acestep.training import AceStepLoraTrainer, AceStepTrainingOptions
from inference.adapters import find_adapters
from inference.api import GenerationRequest, LoraAdapter
from inference.loading import load_engine, resolve_model


def tones(rate: int, seconds: float = 2.0) -> list[tuple[np.ndarray, str]]:
    t = np.arange(int(rate * seconds)) / rate
    return [((0.3 * np.sin(2 * np.pi * hz * t))[None].repeat(2, 0).astype(np.float32), "warm pads")
            for hz in (220.0, 330.0, 440.0)]


@pytest.fixture(scope="module")
def trained(tiny_acestep_dir, tmp_path_factory):
    from diffusers import AceStepPipeline

    pipeline = AceStepPipeline.from_pretrained(tiny_acestep_dir)
    trainer = AceStepLoraTrainer(pipeline, tones(pipeline.sample_rate),
                                 AceStepTrainingOptions(learning_rate=1e-2, steps=30, seed=1))
    before = trainer.mean_loss()
    trainer.run()
    root = tmp_path_factory.mktemp("ace-loras")
    trainer.save(root / "pads")
    return trainer, before, root


def test_training_lowers_the_loss_of_its_clips(trained):
    trainer, before, _ = trained
    after = trainer.mean_loss()
    assert after < 0.8 * before, (before, after)
    lora = [name for name, p in trainer.pipeline.transformer.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in name for name in lora)  # only the LoRA weights trained
    assert any(".to_q." in name for name in lora) and not any("mlp" in name for name in lora)


def test_the_saved_adapter_renders_through_the_lora_path(trained, tiny_acestep_dir):
    _, _, root = trained
    adapters = find_adapters(root)
    assert list(adapters) == ["pads"]
    engine = load_engine(resolve_model(str(tiny_acestep_dir), tiny_dir=tiny_acestep_dir.parent / "unused"),
                         warm_up=False)
    request = GenerationRequest(prompt="warm pads", duration_s=0.5, seed=4, instrumental=True)
    bare = engine.generate(request).audio
    styled = engine.generate(GenerationRequest(**{**request.__dict__,
                                                  "adapter": LoraAdapter("pads", adapters["pads"], 1.0)})).audio
    assert styled.shape == bare.shape and not np.allclose(styled, bare, atol=1e-4)
    np.testing.assert_array_equal(engine.generate(request).audio, bare)  # removed after its request
