"""The base weights of style training (inference/runtime/lora_training.py:training_base_weights, quantize_base_):
QLoRA's nf4 on CUDA where bitsandbytes has its kernels, the fp32 CPU twin elsewhere, bf16 autocast by name.

The selection runs here with bitsandbytes' device check given (a usable one and, as the control, one without CUDA
kernels); the nf4 code path itself runs here through bitsandbytes' CPU path on the tiny MusicGen (structure: nf4
layers, peft's bnb LoRA on them, a step that moves only the LoRA); the real thing, nf4 on CUDA, is the gpu test."""

from __future__ import annotations

import pytest
import torch

from inference.errors import InferenceError
from inference.runtime.device import DeviceCheck
from inference.runtime.lora_training import count_weights, quantize_base_, training_base_weights

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def with_kernels():
    return DeviceCheck("bitsandbytes", True, "version 9 with CUDA kernels: int8/4-bit weights")


def without_kernels():
    return DeviceCheck("bitsandbytes", False, "version 9 has no CUDA kernels for this setup (backend cpu)")


def test_auto_is_qlora_on_cuda_with_bitsandbytes_kernels_and_fp32_elsewhere(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    qlora = training_base_weights(CUDA, "auto", bitsandbytes=with_kernels)
    assert (qlora.mode, qlora.compute_dtype, qlora.autocast) == ("bnb-nf4", torch.bfloat16, False)
    assert "QLoRA" in qlora.reason
    # controls: CUDA without bitsandbytes' kernels, and the CPU, take the fp32 twin and say why
    plain = training_base_weights(CUDA, "auto", bitsandbytes=without_kernels)
    assert (plain.mode, plain.compute_dtype) == ("fp32", torch.float32) and "no CUDA kernels" in plain.reason
    cpu = training_base_weights(CPU, "auto", bitsandbytes=with_kernels)
    assert cpu.mode == "fp32" and "needs CUDA" in cpu.reason
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a pre-Ampere GPU: fp16 matmuls
    assert training_base_weights(CUDA, "auto", bitsandbytes=with_kernels).compute_dtype == torch.float16


def test_named_modes_and_refusals(monkeypatch):
    assert training_base_weights(CPU, "fp32").mode == "fp32"
    bf16 = training_base_weights(CPU, "BF16")
    assert (bf16.mode, bf16.autocast) == ("bf16", True)
    assert "CPU path" in training_base_weights(CPU, "bnb-nf4").reason
    with pytest.raises(InferenceError, match="choose one of auto, fp32, bf16, bnb-nf4"):
        training_base_weights(CPU, "int8")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(InferenceError, match="bfloat16.*use fp16"):
        training_base_weights(CUDA, "bf16")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from inference.musicgen.tiny import build_tiny_musicgen

    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny-qlora") / "mono", seed=0)


def one_step(engine, tmp_path):
    """A trainer on engine (one clip of random codes), its LoRA before and after one step, and the trainer."""
    from inference.musicgen.training import StyleTrainer, TrainingClip, TrainingOptions

    codes = torch.randint(0, 2048, (4, 40), generator=torch.Generator().manual_seed(0))
    options = TrainingOptions(rank=4, alpha=8, learning_rate=1e-2, epochs=1, batch_size=1, caption_dropout=0.0)
    trainer = StyleTrainer(engine, [TrainingClip(codes, "warm piano")], options, tmp_path)
    before = {name: p.detach().clone() for name, p in engine.decoder.named_parameters()}
    loss = trainer.train_step()
    after = dict(engine.decoder.named_parameters())
    moved = {name for name, p in before.items() if not torch.equal(p, after[name].detach())}
    return trainer, loss, moved


def test_nf4_base_through_bitsandbytes_cpu_path(tiny_dir, tmp_path):
    import bitsandbytes as bnb
    from peft.tuners.lora.bnb import Linear4bit as LoraLinear4bit

    from inference.musicgen.training import load_training_engine

    engine = load_training_engine(tiny_dir, "cpu", base_weights="bnb-nf4")
    assert engine.base_weights.mode == "bnb-nf4"
    full = count_weights(load_training_engine(tiny_dir, "cpu", base_weights="fp32").decoder)
    assert count_weights(engine.decoder) == full  # nf4 packs two weights a byte: counted at full shape
    quantized = [name for name, module in engine.decoder.named_modules() if isinstance(module, bnb.nn.Linear4bit)]
    assert quantized and not any(name.startswith("heads.") for name in quantized)
    trainer, loss, moved = one_step(engine, tmp_path)
    assert all(isinstance(module, LoraLinear4bit) for module in trainer.modules.values())  # peft's bnb LoRA
    assert torch.isfinite(torch.tensor(loss)) and moved and all("lora_" in name for name in moved)


def test_fp32_twin_and_bf16_autocast_train_the_same_code(tiny_dir, tmp_path):
    from inference.musicgen.training import load_training_engine

    fp32 = load_training_engine(tiny_dir, "cpu")  # auto on the CPU
    assert fp32.base_weights.mode == "fp32"
    assert not any("Linear4bit" in type(m).__name__ for m in fp32.decoder.modules())  # control: nothing swapped
    _, loss_fp32, moved = one_step(fp32, tmp_path / "a")
    assert moved and all("lora_" in name for name in moved)
    bf16 = load_training_engine(tiny_dir, "cpu", base_weights="bf16")
    _, loss_bf16, _ = one_step(bf16, tmp_path / "b")
    assert loss_bf16 != loss_fp32 and abs(loss_bf16 - loss_fp32) < 0.05 * abs(loss_fp32)  # autocast ran, close


def test_quantize_base_leaves_other_modes_alone():
    module = torch.nn.Sequential(torch.nn.Linear(8, 8))
    assert quantize_base_(module, training_base_weights(CPU, "fp32"), CPU)[0].__class__ is torch.nn.Linear
    assert not hasattr(module, "is_loaded_in_4bit")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU with bitsandbytes' kernels (QLoRA)")
def test_qlora_on_cuda_trains_an_nf4_base(tiny_dir, tmp_path):
    import bitsandbytes as bnb

    from inference.musicgen.training import load_training_engine

    engine = load_training_engine(tiny_dir, "cuda")  # auto: QLoRA where the device takes it
    assert engine.base_weights.mode == "bnb-nf4", engine.base_weights.reason
    layers = [m for m in engine.decoder.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.weight.device.type == "cuda" and m.weight.dtype == torch.uint8 for m in layers)
    trainer, first, moved = one_step(engine, tmp_path)
    assert moved and all("lora_" in name for name in moved)
    losses = [trainer.train_step() for _ in range(20)]  # the same clip again and again: it is learnt
    assert losses[-1] < first
