"""Training a MusicGen LoRA (a musician's style) on our decoder: peft on the attention projections, teacher-forced
cross-entropy on the codec's codes of their clips.

- **Model**: the checkpoint's own fp32 weights (`load_training_engine`: our engine at fp32, sdpa, no calibration:
  its decoder, T5, EnCodec and tokenizer; never the serving engine's int8 / int4 decoder). peft's LoRA
  (`inject_adapter_in_model`, rank 8 and alpha 16 by default) on the projections of inference/musicgen/lora.py's
  TARGETS; every other weight frozen. The decoder runs its own forward without a KV cache (model.py: a layer with
  no cache attends causally over the whole sequence), so the parity that matters is checked by the tests: peft's
  forward equals our engine's side path and our merge of the saved file.
- **Data**: each clip's codes from the engine's EnCodec (`encode_clip`), laid out in the delay pattern (decode.py);
  the loss is the mean cross-entropy over every real code of positions 1..L-1 (pads are not targets), conditioned
  on the clip's caption through T5 (frozen, no_grad) and the decoder's cross-attention projections (trained). A
  share of the rows (`caption_dropout`, 0.1) is conditioned on the null text instead, as MusicGen was trained, so
  classifier-free guidance keeps working on the adapted model. A batch is cut to its shortest clip.
- **Loop** (inference/runtime/lora_training.py, shared with ACE-Step): epoch e's shuffle seeded from (seed, e), a
  step's caption dropout from (seed, step); progress, cancel and `between_steps()` between steps; checkpoints of the
  LoRA tensors, AdamW's state, the losses, the RNG stream and a hash of the clips (their codes and captions) and
  options; an interrupted run resumed from its last checkpoint ends on the same adapter, bit for bit on the CPU
  (tested).
- **The job** (`load_style_model`): what bridge/jobs/style_training.py drives: the training engine, clips encoded
  by its codec, the adapter written with its card (inference/musicgen/lora.py:write_adapter_dir).

MusicGen-melody checkpoints (a chroma prefix, no cross-attention) are refused: not built.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.errors import InferenceError
from inference.musicgen.decode import build_delay_pattern
from inference.musicgen.lora import PEFT_TARGETS, LoraWeights
from inference.runtime.lora_training import (
    LoraTrainingLoop,
    LoraTrainingOptions,
    StyleModel,
    count_weights,
    data_hash,
    quantize_base_,
    training_base_weights,
)

log = logging.getLogger("continuo.inference")


@dataclass(frozen=True)
class TrainingOptions(LoraTrainingOptions):
    """MusicGen's: the shared options and the share of captions dropped (classifier-free guidance keeps working)."""

    caption_dropout: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        if not (0.0 <= self.caption_dropout < 1.0):
            raise ValueError("caption_dropout must be in [0, 1)")


@dataclass(frozen=True)
class TrainingClip:
    """A clip's codes (K, F) and its caption."""

    codes: torch.Tensor
    caption: str


def load_training_engine(checkpoint: Path, device: str = "cpu", base_weights: str = "auto"):
    """Our engine on checkpoint's fp32 weights (sdpa attention, no calibration), its decoder of plain nn.Linear
    layers (peft wraps those; the serving path's oneDNN-packed ones it cannot), or of nf4 Linear4bit where the
    base weights are QLoRA's (inference/runtime/lora_training.py:training_base_weights; auto: on CUDA with
    bitsandbytes): the model training adapts. engine.base_weights says which."""
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    from inference.musicgen.engine import EngineOptions, engine_from_hf_model
    from inference.musicgen.model import build_decoder
    from inference.runtime.device import pick_device
    from inference.runtime.plans import checkpoint_fingerprint

    checkpoint = Path(checkpoint)
    target = pick_device(device)
    with torch.inference_mode(False):  # a serving compute thread runs in inference mode: these weights need autograd
        processor = AutoProcessor.from_pretrained(checkpoint, local_files_only=True)
        model = MusicgenForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32,
                                                                 local_files_only=True).eval()
        engine = engine_from_hf_model(model, processor.tokenizer, device=target, name=checkpoint.name,
                                      options=EngineOptions(weights="fp32", attention="sdpa", calibrate=False,
                                                            max_batch=1))
        state = {name: tensor.detach() for name, tensor in model.state_dict().items()
                 if name.startswith(("decoder.", "enc_to_dec_proj."))}
        base = training_base_weights(target, base_weights)
        decoder = quantize_base_(build_decoder(engine.args, state), base, target)  # on the CPU, then nf4 there
        engine.decoder = decoder.to(target)  # plain layers (or nf4); the packed ones go
    engine.decoder.set_attention_backend("sdpa")
    engine.base_weights = base
    engine.fingerprint = checkpoint_fingerprint(checkpoint)
    return engine


def encode_clip(engine, audio: np.ndarray) -> torch.Tensor:
    """(C, T) audio at the model's rate -> codes (K, F) from the engine's codec (a normal tensor, not an inference
    one: the embeddings save their indices for backward)."""
    prompt = engine.prepare_prompt(audio)
    with torch.inference_mode():
        codes = engine.encode_prompt(prompt, 1)[0]
    with torch.inference_mode(False):
        return codes.clone().cpu()


def clips_hash(clips: Sequence[TrainingClip], options: TrainingOptions) -> str:
    """What a checkpoint was made from: every clip's codes and caption, and the options."""
    return data_hash(((clip.caption, clip.codes.to(torch.int64).numpy().tobytes()) for clip in clips), options)


class StyleTrainer(LoraTrainingLoop):
    """peft's LoRA on a training engine's decoder (which it changes: the engine is the trainer's alone); the loop,
    checkpoints and resume are inference/runtime/lora_training.py's."""

    def __init__(self, engine, clips: Sequence[TrainingClip], options: TrainingOptions, work_dir: Path):
        if engine.args.conditioning != "cross":
            raise InferenceError("style training of MusicGen-melody checkpoints is not built; train on a MusicGen "
                                 "checkpoint (facebook/musicgen-small and its kind)")
        if not clips:
            raise InferenceError("no clips to train on")
        self.engine, self.clips, self.options = engine, list(clips), options
        self.work_dir = Path(work_dir)
        self.decoder = self.module = engine.decoder
        self.device = engine.device
        self.args = engine.args
        self.data_hash = clips_hash(self.clips, options)
        self.base_weights = getattr(engine, "base_weights", self.base_weights)
        self.modules = inject_lora_(self.decoder, options)
        self.start_optimizer()

    # ---- one step ---------------------------------------------------------------------------------------------

    def loss(self, indices: list[int], step: int | None = None) -> torch.Tensor:
        """Teacher-forced cross-entropy of the clips at indices (module docstring); step: its caption dropout."""
        clips = [self.clips[i] for i in indices]
        frames = min(clip.codes.shape[-1] for clip in clips)
        codes = torch.stack([clip.codes[:, :frames] for clip in clips]).to(self.device)  # (B, K, F)
        pattern = build_delay_pattern(codes, frames, self.args.audio_channels, self.args.pad_id)  # (B, K, L)
        drop = [False] * len(clips)
        if step is not None and self.options.caption_dropout > 0:
            draws = torch.rand(len(clips), generator=torch.Generator().manual_seed(self.options.seed * 7919 + step))
            drop = (draws < self.options.caption_dropout).tolist()
        return pattern_loss(self.decoder, pattern, self.condition([clip.caption for clip in clips], drop))

    def backward(self, indices: list[int], step: int) -> torch.Tensor:
        loss = self.loss(indices, step)
        loss.backward()
        return loss.detach()

    def condition(self, captions: list[str], drop: list[bool]):
        """Cross-attention memory for one caption per row (T5 frozen; the projections carry gradients); a dropped
        row gets the null condition (zero text, no token), as classifier-free guidance's null row."""
        with torch.no_grad():
            encoded = [self.engine.encode_text(caption, ()) for caption in captions]
        length = max(states.shape[1] for states, _ in encoded)
        states = torch.zeros((len(captions), length, encoded[0][0].shape[-1]), device=self.device)
        mask = torch.zeros((len(captions), length), dtype=torch.long, device=self.device)
        for row, ((text, text_mask), dropped) in enumerate(zip(encoded, drop)):
            if not dropped:
                states[row, :text.shape[1]] = text[0].float()
                mask[row, :text.shape[1]] = text_mask[0]
        return self.decoder.encode_memory(states, mask)

    @torch.no_grad()
    def held_out_loss(self, clips: Sequence[TrainingClip]) -> float:
        """Mean loss over clips (each its own row, no caption dropout): the measure the tests compare."""
        self.decoder.eval()
        saved = self.clips
        try:
            self.clips = list(clips)
            return float(np.mean([float(self.loss([i])) for i in range(len(clips))]))
        finally:
            self.clips = saved

    def adapter(self) -> LoraWeights:
        """The trained LoRA tensors, in our format's names."""
        pairs = {name: (module.lora_A["default"].weight.detach().cpu().clone(),
                        module.lora_B["default"].weight.detach().cpu().clone())
                 for name, module in self.modules.items()}
        return LoraWeights(pairs=pairs, rank=self.options.rank, alpha=self.options.alpha, dim=self.args.dim,
                           n_layer=self.args.n_layer, base_fingerprint=getattr(self.engine, "fingerprint", ""))


def pattern_loss(decoder, pattern: torch.Tensor, memory) -> torch.Tensor:
    """Mean cross-entropy of positions 1..L-1 of a delayed pattern (B, K, L) of known codes, each predicted from the
    positions before it (one causal forward, no cache); pads are not targets."""
    length = pattern.shape[2] - 1
    input_pos = torch.arange(length, device=pattern.device)
    logits = decoder.logits(pattern[:, :, :length], input_pos, memory, None, last_only=False)  # (B, K, L-1, V)
    targets = pattern[:, :, 1:]
    valid = targets != decoder.args.pad_id
    return F.cross_entropy(logits[valid], targets[valid])


def inject_lora_(decoder: torch.nn.Module, options: TrainingOptions) -> dict[str, torch.nn.Module]:
    """peft's LoRA layers on decoder's attention projections (A seeded from options.seed, B zero: the adapted model
    starts as the base); every other weight frozen. {module name: peft's LoRA layer}."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=options.rank, lora_alpha=options.alpha, target_modules=PEFT_TARGETS, lora_dropout=0.0,
                        bias="none")
    for parameter in decoder.parameters():
        parameter.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        inject_adapter_in_model(config, decoder)
    modules = {name: module for name, module in decoder.named_modules() if hasattr(module, "lora_A")}
    for name, parameter in decoder.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return modules


def load_style_model(checkpoint: Path, device: str = "cpu", base_weights: str = "auto") -> StyleModel:
    """checkpoint's training engine as the style-training job takes it (inference/runtime/lora_training.py)."""
    from inference.musicgen.lora import FORMAT, write_adapter_dir

    engine = load_training_engine(checkpoint, device=device, base_weights=base_weights)

    def make_trainer(clips, options: TrainingOptions, work_dir: Path) -> StyleTrainer:
        encoded = [TrainingClip(encode_clip(engine, audio), caption) for audio, caption in clips]
        return StyleTrainer(engine, encoded, options, work_dir)

    return StyleModel(family="musicgen", format=FORMAT, sample_rate=engine.info.sample_rate,
                      channels=engine.info.channels, window_s=engine.info.max_duration_s,
                      fingerprint=engine.fingerprint,
                      parameters=count_weights(engine.decoder), device=engine.device,
                      options_type=TrainingOptions, make_trainer=make_trainer,
                      write=lambda directory, result, card: write_adapter_dir(directory, result.lora, card),
                      conditioning="the clip's caption through T5 (10 % of steps' rows on the null text)",
                      base_weights=engine.base_weights)
