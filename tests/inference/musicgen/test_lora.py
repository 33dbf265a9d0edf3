"""MusicGen LoRA training and applying (inference/musicgen/training.py, lora.py) on the tiny random checkpoint.

A "style" here is synthetic material with its own codes (tones in a narrow band); "other material" is noise. The
checks: training on the style lowers its held-out loss against the base and against a LoRA trained on the other
material (the control, which must not show the gain); an interrupted run resumed from its checkpoint ends on the
same adapter as one that never stopped; peft's forward equals our side path and our merge of the saved file; the
saved adapter is found in a LoRA directory as a downloaded one is, and a render with it differs from one without."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from inference.adapters import find_adapters, weight_file
from inference.api import GenerationRequest, LoraAdapter
from inference.errors import Cancelled, InferenceError
from inference.loading import load_engine, resolve_model
from inference.musicgen.calibration import calibration_inputs, forced_logits
from inference.musicgen.fidelity import compare
from inference.musicgen.kv_cache import KVCacheMode
from inference.musicgen.lora import (
    LoraWeights,
    adapter_applied,
    linear_shape,
    load_adapter,
    merge_,
    save_adapter,
    target_modules,
    write_adapter_dir,
)
from inference.musicgen.tiny import build_tiny_musicgen
from inference.musicgen.training import (
    StyleTrainer,
    TrainingClip,
    TrainingOptions,
    encode_clip,
    load_training_engine,
)

RATE = 32_000
OPTIONS = TrainingOptions(rank=8, alpha=16, learning_rate=3e-2, epochs=6, batch_size=2, seed=3, checkpoint_every=4,
                          caption_dropout=0.0)
HEAD_GAIN = 5.0  # the tiny model's LM heads sharpened: at HF's init (std 0.02) over 32 dims no layer below them can
# move a logit by more than ~0.3, so any training shows only hundredths of a nat


def palette_clips(palette_seed: int, seed: int, count: int, frames: int = 50, size: int = 4) -> list[TrainingClip]:
    """A synthetic "style" in code space: every codebook draws from its own palette of `size` codes (palette_seed),
    in an order drawn from `seed`. (The tiny codec is random: its codes of any audio are noise.)"""
    palette = torch.randperm(2048, generator=torch.Generator().manual_seed(palette_seed))[:4 * size].view(4, size)
    draw = torch.Generator().manual_seed(seed)
    return [TrainingClip(torch.gather(palette, 1, torch.randint(0, size, (4, frames), generator=draw)), "warm piano")
            for _ in range(count)]


def tones(seed: int, count: int, seconds: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    return [(0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t)).astype(np.float32)[None] for _ in range(count)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    def sharpen(model):
        with torch.no_grad():
            for head in model.decoder.lm_heads:
                head.weight.mul_(HEAD_GAIN)

    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny-sharp") / "mono", seed=0, edit=sharpen)


@pytest.fixture(scope="module")
def data(model_dir):
    engine = load_training_engine(model_dir)
    recorded = [TrainingClip(encode_clip(engine, audio), "warm piano") for audio in tones(0, 4)]
    return {"style": palette_clips(0, 1, 8), "held_out": palette_clips(0, 2, 4), "other": palette_clips(1, 3, 8),
            "recorded": recorded}


def trainer(model_dir, clips, work_dir, options=OPTIONS) -> StyleTrainer:
    return StyleTrainer(load_training_engine(model_dir), clips, options, work_dir)


@pytest.fixture(scope="module")
def style_run(model_dir, data, tmp_path_factory):
    run = trainer(model_dir, data["style"], tmp_path_factory.mktemp("style"))
    base = run.held_out_loss(data["held_out"])
    result = run.run()
    return run, result, base


def test_style_lora_lowers_held_out_loss_and_the_control_does_not(model_dir, data, style_run, tmp_path):
    run, result, base = style_run
    styled = run.held_out_loss(data["held_out"])
    control = trainer(model_dir, data["other"], tmp_path)
    control.run()
    other = control.held_out_loss(data["held_out"])
    gain, control_gain = base - styled, base - other
    assert result.steps == 24 and result.final_loss < result.losses[0]
    assert gain > 0.4, (base, styled)  # the style is learnt
    assert control_gain < 0.5 * gain and other - styled > 0.3, (base, styled, other)  # other material does not


def test_resume_from_the_checkpoint_equals_an_uninterrupted_run(model_dir, data, tmp_path):
    assert data["recorded"][0].codes.shape == (4, 50)  # 1 s of audio through the codec: 50 frames of 4 codebooks
    whole = trainer(model_dir, data["recorded"], tmp_path / "whole").run()
    first = trainer(model_dir, data["recorded"], tmp_path / "cut")
    calls = {"n": 0}

    def cancel_after_six() -> bool:
        calls["n"] += 1
        return calls["n"] > 6

    with pytest.raises(Cancelled, match="checkpoint of step 4 is kept"):
        first.run(should_cancel=cancel_after_six)
    assert first.step_index == 6  # two steps past the checkpoint are lost and redone
    again = trainer(model_dir, data["recorded"], tmp_path / "cut")
    assert again.resume() == 4
    resumed = again.run()
    assert resumed.resumed_from == 4 and resumed.steps == whole.steps
    for name, (a, b) in whole.lora.pairs.items():
        assert torch.equal(a, resumed.lora.pairs[name][0]) and torch.equal(b, resumed.lora.pairs[name][1]), name
    assert resumed.losses == whole.losses
    # the control: another seed ends elsewhere, and a checkpoint of other clips is refused
    other = trainer(model_dir, data["recorded"], tmp_path / "seed", dataclasses.replace(OPTIONS, seed=4)).run()
    name = next(iter(whole.lora.pairs))
    assert not torch.equal(whole.lora.pairs[name][0], other.lora.pairs[name][0])
    with pytest.raises(InferenceError, match="made from other recordings"):
        trainer(model_dir, data["style"][:4], tmp_path / "cut").resume()


def test_peft_forward_equals_our_side_path_and_merge(model_dir, data, style_run, tmp_path):
    run, result, _ = style_run
    save_adapter(tmp_path / "style.safetensors", result.lora)
    lora = load_adapter(tmp_path / "style.safetensors")
    assert lora.rank == 8 and lora.scaling == 2.0 and set(lora.pairs) == set(result.lora.pairs)
    clips = data["held_out"][:2]
    peft_loss = run.held_out_loss(clips)  # peft's LoRA layers in the trained decoder
    fresh = load_training_engine(model_dir)  # the same checkpoint, no peft anywhere
    ours = StyleTrainer.__new__(StyleTrainer)  # the trainer's loss over the fresh decoder
    ours.__dict__.update(engine=fresh, decoder=fresh.decoder, device=fresh.device, args=fresh.args, clips=[],
                         options=OPTIONS)
    before = ours.held_out_loss(clips)
    with adapter_applied(fresh.decoder, lora, 1.0, "style"):
        side = ours.held_out_loss(clips)
    after = ours.held_out_loss(clips)
    merge_(fresh.decoder, lora, 1.0, "style")
    merged = ours.held_out_loss(clips)
    assert side == pytest.approx(peft_loss, abs=1e-5) and merged == pytest.approx(peft_loss, abs=1e-5)
    assert after == before and abs(before - peft_loss) > 0.1  # the side path is removed; the control differs


@pytest.fixture(scope="module")
def lora_dir(style_run, tmp_path_factory):
    _, result, _ = style_run
    root = tmp_path_factory.mktemp("loras")
    write_adapter_dir(root / "my-band", result.lora, {"name": "my-band"})
    return root


def test_the_adapter_renders_through_the_downloaded_adapter_path(model_dir, lora_dir, tiny_lora_dir, tmp_path):
    found = find_adapters(lora_dir)
    assert list(found) == ["my-band"] and (found["my-band"] / "card.json").is_file()
    engine = load_engine(resolve_model(str(model_dir), tiny_dir=tmp_path), device="cpu", weights="fp32")
    assert engine.info.supports("lora")
    request = GenerationRequest(prompt="warm piano", duration_s=0.5, seed=5)
    adapted = dataclasses.replace(request, adapter=LoraAdapter("my-band", found["my-band"], 1.0))
    before = engine.generate(request).audio
    with_lora = engine.generate(adapted).audio
    after = engine.generate(request).audio
    assert not np.allclose(before, with_lora)  # the adapter changes the render
    np.testing.assert_array_equal(before, after)  # and is gone after its request
    zero = engine.generate(dataclasses.replace(adapted, adapter=LoraAdapter("my-band", found["my-band"], 0.0))).audio
    np.testing.assert_allclose(zero, before, atol=1e-5)  # weight 0: no effect
    with pytest.raises(InferenceError, match="not a MusicGen adapter of Continuo's format"):  # an ACE-Step LoRA
        engine.generate(dataclasses.replace(request, adapter=LoraAdapter("grain", tiny_lora_dir / "grain", 1.0)))
    np.testing.assert_array_equal(engine.generate(request).audio, before)  # the failed request left nothing behind


def test_merged_at_load_equals_the_side_path(model_dir, lora_dir, tmp_path):
    path = str(weight_file(lora_dir / "my-band"))
    side = load_engine(resolve_model(str(model_dir), tiny_dir=tmp_path), device="cpu", weights="fp32")
    merged = load_engine(resolve_model(str(model_dir), tiny_dir=tmp_path), device="cpu", weights="fp32",
                         lora=path)
    assert merged.info.modes["lora"]["merged"] == path
    request = GenerationRequest(prompt="warm piano", duration_s=0.4, seed=1, temperature=0.0)
    adapted = dataclasses.replace(request, adapter=LoraAdapter("my-band", lora_dir / "my-band", 1.0))
    assert torch.equal(merged.generate_codes(request), side.generate_codes(adapted))
    assert not torch.equal(side.generate_codes(request), side.generate_codes(adapted))  # the control


@pytest.fixture(scope="module")
def outlier_model(tmp_path_factory):
    """The sharpened tiny model with the outlier channels real checkpoints have (a few LayerNorm channels and key
    channels 20x the rest: what calibration's equalisation is for), and a random adapter over every target in a
    LoRA directory."""
    def outliers(model):
        with torch.no_grad():
            for head in model.decoder.lm_heads:
                head.weight.mul_(HEAD_GAIN)
            for layer in model.decoder.model.decoder.layers:
                for norm in (layer.self_attn_layer_norm, layer.encoder_attn_layer_norm):
                    norm.weight[:3].mul_(20.0)
                layer.self_attn.k_proj.weight[:2].mul_(20.0)

    directory = build_tiny_musicgen(tmp_path_factory.mktemp("tiny-outliers") / "mono", seed=0, edit=outliers)
    decoder = load_training_engine(directory).decoder
    draw = torch.Generator().manual_seed(7)
    pairs = {}
    for name, module in target_modules(decoder).items():
        out_features, in_features = linear_shape(module)
        pairs[name] = (torch.randn(8, in_features, generator=draw) * 0.3,
                       torch.randn(out_features, 8, generator=draw) * 0.3)
    loras = tmp_path_factory.mktemp("outlier-loras")
    write_adapter_dir(loras / "outliers", LoraWeights(pairs, rank=8, alpha=16.0), {"name": "outliers"})
    return directory, LoraAdapter("outliers", loras / "outliers", 1.0)


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_the_adapter_on_a_calibrated_engine_matches_the_fp32_side_path(outlier_model, weights, tmp_path):
    """The daemon's default CPU engine (int8 / int4 weights, equalised by calibration) takes a per-request adapter:
    with the adapter folded into the equalisation, the change it makes to the guided logits is the fp32 side
    path's (which equals peft's forward, above) within the quantised weights' own relative error. The control: the
    adapter applied unfolded (on the layer's scaled input, into its rescaled rows) is far off."""
    model_dir, adapter = outlier_model
    source = resolve_model(str(model_dir), tiny_dir=tmp_path)
    exact = load_engine(source, device="cpu", weights="fp32", kv_cache="fp32", warm_up=False)
    quantized = load_engine(source, device="cpu", weights=weights, kv_cache="fp32", warm_up=False)
    assert quantized.info.modes["calibration"]["equalized"] and quantized.info.supports("lora")
    inputs = calibration_inputs(exact.text_encoder, exact.tokenizer, exact.codec, exact.args, hop=exact.hop,
                                sample_rate=exact.info.sample_rate, device=torch.device("cpu"))

    def logits(engine, applied=None):
        if applied is None:
            return forced_logits(engine.decoder, inputs, KVCacheMode.FP32)
        with applied:
            return forced_logits(engine.decoder, inputs, KVCacheMode.FP32)

    bare, styled, quantized_bare = logits(exact), logits(exact, exact.adapted(adapter)), logits(quantized)
    folded = logits(quantized, quantized.adapted(adapter))
    unfolded = logits(quantized, adapter_applied(quantized.decoder, load_adapter(weight_file(adapter.path)), 1.0,
                                                 "outliers"))

    def off(candidate) -> float:  # how far the adapter's change of the logits is from fp32's, relative to it
        return ((candidate - quantized_bare) - (styled - bare)).norm().item() / (styled - bare).norm().item()

    effect, bare_error, styled_error = (compare(styled, bare).kl, compare(bare, quantized_bare).kl,
                                        compare(styled, folded).kl)
    print(f"{weights}: effect KL {effect:.2e}, bare error {bare_error:.2e}, adapted error {styled_error:.2e} "
          f"(unfolded {compare(styled, unfolded).kl:.2e}); the adapter's change off by {off(folded):.3f}, "
          f"unfolded {off(unfolded):.3f}")
    assert effect > 20 * bare_error, (effect, bare_error)  # the adapter's effect stands far above the error
    # the adapter's change of the logits is fp32's within the weights' own relative error (quantize.py: about 1 %
    # for int8, 7-9 % for int4 per weight), measured 1.3 % and 8.5 %; unfolded it is 87 % off (the control)
    assert off(folded) < {"int8": 0.03, "int4": 0.15}[weights] and off(unfolded) > 0.5, (off(folded), off(unfolded))
    assert styled_error < 0.02 * effect and compare(styled, unfolded).kl > 0.2 * effect
    torch.testing.assert_close(logits(quantized), quantized_bare, rtol=0, atol=0)  # nothing left behind


def test_an_adapted_request_leaves_the_batch_beside_it_untouched(outlier_model, tmp_path):
    """Continuous batching on the CPU defaults (int8 weights, int8 cache, fused attention; bit-exact alone or in a
    batch, inference/musicgen/batching.py): a bare request that an adapted one interrupts renders bit for bit as it
    does alone, and the adapted one as it does alone. The control: the adapter does change its own render."""
    model_dir, adapter = outlier_model
    engine = load_engine(resolve_model(str(model_dir), tiny_dir=tmp_path), device="cpu", weights="int8",
                         warm_up=False)
    assert engine.info.modes["calibration"]["equalized"]
    bare = GenerationRequest(prompt="warm piano", duration_s=3.0, seed=5)
    adapted = dataclasses.replace(bare, duration_s=0.5, seed=6, adapter=adapter)
    bare_alone, adapted_alone = engine.generate(bare).audio, engine.generate(adapted).audio
    assert not np.array_equal(adapted_alone, engine.generate(dataclasses.replace(adapted, adapter=None)).audio)
    order, results = [], {}

    def adapted_step() -> bool:
        order.append("adapted")
        return False

    def render_adapted() -> None:
        results["adapted"] = engine.generate(adapted, should_cancel=adapted_step).audio

    helper = threading.Thread(target=render_adapted)

    def bare_step() -> bool:
        order.append("bare")
        if order.count("bare") == 5:
            helper.start()
        return False

    results["bare"] = engine.generate(bare, should_cancel=bare_step).audio
    helper.join(timeout=60)
    first, last = order.index("adapted"), len(order) - 1 - order[::-1].index("adapted")
    assert "bare" in order[:first] and "bare" in order[last:], "the adapted request ran inside the bare one"
    np.testing.assert_array_equal(results["bare"], bare_alone)
    np.testing.assert_array_equal(results["adapted"], adapted_alone)
