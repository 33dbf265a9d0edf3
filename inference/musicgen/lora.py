"""MusicGen LoRA adapters: the file format, and our decoder with one applied (per request, or merged at load).

**The format** (`FORMAT` "continuo-musicgen-lora", version 1), what `inference/musicgen/training.py` writes: one
safetensors file of fp32 tensors `<module>.lora_A.weight` (r, in) and `<module>.lora_B.weight` (out, r), `<module>`
our decoder's name of an attention projection (`TARGETS`: `layers.{i}.attention.wqkv` and `.wo`, and where the
model has cross-attention `layers.{i}.cross_attention.wq`, `.wkv`, `.wo`; the fused qkv of the checkpoint's
q_proj / k_proj / v_proj is one LoRA of rank r over the three). Its safetensors metadata (strings) says `format`,
`version`, `rank`, `alpha`, `base_fingerprint` (inference/runtime/plans.py:checkpoint_fingerprint of the checkpoint
it was trained on) and the decoder's `dim` / `n_layer`. At weight w a module's output gains
w * alpha / rank * B(A(x)): peft's LoRA (scaling alpha / r, no dropout at inference). In a LoRA directory it is
`NAME/pytorch_lora_weights.safetensors` beside `NAME/card.json` (the training card), so inference/adapters.py lists
it as it lists a downloaded ACE-Step adapter and the `lora` request setting takes it by name.

**Applied per request** (`adapter_applied`): each target module is wrapped in a `LoraLinear` (its own module inside,
untouched, plus the side path) for the request and put back after it, also when it fails. The engine runs an adapted
request as its own ticket on the compute thread (inference/musicgen/engine.py:decode_adapted): the batch's other
requests wait at a step boundary while it decodes and never see the wrapped modules (a bare request it interrupts
renders bit for bit as it does alone on the int8 defaults, tested). Mixing adapted and bare rows in one batched
step: rows of two adapters, or with and without one, would need the side path masked per row in every target, which
is not built. The side path works over every weight mode: fp32, bf16, fp16, bitsandbytes and int8 / int4, with or
without calibration. Calibration's equalisation (inference/musicgen/calibration.py) rescales the projections' rows
and inputs (a layer computes diag(r) W diag(c) on x / c), which an adapter trained on the checkpoint does not know:
`fold` folds the same factors into the adapter (A diag(c), diag(r) B), so the side path runs on the layer's own
(scaled) input and adds exactly what peft's forward adds to the unscaled layer. What is left is the quantised
weights' error on the activations the adapter moves: on the tiny model with outlier channels the adapter's change of
the guided logits was the fp32 side path's within 1.3 % (int8) and 8.5 % (int4), and 87 % off unfolded
(tests/inference/musicgen/test_lora.py). The side path is fp32: two thin matmuls per target per step. Merging at
load (`merge_`, EngineOptions.lora, the daemon's `lora` setting) costs nothing per step: the adapter is added into
the fp32 weights before equalisation and int8 / int4 quantisation, for every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from inference.errors import InferenceError

FORMAT = "continuo-musicgen-lora"
VERSION = "1"
TARGETS = ("attention.wqkv", "attention.wo", "cross_attention.wq", "cross_attention.wkv", "cross_attention.wo")
PEFT_TARGETS = ["wqkv", "wo", "wq", "wkv"]  # the same modules as peft's target_modules (suffixes of their names)


@dataclass(frozen=True)
class LoraWeights:
    """An adapter in memory: {module name: (A (r, in), B (out, r))} and its scaling alpha / rank."""

    pairs: dict[str, tuple[Tensor, Tensor]]
    rank: int
    alpha: float
    base_fingerprint: str = ""
    dim: int = 0
    n_layer: int = 0

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def delta(self, name: str, weight: float = 1.0) -> Tensor:
        """weight * alpha / rank * B @ A: what the adapter adds to module `name`'s weight (out, in)."""
        a, b = self.pairs[name]
        return (b.float() @ a.float()) * (self.scaling * weight)

    def tensors(self) -> dict[str, Tensor]:
        out = {}
        for name, (a, b) in sorted(self.pairs.items()):
            out[f"{name}.lora_A.weight"] = a.detach().float().contiguous()
            out[f"{name}.lora_B.weight"] = b.detach().float().contiguous()
        return out

    def metadata(self) -> dict[str, str]:
        return {"format": FORMAT, "version": VERSION, "rank": str(self.rank), "alpha": repr(float(self.alpha)),
                "base_fingerprint": self.base_fingerprint, "dim": str(self.dim), "n_layer": str(self.n_layer)}


def save_adapter(path: Path, lora: LoraWeights) -> None:
    """The adapter as one safetensors file (the format above), written to a partial name and renamed."""
    from safetensors.torch import save_file

    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    save_file(lora.tensors(), str(partial), metadata=lora.metadata())
    partial.replace(path)


def load_adapter(path: Path) -> LoraWeights:
    """An adapter file of this format; InferenceError saying what the file is otherwise (an ACE-Step adapter, not
    safetensors, another version)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:
        raise InferenceError(f"{path} is not a readable safetensors file ({type(error).__name__}: {error})") from error
    if metadata.get("format") != FORMAT:
        raise InferenceError(f"{path} is not a MusicGen adapter of Continuo's format (metadata format "
                             f"{metadata.get('format')!r}, expected {FORMAT!r}): a diffusers LoRA is for ACE-Step; "
                             "train one for this model with `continuo train-style`")
    if metadata.get("version") != VERSION:
        raise InferenceError(f"{path} is format version {metadata.get('version')!r}; this Continuo reads {VERSION!r}")
    pairs = {}
    for key in tensors:
        if key.endswith(".lora_A.weight"):
            name = key.removesuffix(".lora_A.weight")
            b = tensors.get(f"{name}.lora_B.weight")
            if b is None:
                raise InferenceError(f"{path}: {name} has lora_A but no lora_B")
            pairs[name] = (tensors[key], b)
    return LoraWeights(pairs=pairs, rank=int(metadata["rank"]), alpha=float(metadata["alpha"]),
                       base_fingerprint=metadata.get("base_fingerprint", ""), dim=int(metadata.get("dim", 0)),
                       n_layer=int(metadata.get("n_layer", 0)))


def target_modules(decoder: nn.Module) -> dict[str, nn.Module]:
    """{name: module} of every attention projection an adapter may target in decoder."""
    names = {f"layers.{i}.{target}" for i in range(len(decoder.layers)) for target in TARGETS}
    return {name: module for name, module in decoder.named_modules() if name in names}


def check_fits(decoder: nn.Module, lora: LoraWeights, label: str) -> dict[str, nn.Module]:
    """The decoder's modules the adapter targets; InferenceError when a name or a shape does not fit."""
    modules = target_modules(decoder)
    for name, (a, b) in lora.pairs.items():
        module = modules.get(name)
        if module is None:
            raise InferenceError(f"LoRA adapter {label!r} targets {name}, which this model does not have: it was "
                                 f"trained on another model ({lora.n_layer} layers of {lora.dim})")
        out_features, in_features = linear_shape(module)
        if a.shape[1] != in_features or b.shape[0] != out_features or a.shape[0] != b.shape[1]:
            raise InferenceError(f"LoRA adapter {label!r} does not fit {name} ({out_features} x {in_features}, "
                                 f"adapter {tuple(b.shape)} @ {tuple(a.shape)}): it was trained on another model")
    return modules


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """(out_features, in_features) of a linear layer, plain or quantized."""
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    return int(module.out_features), int(module.in_features)


class LoraLinear(nn.Module):
    """A linear layer (any weight mode) plus the adapter's side path: base(x) + scaling * B(A(x))."""

    def __init__(self, base: nn.Module, a: Tensor, b: Tensor, scaling: float):
        super().__init__()
        self.base, self.scaling = base, scaling
        self.out_features, self.in_features = linear_shape(base)
        self.register_buffer("lora_a", a, persistent=False)
        self.register_buffer("lora_b", b, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        side = (x.to(self.lora_a.dtype) @ self.lora_a.T) @ self.lora_b.T
        return self.base(x) + (side * self.scaling).to(x.dtype)


@contextmanager
def adapter_applied(decoder: nn.Module, lora: LoraWeights, weight: float, label: str) -> Iterator[None]:
    """Every target of the adapter wrapped in a LoraLinear at `weight` for the block; the decoder's own modules back
    in place after it (also when the block raises)."""
    modules = check_fits(decoder, lora, label)
    device = next(decoder.parameters()).device
    swapped = []
    try:
        for name, (a, b) in lora.pairs.items():
            parent_name, attribute = name.rsplit(".", 1)
            parent = decoder.get_submodule(parent_name)
            wrapped = LoraLinear(modules[name], a.to(device, torch.float32), b.to(device, torch.float32),
                                 lora.scaling * weight)
            setattr(parent, attribute, wrapped)
            swapped.append((parent, attribute, modules[name]))
        yield
    finally:
        for parent, attribute, module in swapped:
            setattr(parent, attribute, module)


def fold(lora: LoraWeights, folds: dict[str, tuple[Tensor | None, Tensor | None]]) -> LoraWeights:
    """The adapter for an equalised decoder (calibration.Folds: module name -> (row factors r, input factors c)):
    A diag(c) and diag(r) B where a target was rescaled, the rest as it is. B A x then equals the unfolded adapter's
    output on the unscaled input, in the equalised layer's output channels."""
    pairs = {}
    for name, (a, b) in lora.pairs.items():
        rows, columns = folds.get(name, (None, None))
        a = a.float() if columns is None else a.float() * columns.to(a.device, torch.float32)[None, :]
        b = b.float() if rows is None else b.float() * rows.to(b.device, torch.float32)[:, None]
        pairs[name] = (a, b)
    return replace(lora, pairs=pairs)


def merge_(decoder: nn.Module, lora: LoraWeights, weight: float, label: str) -> None:
    """The adapter added into the fp32 weights of decoder's plain nn.Linear targets, in place (before any
    equalisation or quantisation: the engine's load). Each changed weight is a new tensor (the checkpoint's own may
    be shared)."""
    modules = check_fits(decoder, lora, label)
    with torch.no_grad():
        for name in lora.pairs:
            module = modules[name]
            if type(module) is not nn.Linear:
                raise InferenceError(f"LoRA adapter {label!r} merges into plain linear layers; {name} is already "
                                     f"{type(module).__name__}: merge before quantising")
            merged = module.weight.detach().float() + lora.delta(name, weight).to(module.weight.device)
            module.weight = nn.Parameter(merged.to(module.weight.dtype), requires_grad=False)


def write_adapter_dir(directory: Path, lora: LoraWeights, card: dict) -> Path:
    """directory/pytorch_lora_weights.safetensors and directory/card.json, directory made new (never over another
    adapter: FileExistsError). The weights go in last-but-one, the card last: a directory with both is complete."""
    from inference.adapters import WEIGHT_NAME, write_card

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=False)
    save_adapter(directory / WEIGHT_NAME, lora)
    return write_card(directory, card)
