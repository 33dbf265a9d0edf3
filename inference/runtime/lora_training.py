"""The one LoRA training loop every family's style training runs (inference/musicgen/training.py,
inference/acestep/training.py): schedule, progress, cancel, yielding between steps, checkpoints and resume.

A family's trainer subclasses `LoraTrainingLoop`: it injects peft's LoRA into its `module`, calls
`start_optimizer()`, and defines `backward(indices, step)` (one step's gradients over the clips at indices; the
step's loss) and `adapter()` (the trained tensors in the family's format). The rest is here, once:

- **Schedule**: `epochs` passes over the clips in batches of `batch_size`; epoch e's order is a shuffle seeded from
  (seed, e), so a step's data depends on its index alone.
- **Randomness**: a step runs on the trainer's own torch RNG stream (seeded from the seed at the start, carried from
  step to step, restored around each step with fork_rng), so nothing else in the process (a daemon's renders) moves
  it and it moves nothing else; the families' draws (t and noise, caption dropout) use their own seeded generators
  on top.
- **Control**: `run(on_step, should_cancel, between_steps, call)`: `between_steps()` before each step (where the
  daemon lets its renders go first), cancel between steps (Cancelled; the last checkpoint stays for a resume),
  `call(function)` where each step's torch work runs (a serving engine's compute thread), progress after each step
  (epoch, step, loss, ETA).
- **Checkpoint** (`checkpoint.pt` in the work folder, every `checkpoint_every` steps and at the end, written to a
  partial name and renamed): the LoRA tensors, AdamW's state, the losses so far, the RNG stream and `data_hash` (every
  clip's data and caption, and the options). `resume` refuses a checkpoint made from other clips or options; an
  interrupted run resumed from its last checkpoint ends on the same adapter, bit for bit on the CPU, as one that
  never stopped (tested for both families).
- **Base weights** (`training_base_weights`, `quantize_base_`): how the frozen base runs under the LoRA. `auto` is
  QLoRA on CUDA where bitsandbytes has its CUDA kernels (inference/runtime/device.py:check_bitsandbytes, the check
  `continuo doctor` shows): every linear but the heads swapped for a bitsandbytes nf4 Linear4bit
  (inference/runtime/quantize.py:swap_bnb_, the inference path's one swap, its matmuls in bf16, fp16 on GPUs
  without bf16), and peft's bnb LoRA layers on them (the model is marked `is_loaded_in_4bit`, as peft's
  prepare_model_for_kbit_training expects; the other weights, norms and embeddings, stay fp32, so nothing else of
  that preparation applies). Everywhere else `auto` is the CPU twin, the same code at fp32. By name: fp32; bf16
  (fp32 weights, each step under torch.autocast at bf16: the CPU's AVX-512 BF16, or a GPU's tensor cores; the
  LoRA and AdamW stay fp32); bnb-nf4 (also on the CPU, slowly, through bitsandbytes' CPU path: what the tests use
  to run the QLoRA code here).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from inference.adapters import LoraHyperparameters
from inference.errors import Cancelled, InferenceError

log = logging.getLogger("continuo.inference")

CHECKPOINT_NAME = "checkpoint.pt"
BASE_WEIGHTS = ("auto", "fp32", "bf16", "bnb-nf4")  # the base_weights a style training takes (module docstring)
GPU_JOB_PARAMETERS = 100_000_000  # a trained network above this many weights is a GPU job on a CPU (musicgen-small's
# decoder is 420M, ACE-Step 1.5 turbo's DiT 1.6B)


@dataclass(frozen=True)
class LoraTrainingOptions(LoraHyperparameters):
    """How a style adapter is trained; every field by name (CLI flags, the request's settings)."""

    epochs: int = 4
    batch_size: int = 2
    checkpoint_every: int = 50
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.rank < 1 or self.epochs < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("rank, epochs, batch_size and checkpoint_every must be at least 1")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be above 0")


@dataclass(frozen=True)
class BaseWeights:
    """How the frozen base runs while its LoRA trains (`training_base_weights`)."""

    mode: str  # fp32, bf16 (autocast over fp32 weights) or bnb-nf4 (QLoRA)
    compute_dtype: torch.dtype  # the base's matmuls
    reason: str  # why this mode, for the report and the card

    @property
    def autocast(self) -> bool:
        return self.mode == "bf16"

    def describe(self) -> str:
        return f"{self.mode} ({self.reason})"


FP32_BASE = BaseWeights("fp32", torch.float32, "requested")


def training_base_weights(device: torch.device, requested: str = "auto", *, bitsandbytes=None) -> BaseWeights:
    """The base weights for training on device (module docstring); InferenceError naming the choices for a mode
    the device cannot run. bitsandbytes(): the DeviceCheck of bitsandbytes' CUDA kernels (default: doctor's)."""
    from inference.runtime.quantize import WeightMode, resolve_weight_mode

    device = torch.device(device)
    name = requested.strip().lower()
    if name not in BASE_WEIGHTS:
        raise InferenceError(f"unknown base weights {requested!r} for training; choose one of "
                             f"{', '.join(BASE_WEIGHTS)}")
    if name == "auto":
        if device.type != "cuda":
            return BaseWeights("fp32", torch.float32, f"auto on {device.type}: QLoRA's 4-bit base needs CUDA")
        if bitsandbytes is None:
            from inference.runtime.device import check_bitsandbytes as bitsandbytes
        check = bitsandbytes()
        if not check.usable:
            return BaseWeights("fp32", torch.float32, f"auto on CUDA without QLoRA: bitsandbytes {check.reason}")
        name, why = "bnb-nf4", f"auto on CUDA: QLoRA, bitsandbytes {check.reason}"
    else:
        why = "requested" if device.type == "cuda" or name != "bnb-nf4" else "requested; bitsandbytes' CPU path, slow"
    if name == "fp32":
        return BaseWeights("fp32", torch.float32, why)
    try:  # a GPU without bf16, bitsandbytes missing, Apple's GPU: refused with what to use instead
        resolve_weight_mode(WeightMode.BF16 if name == "bf16" else WeightMode.BNB_NF4, device)
    except ValueError as error:
        raise InferenceError(f"base weights for training: {error}") from None
    if name == "bf16":
        return BaseWeights("bf16", torch.bfloat16, why)
    bf16 = device.type != "cuda" or torch.cuda.is_bf16_supported()
    return BaseWeights("bnb-nf4", torch.bfloat16 if bf16 else torch.float16, why)


def quantize_base_(module: torch.nn.Module, base: BaseWeights, device: torch.device) -> torch.nn.Module:
    """module's linears (but the heads) as bitsandbytes nf4 on device where base is bnb-nf4, quantized one layer
    at a time on their way there (call it with module still on the CPU: the device never holds it whole at fp32),
    and the module marked for peft's bnb LoRA layers; unchanged otherwise."""
    if base.mode != "bnb-nf4":
        return module
    from inference.runtime.quantize import WeightMode, swap_bnb_

    swap_bnb_(module, WeightMode.BNB_NF4, torch.device(device), compute_dtype=base.compute_dtype)
    module.is_loaded_in_4bit = True  # peft wraps Linear4bit with its bnb LoRA layer only on a model marked so
    return module


def count_weights(module: torch.nn.Module) -> int:
    """module's weights, each counted once at its full shape (an nf4 weight packs two in a byte)."""
    state = (getattr(p, "quant_state", None) for p in module.parameters())
    return sum(q.shape.numel() if q is not None else p.numel() for p, q in zip(module.parameters(), state))


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
    lora: Any  # the family's adapter tensors (LoraTrainingLoop.adapter)
    steps: int
    final_loss: float
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int = 0


def data_hash(items: Iterable[tuple[str, bytes]], options: LoraTrainingOptions) -> str:
    """What a checkpoint was made from: every clip's (caption, data bytes), in order, and the options."""
    digest = hashlib.sha256(json.dumps(asdict(options), sort_keys=True).encode())
    for caption, data in items:
        digest.update(caption.encode() + b"\0")
        digest.update(data)
    return digest.hexdigest()


class LoraTrainingLoop:
    """The loop of a family's LoRA trainer (module docstring). A subclass sets module, clips, options, work_dir,
    device and data_hash, then calls start_optimizer()."""

    module: torch.nn.Module  # the model holding the LoRA parameters (the only ones that require grad)
    clips: Sequence
    options: LoraTrainingOptions
    work_dir: Path
    device: torch.device
    data_hash: str
    base_weights: BaseWeights = FP32_BASE  # bf16: each step under autocast

    def start_optimizer(self) -> None:
        self.parameters = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=self.options.learning_rate,
                                           weight_decay=self.options.weight_decay)
        self.step_index = 0
        self.losses: list[float] = []
        with torch.random.fork_rng(devices=self.rng_devices):
            torch.manual_seed(self.options.seed)
            self.rng_state = self.get_rng()

    # ---- what a family defines ----------------------------------------------------------------------------------

    def backward(self, indices: list[int], step: int) -> torch.Tensor:
        """Gradients of step's loss over the clips at indices (into the LoRA parameters); the loss (detached)."""
        raise NotImplementedError

    def adapter(self) -> Any:
        """The trained LoRA tensors in the family's format."""
        raise NotImplementedError

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

    @property
    def rng_devices(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    def get_rng(self) -> dict:
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def set_rng(self, state: dict) -> None:
        torch.set_rng_state(state["cpu"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def train_step(self) -> float:
        """One optimiser step on the next batch; its loss. Also on a thread in inference mode (the daemon's compute
        thread): gradients on here; the trainer's own RNG stream (module docstring)."""
        self.module.train()
        with torch.random.fork_rng(devices=self.rng_devices), torch.inference_mode(False), torch.enable_grad():
            self.set_rng(self.rng_state)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.base_weights.autocast):
                loss = self.backward(self.batch_indices(self.step_index), self.step_index)
            self.optimizer.step()
            self.rng_state = self.get_rng()
        self.step_index += 1
        value = float(loss)
        self.losses.append(value)
        return value

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
        """The LoRA tensors, AdamW's state, the losses and the RNG stream at this step, written to a partial name
        and renamed."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        state = {"step": self.step_index, "data_hash": self.data_hash, "losses": list(self.losses),
                 "lora": {name: p.detach().cpu() for name, p in self.module.named_parameters() if p.requires_grad},
                 "optimizer": self.optimizer.state_dict(), "rng": self.rng_state}
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
            named = dict(self.module.named_parameters())
            for name, tensor in state["lora"].items():
                named[name].copy_(tensor)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_index, self.losses = int(state["step"]), list(state["losses"])
        self.rng_state = state["rng"]
        log.info("style training resumed at step %d of %d from %s", self.step_index, self.total_steps,
                 self.checkpoint_path)
        return self.step_index


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory so far: CUDA's allocator peak on a GPU, this process's peak resident set on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@dataclass
class StyleModel:
    """A family's model loaded for style training (each family's `load_style_model`): what the bridge's job needs
    to cut clips for it, train it and write the adapter, with no family's insides in the bridge.

    make_trainer(clips, options, work_dir): a LoraTrainingLoop over [(audio (C, T) at sample_rate, caption)];
    write(directory, result, card): the adapter and card.json into a new directory (never over another)."""

    family: str
    format: str  # the weight file's format, for the card
    sample_rate: int
    channels: int
    window_s: float  # the default clip length
    fingerprint: str  # the base checkpoint's (inference/runtime/plans.py:checkpoint_fingerprint)
    parameters: int  # the trained network's weights (a real-size one on a CPU is a GPU job)
    device: torch.device
    options_type: type[LoraTrainingOptions]
    make_trainer: Callable[[Sequence, LoraTrainingOptions, Path], LoraTrainingLoop]
    write: Callable[[Path, TrainingResult, dict], Path]
    conditioning: str = ""  # how captions condition it, for the card and the report
    base_weights: BaseWeights = FP32_BASE  # how the frozen base runs (QLoRA's nf4 on CUDA by default)

    def options(self, **fields) -> LoraTrainingOptions:
        """The family's options from the fields it takes (others, e.g. MusicGen's caption dropout, at defaults)."""
        names = {f for f in self.options_type.__dataclass_fields__}
        return self.options_type(**{name: value for name, value in fields.items() if name in names})
