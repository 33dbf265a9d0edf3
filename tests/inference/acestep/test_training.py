"""ACE-Step LoRA training (inference/acestep/training.py) on the tiny pipeline: peft through diffusers' add_adapter
lowers the flow-matching loss of its clips (at fixed draws), and the adapter it saves, in diffusers' format, loads
through the engine's lora path as a downloaded one does and changes the render; the next request is bare. The
shared loop (inference/runtime/lora_training.py) gives it checkpoints: cancelled and resumed, it ends on the same
adapter bit for bit as a run that never stopped; a checkpoint of other clips is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from inference.acestep.training import AceStepLoraTrainer, load_training_pipeline
from inference.adapters import find_adapters
from inference.api import GenerationRequest, LoraAdapter
from inference.errors import Cancelled, InferenceError
from inference.loading import load_engine, resolve_model
from inference.runtime.lora_training import LoraTrainingOptions


def tones(rate: int, seconds: float = 2.0, caption: str = "warm pads") -> list[tuple[np.ndarray, str]]:
    t = np.arange(int(rate * seconds)) / rate
    return [((0.3 * np.sin(2 * np.pi * hz * t))[None].repeat(2, 0).astype(np.float32), caption)
            for hz in (220.0, 330.0, 440.0)]


@pytest.fixture(scope="module")
def trained(tiny_acestep_dir, tmp_path_factory):
    pipeline, _ = load_training_pipeline(tiny_acestep_dir)
    root = tmp_path_factory.mktemp("ace-loras")
    trainer = AceStepLoraTrainer(pipeline, tones(pipeline.sample_rate),
                                 LoraTrainingOptions(learning_rate=1e-2, epochs=10, batch_size=1, seed=1),
                                 root / ".training")
    before = trainer.mean_loss()
    trainer.run()
    trainer.save(root / "pads")
    return trainer, before, root


def test_training_lowers_the_loss_of_its_clips(trained):
    trainer, before, _ = trained
    after = trainer.mean_loss()
    assert trainer.step_index == 30 and after < 0.8 * before, (before, after)
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


OPTIONS = LoraTrainingOptions(learning_rate=1e-2, epochs=3, batch_size=2, seed=3, checkpoint_every=2)


def trainer_on(tiny_acestep_dir, work_dir, clips=None, options=OPTIONS) -> AceStepLoraTrainer:
    pipeline, _ = load_training_pipeline(tiny_acestep_dir)
    return AceStepLoraTrainer(pipeline, clips or tones(pipeline.sample_rate, 1.0), options, work_dir)


def test_resume_from_the_checkpoint_equals_an_uninterrupted_run(tiny_acestep_dir, tmp_path):
    whole = trainer_on(tiny_acestep_dir, tmp_path / "whole").run()
    assert whole.steps == 6  # 3 epochs of 2 batches (2 clips, then 1)
    first = trainer_on(tiny_acestep_dir, tmp_path / "cut")
    calls = {"n": 0}

    def cancel_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    torch.manual_seed(1234)  # the process's RNG moved between the runs: the trainer's stream is its own
    with pytest.raises(Cancelled, match="checkpoint of step 2 is kept"):
        first.run(should_cancel=cancel_after_three)
    assert first.step_index == 3  # one step past the checkpoint is lost and redone
    again = trainer_on(tiny_acestep_dir, tmp_path / "cut")
    assert again.resume() == 2
    resumed = again.run()
    assert resumed.resumed_from == 2 and resumed.steps == whole.steps and resumed.losses == whole.losses
    assert whole.lora.keys() == resumed.lora.keys() and len(whole.lora) > 0
    for name, tensor in whole.lora.items():
        assert torch.equal(tensor, resumed.lora[name]), name
    # the controls: another seed ends elsewhere; a checkpoint of another clip set, or other options, is refused
    other = trainer_on(tiny_acestep_dir, tmp_path / "seed", options=dataclasses.replace(OPTIONS, seed=4)).run()
    name = next(name for name in whole.lora if "lora_B" in name)
    assert not torch.equal(whole.lora[name], other.lora[name])
    fewer = tones(48_000, 1.0)[:2]
    with pytest.raises(InferenceError, match="made from other recordings"):
        trainer_on(tiny_acestep_dir, tmp_path / "cut", clips=fewer).resume()
    recaptioned = tones(48_000, 1.0, caption="dark pads")
    with pytest.raises(InferenceError, match="made from other recordings"):
        trainer_on(tiny_acestep_dir, tmp_path / "cut", clips=recaptioned).resume()
    with pytest.raises(InferenceError, match="made from other recordings"):
        trainer_on(tiny_acestep_dir, tmp_path / "cut", options=dataclasses.replace(OPTIONS, epochs=4)).resume()
