"""LoRA on the tiny ACE-Step pipeline through the real loader: an adapter made here (random, diffusers' LoRA
format) loads, changes the output, and is gone after the request; weight 0 is the bare model; a bad file is a
clear InferenceError and the engine serves the next request; a MusicGen engine refuses an adapter."""

from __future__ import annotations

import numpy as np
import pytest

from inference.adapters import find_adapters
from inference.api import Capability, GenerationRequest, LoraAdapter
from inference.errors import InferenceError
from inference.loading import load_engine, resolve_model

REQUEST = GenerationRequest(prompt="warm piano", duration_s=0.5, seed=11, instrumental=True)


@pytest.fixture(scope="module")
def engine(tiny_acestep_dir):
    return load_engine(resolve_model(str(tiny_acestep_dir), tiny_dir=tiny_acestep_dir.parent / "unused"),
                       warm_up=False)


@pytest.fixture(scope="module")
def bare(engine) -> np.ndarray:
    return engine.generate(REQUEST).audio


def with_adapter(adapters: dict, name: str, weight: float = 1.0) -> GenerationRequest:
    return GenerationRequest(**{**REQUEST.__dict__, "adapter": LoraAdapter(name, adapters[name], weight)})


def has_lora_layers(engine) -> bool:
    return any("lora" in name for name, _ in engine.pipeline.transformer.named_modules())


def test_the_lora_directory_lists_directories_and_files_by_name(tiny_lora_dir, tmp_path):
    adapters = find_adapters(tiny_lora_dir)
    assert list(adapters) == ["corrupt", "grain", "grain-file", "misfit"]
    assert adapters["grain"].is_dir() and adapters["grain-file"].suffix == ".safetensors"
    assert find_adapters(tmp_path / "missing") == {} and find_adapters(None) == {}
    (tmp_path / "empty-dir").mkdir()  # a directory without the weight file is no adapter
    (tmp_path / "notes.txt").write_text("x")
    assert find_adapters(tmp_path) == {}


def test_an_adapter_changes_the_output_and_is_gone_after_the_request(engine, bare, tiny_lora_dir):
    assert engine.info.supports(Capability.LORA)
    adapters = find_adapters(tiny_lora_dir)
    styled = engine.generate(with_adapter(adapters, "grain")).audio
    assert styled.shape == bare.shape and not np.allclose(styled, bare, atol=1e-3)
    assert not has_lora_layers(engine)
    np.testing.assert_array_equal(engine.generate(REQUEST).audio, bare)  # the next job runs on the bare model
    same_weights = engine.generate(with_adapter(adapters, "grain-file")).audio
    np.testing.assert_allclose(same_weights, styled, rtol=1e-5, atol=1e-6)


def test_weight_zero_is_the_bare_model_and_weights_scale_the_change(engine, bare, tiny_lora_dir):
    adapters = find_adapters(tiny_lora_dir)
    np.testing.assert_allclose(engine.generate(with_adapter(adapters, "grain", 0.0)).audio, bare,
                               rtol=1e-5, atol=1e-6)
    half = engine.generate(with_adapter(adapters, "grain", 0.5)).audio
    full = engine.generate(with_adapter(adapters, "grain", 1.0)).audio
    assert not np.allclose(half, bare, atol=1e-3) and not np.allclose(half, full, atol=1e-3)


def test_variations_apply_the_adapter_to_every_take_and_remove_it_once(engine, bare, tiny_lora_dir):
    adapters = find_adapters(tiny_lora_dir)
    takes = engine.generate_batch(with_adapter(adapters, "grain"), [11, 12])
    np.testing.assert_allclose(takes[0].audio, engine.generate(with_adapter(adapters, "grain")).audio,
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(takes[0].audio, bare, atol=1e-3) and not has_lora_layers(engine)


@pytest.mark.parametrize(("name", "says"), [("corrupt", "cannot be applied"), ("misfit", "size mismatch")])
def test_a_bad_adapter_is_a_clear_error_and_the_next_request_renders(engine, bare, tiny_lora_dir, name, says):
    adapters = find_adapters(tiny_lora_dir)
    with pytest.raises(InferenceError, match=says) as raised:
        engine.generate(with_adapter(adapters, name))
    message = str(raised.value)
    assert repr(name) in message and "diffusers' format" in message and len(message) < 700
    assert not has_lora_layers(engine)
    np.testing.assert_array_equal(engine.generate(REQUEST).audio, bare)


def test_a_musicgen_engine_refuses_an_ace_step_adapter(tiny_model_dir, tiny_lora_dir):
    musicgen = load_engine(resolve_model(str(tiny_model_dir), tiny_dir=tiny_model_dir), warm_up=False)
    assert musicgen.info.supports(Capability.LORA)  # its own MusicGen adapters, at the default (calibrated) weights
    with pytest.raises(InferenceError, match="a diffusers LoRA is for ACE-Step"):
        musicgen.generate(GenerationRequest(prompt="", duration_s=0.1, seed=0,
                                            adapter=LoraAdapter("grain", tiny_lora_dir / "grain")))


def test_a_load_error_is_reported_even_when_there_is_nothing_to_remove(engine, tiny_lora_dir, monkeypatch):
    def no_backend(*args, **kwargs):
        raise ValueError("PEFT backend is required for this method.")

    monkeypatch.setattr(engine.pipeline, "load_lora_weights", no_backend)
    monkeypatch.setattr(engine.pipeline, "unload_lora_weights", no_backend)
    with pytest.raises(InferenceError, match="cannot be applied to .*PEFT backend is required"):
        engine.generate(with_adapter(find_adapters(tiny_lora_dir), "grain"))
