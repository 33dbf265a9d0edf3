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
- **Order and resume**: the clips of epoch e are shuffled by a generator seeded from (seed, e), a step's caption
  dropout from (seed, step): a step's data depends on its index alone. A checkpoint (`checkpoint.pt` in the work
  folder, every `checkpoint_every` steps and at the end) holds the LoRA tensors, AdamW's state, the losses so far and
  a hash of the clips and options; `resume` refuses one made from other clips or options. So an interrupted run
  resumed from its last checkpoint ends on the same adapter, bit for bit on the CPU, as one that never stopped
  (tested).
- **Control**: `run(on_step=..., should_cancel=..., between_steps=...)`: progress after each step (epoch, step, loss,
  ETA), cancel between steps (the last checkpoint stays for a resume), and `between_steps()` where the caller lets
  other work go first (the daemon's renders).

MusicGen-melody checkpoints (a chroma prefix, no cross-attention) are refused: not built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.adapters import LoraHyperparameters
from inference.errors import Cancelled, InferenceError
from inference.musicgen.decode import build_delay_pattern
from inference.musicgen.lora import PEFT_TARGETS, LoraWeights

log = logging.getLogger("continuo.inference")

CHECKPOINT_NAME = "checkpoint.pt"
GPU_JOB_PARAMETERS = 100_000_000  # a decoder above this many weights is a GPU job (musicgen-small's is 420M)


@dataclass(frozen=True)
class TrainingOptions(LoraHyperparameters):
    """How a style adapter is trained; every field by name (CLI flags, the request's settings)."""

    epochs: int = 4
    batch_size: int = 2
    checkpoint_every: int = 50
    caption_dropout: float = 0.1
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.rank < 1 or self.epochs < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("rank, epochs, batch_size and checkpoint_every must be at least 1")
        if not (0.0 <= self.caption_dropout < 1.0) or not self.learning_rate > 0:
            raise ValueError("caption_dropout must be in [0, 1) and learning_rate above 0")


@dataclass(frozen=True)
class TrainingClip:
    """A clip's codes (K, F) and its caption."""

    codes: torch.Tensor
    caption: str


@dataclass(frozen=True)
class TrainingProgress:
    step: int  # steps done
    steps: int
    epoch: int  # 1-based
    epochs: int
    loss: float
    eta_s: float


@dataclass
class TrainingResult:
    lora: LoraWeights
    steps: int
    final_loss: float
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int = 0


def load_training_engine(checkpoint: Path, device: str = "cpu"):
    """Our engine on checkpoint's fp32 weights (sdpa attention, no calibration), its decoder of plain nn.Linear
    layers (peft wraps those; the serving path's oneDNN-packed ones it cannot): the model training adapts."""
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
        engine.decoder = build_decoder(engine.args, state).to(target)  # plain layers; the packed ones go
    engine.decoder.set_attention_backend("sdpa")
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
    digest = hashlib.sha256(json.dumps(asdict(options), sort_keys=True).encode())
    for clip in clips:
        digest.update(clip.caption.encode() + b"\0")
        digest.update(clip.codes.to(torch.int64).numpy().tobytes())
    return digest.hexdigest()


class StyleTrainer:
    """peft's LoRA on a training engine's decoder (which it changes: the engine is the trainer's alone)."""

    def __init__(self, engine, clips: Sequence[TrainingClip], options: TrainingOptions, work_dir: Path):
        if engine.args.conditioning != "cross":
            raise InferenceError("style training of MusicGen-melody checkpoints is not built; train on a MusicGen "
                                 "checkpoint (facebook/musicgen-small and its kind)")
        if not clips:
            raise InferenceError("no clips to train on")
        self.engine, self.clips, self.options = engine, list(clips), options
        self.work_dir = Path(work_dir)
        self.decoder = engine.decoder
        self.device = engine.device
        self.args = engine.args
        self.data_hash = clips_hash(self.clips, options)
        self.modules = inject_lora_(self.decoder, options)
        self.parameters = [p for p in self.decoder.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=options.learning_rate,
                                           weight_decay=options.weight_decay)
        self.step_index = 0
        self.losses: list[float] = []

    # ---- the schedule -----------------------------------------------------------------------------------------

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.clips) / self.options.batch_size)

    @property
    def total_steps(self) -> int:
        return self.options.epochs * self.batches_per_epoch

    def batch_indices(self, step: int) -> list[int]:
        """The clips of step (0-based): epoch e's shuffle, seeded from (seed, e)."""
        epoch, index = divmod(step, self.batches_per_epoch)
        order = torch.randperm(len(self.clips), generator=torch.Generator().manual_seed(
            self.options.seed * 1_000_003 + epoch))
        size = self.options.batch_size
        return order[index * size:(index + 1) * size].tolist()

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

    def train_step(self) -> float:
        """One optimiser step on the next batch; its loss. Also on a thread in inference mode (the daemon's compute
        thread): gradients on here."""
        self.decoder.train()
        with torch.inference_mode(False), torch.enable_grad():
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.batch_indices(self.step_index), self.step_index)
            loss.backward()
            self.optimizer.step()
        self.step_index += 1
        value = float(loss.detach())
        self.losses.append(value)
        return value

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

    # ---- the run ----------------------------------------------------------------------------------------------

    def run(self, *, on_step: Callable[[TrainingProgress], None] | None = None,
            should_cancel: Callable[[], bool] | None = None, between_steps: Callable[[], None] | None = None,
            stop_after: int | None = None, call: Callable | None = None) -> TrainingResult:
        """Train to total_steps (or stop_after steps in all), checkpointing; Cancelled when should_cancel() says so
        between steps (the last checkpoint is kept for resume). call(function): where each step's torch work runs
        (a serving engine's compute thread, inference/api.py:Compute.call); None: here."""
        started, first = time.monotonic(), self.step_index
        end = self.total_steps if stop_after is None else min(self.total_steps, stop_after)
        while self.step_index < end:
            if between_steps is not None:
                between_steps()
            if should_cancel is not None and should_cancel():
                saved = self.saved_step()
                kept = (f"the checkpoint of step {saved} is kept: run it again to resume" if saved else
                        f"no checkpoint yet (one every {self.options.checkpoint_every} steps): run it again to start "
                        "over")
                raise Cancelled(f"style training cancelled after {self.step_index} of {self.total_steps} steps; "
                                + kept)
            loss = self.train_step() if call is None else call(self.train_step)
            if self.step_index % self.options.checkpoint_every == 0 or self.step_index == self.total_steps:
                self.save_checkpoint()
            if on_step is not None:
                done = self.step_index - first
                eta = (time.monotonic() - started) / done * (self.total_steps - self.step_index)
                on_step(TrainingProgress(step=self.step_index, steps=self.total_steps,
                                         epoch=(self.step_index - 1) // self.batches_per_epoch + 1,
                                         epochs=self.options.epochs, loss=loss, eta_s=eta))
        return TrainingResult(lora=self.adapter(), steps=self.step_index,
                              final_loss=self.losses[-1] if self.losses else math.nan, losses=list(self.losses),
                              seconds=time.monotonic() - started, resumed_from=first)

    def adapter(self) -> LoraWeights:
        """The trained LoRA tensors, in our format's names."""
        pairs = {name: (module.lora_A["default"].weight.detach().cpu().clone(),
                        module.lora_B["default"].weight.detach().cpu().clone())
                 for name, module in self.modules.items()}
        return LoraWeights(pairs=pairs, rank=self.options.rank, alpha=self.options.alpha, dim=self.args.dim,
                           n_layer=self.args.n_layer, base_fingerprint=getattr(self.engine, "fingerprint", ""))

    # ---- checkpoints ------------------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.work_dir / CHECKPOINT_NAME

    def saved_step(self) -> int:
        try:
            return int(torch.load(self.checkpoint_path, weights_only=True)["step"])
        except (OSError, KeyError, RuntimeError):
            return 0

    def save_checkpoint(self) -> None:
        """The LoRA tensors, AdamW's state and the losses at this step, written to a partial name and renamed."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        state = {"step": self.step_index, "data_hash": self.data_hash, "losses": list(self.losses),
                 "lora": {name: p.detach().cpu() for name, p in self.decoder.named_parameters() if p.requires_grad},
                 "optimizer": self.optimizer.state_dict()}
        partial = self.checkpoint_path.with_name(f".{CHECKPOINT_NAME}.partial")
        torch.save(state, partial)
        os.replace(partial, self.checkpoint_path)

    def resume(self) -> int:
        """Continue from work_dir's checkpoint where there is one (its step; 0 when none). InferenceError when it
        was made from other clips or options."""
        if not self.checkpoint_path.is_file():
            return 0
        state = torch.load(self.checkpoint_path, weights_only=True)
        if state["data_hash"] != self.data_hash:
            raise InferenceError(f"the checkpoint in {self.work_dir} was made from other recordings or options; "
                                 "train with the same folder and options to resume, or under another name")
        with torch.no_grad():
            named = dict(self.decoder.named_parameters())
            for name, tensor in state["lora"].items():
                named[name].copy_(tensor)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_index, self.losses = int(state["step"]), list(state["losses"])
        log.info("style training resumed at step %d of %d from %s", self.step_index, self.total_steps,
                 self.checkpoint_path)
        return self.step_index


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


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory so far: CUDA's allocator peak on a GPU, this process's peak resident set on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
