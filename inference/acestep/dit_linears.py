"""The ACE-Step DiT's linear layers on the CPU: int8 or bf16 kernels where measured faster than fp32, chosen at load.

A DiT step multiplies every weight by all of the clip's tokens at once (10 s of audio: 250 latent frames,
patched by 2 into 125 rows), so its linears are GEMMs, not the GEMVs of MusicGen's decode. Measured on this
machine (docs/benchmarks.md, 2 cores with AMX), per linear at 125 rows: fp32 (MKL) about 250 GFLOP/s, our int8
kernel (AVX-512 VNNI, built for GEMV) about 2x that, torch's dynamic int8 Linear packed by fbgemm/x86 about 4x,
bf16 through oneDNN (AMX) about 5x, and torch's dynamic int8 Linear packed by oneDNN (AMX int8) about 9x.

Kinds, each a way to run one nn.Linear (`build_linear`): fp32 (left as it is), bf16 (weights in bf16, reordered
once for oneDNN; fp32 in and out), onednn-int8 and x86-int8 (torch.ao's dynamic int8 Linear: int8 weights with
one scale per output channel, activations quantized per call; the engine decides who packs the weight), ours-int8
(inference.runtime.quantize.Int8Linear, our C++ kernel).

`convert_dit_linears_` picks one kind per group of linears of the same shape and row count (`plan_dit_linears`
times each candidate kind on that group's first weight at its rows, best of a few runs) and swaps every linear of
the group for it. Modes (the `weights` setting, resolved by `resolve_dit_mode`):
- auto: the fastest of fp32, bf16 and the int8 kinds, per group; linears under MIN_WEIGHTS weights stay fp32
  (overhead-bound: nothing to gain, and the tiny test pipeline keeps its exact parity with diffusers);
- int8: the fastest int8 kind per group, every linear; bf16: bf16, every linear;
- fp32: nothing is converted (the path that equals a direct pipeline call).
Only on the CPU: on CUDA the pipeline runs bf16 (inference.acestep.engine) and auto converts nothing. Only the
DiT: the text and condition encoders run once per call. Each fp32 weight is freed as its replacement lands
(6.3 GB of DiT become 1.6). A LoRA request on converted linears is refused with what to do (PEFT wraps nn.Linear
only). Int8 activations are quantized per call with one scale: 1.2 % error per linear on random weights; the
real checkpoint's audio under int8 is not measured here (no weights on this machine), bf16 is the mode to
compare it with. Measured end to end: 3.9x per step and 1.8x per call at 1 thread (the VAE decode, untouched,
is 65 % of ours); at 2 threads with two other streams busy on the two cores, ours was slower (each of its short
GEMMs waits for a preempted OpenMP thread): `--cpu-threads 1` is the setting for a contended machine.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from inference.runtime.quantize import Bf16Linear, Int8Linear, cpu_int8_engine, linears, onednn_bf16_available

log = logging.getLogger("continuo.inference")

FP32, BF16, ONEDNN_INT8, X86_INT8, OURS_INT8 = "fp32", "bf16", "onednn-int8", "x86-int8", "ours-int8"
INT8_KINDS = (ONEDNN_INT8, X86_INT8, OURS_INT8)
MODES = ("auto", "int8", "bf16", "fp32")
MIN_WEIGHTS = 1 << 20  # under auto, smaller linears stay fp32
ROWS = 125  # rows a DiT linear sees for 10 s of audio: 250 latent frames, patched by 2
ROWS_BY_PREFIX = {"time_embed": 1, "condition_embedder": 256}  # one row per take; the text + lyric tokens
TIMING_CALLS = 12  # the fastest of this many single calls: a shared machine preempts some of them


def resolve_dit_mode(weights: str, device: torch.device) -> str:
    """The DiT linear mode for the `weights` setting on device: auto, int8, bf16 or fp32 (fp32: convert nothing)."""
    mode = weights.strip().lower()
    if device.type != "cpu":  # the pipeline's bf16 on CUDA; MusicGen's CUDA modes (fp16, bnb-*) mean nothing here
        if mode not in ("auto", FP32):
            log.info("weights %s applies to MusicGen on %s; the ACE-Step pipeline runs bf16 there", mode, device)
        return FP32
    if mode not in MODES:
        raise ValueError(f"weights {weights!r} does not apply to an ACE-Step pipeline on the CPU; choose one of "
                         f"{', '.join(MODES)} (how the DiT's linears run; fp32 leaves them as diffusers has them)")
    return mode


def candidate_kinds(mode: str) -> tuple[str, ...]:
    """The kinds a mode chooses among, those this torch build and CPU can run."""
    kinds = {"auto": (FP32, BF16, *INT8_KINDS), "int8": INT8_KINDS, "bf16": (BF16,), "fp32": (FP32,)}[mode]
    return tuple(kind for kind in kinds if kind_available(kind))


def kind_available(kind: str) -> bool:
    if kind == FP32:
        return True
    if kind == BF16:
        return onednn_bf16_available()
    if kind == ONEDNN_INT8:
        return "onednn" in torch.backends.quantized.supported_engines
    if kind == X86_INT8:
        return cpu_int8_engine() is not None
    from inference.runtime.kernels import int8_linear_op

    return int8_linear_op() is not None


@contextmanager
def quantized_engine(name: str):
    """torch.backends.quantized.engine set to name while weights are packed, restored after (the packed weight
    keeps its engine's kernel; MusicGen's int8 fallback packs with its own)."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def dynamic_int8(linear: nn.Linear, engine: str) -> nn.Module:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    with quantized_engine(engine):
        linear.qconfig = per_channel_dynamic_qconfig
        try:
            return DynamicInt8Linear.from_float(linear)
        finally:
            del linear.qconfig


def build_linear(kind: str, linear: nn.Linear, rows_hint: int = ROWS) -> nn.Module:
    """linear run as kind (a new module; linear itself is left as it was)."""
    if kind == FP32:
        return linear
    if kind == BF16:
        return Bf16Linear(linear, rows_hint)
    if kind == ONEDNN_INT8:
        return dynamic_int8(linear, "onednn")
    if kind == X86_INT8:
        return dynamic_int8(linear, cpu_int8_engine())
    if kind == OURS_INT8:
        from inference.runtime.kernels import int8_linear_op

        return Int8Linear(linear, int8_linear_op(), bool(torch.ops.continuo_cpu.int8_linear_uses_vnni()))
    raise ValueError(f"unknown DiT linear kind {kind!r}")


def rows_for(name: str) -> int:
    """Rows of activations the linear at `name` (below the transformer) multiplies per call."""
    return next((rows for prefix, rows in ROWS_BY_PREFIX.items() if name.startswith(prefix)), ROWS)


def time_ms(module: nn.Module, x: torch.Tensor) -> float:
    """ms of the fastest of TIMING_CALLS single calls, after one untimed call (oneDNN builds its kernel then)."""
    with torch.inference_mode():
        module(x)
        best = float("inf")
        for _ in range(TIMING_CALLS):
            started = time.perf_counter()
            module(x)
            best = min(best, time.perf_counter() - started)
    return best * 1e3


@dataclass
class LinearPlan:
    """What convert_dit_linears_ chose: the mode, per group (in x out @ rows) the kind and each candidate's ms."""

    mode: str
    choices: dict[str, str] = field(default_factory=dict)
    timings_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    converted: int = 0
    total: int = 0

    @property
    def active(self) -> bool:
        return self.converted > 0

    def summary(self) -> str:
        if not self.active:
            return f"{self.mode}: all {self.total} DiT linears fp32"
        kinds = sorted(set(self.choices.values()))
        return f"{self.mode}: {self.converted} of {self.total} DiT linears {'/'.join(kinds)}"


def group_key(linear: nn.Linear, rows: int) -> str:
    return f"{linear.in_features}x{linear.out_features}@{rows}"


def plan_dit_linears(transformer: nn.Module, mode: str, *, timer=time_ms) -> LinearPlan:
    """Per group of same-shape linears (and rows), the kind to run them as: measured by timer(module, x)."""
    plan = LinearPlan(mode)
    groups: dict[str, tuple[nn.Linear, int]] = {}
    names = {id(module): name for name, module in transformer.named_modules()}
    for _, _, linear in linears(transformer):
        plan.total += 1
        rows = rows_for(names[id(linear)])
        groups.setdefault(group_key(linear, rows), (linear, rows))
    kinds = candidate_kinds(mode)
    for key, (linear, rows) in groups.items():
        if mode == "fp32" or (mode == "auto" and linear.in_features * linear.out_features < MIN_WEIGHTS):
            plan.choices[key] = FP32
            continue
        x = torch.randn(rows, linear.in_features, generator=torch.Generator().manual_seed(0))  # global RNG untouched
        timings = {kind: round(timer(build_linear(kind, linear, rows), x), 4) for kind in kinds}
        plan.timings_ms[key] = timings
        plan.choices[key] = min(timings, key=timings.get)
    return plan


@torch.no_grad()
def convert_dit_linears_(transformer: nn.Module, mode: str, *, timer=time_ms) -> LinearPlan:
    """Swap the transformer's nn.Linear layers (in place) for the kinds plan_dit_linears picks; returns the plan.
    Each fp32 weight is freed as its replacement takes its place, so memory falls as the conversion goes."""
    started = time.monotonic()
    plan = plan_dit_linears(transformer, mode, timer=timer)
    names = {id(module): name for name, module in transformer.named_modules()}
    for parent, attribute, linear in list(linears(transformer)):
        rows = rows_for(names[id(linear)])
        kind = plan.choices[group_key(linear, rows)]
        if kind != FP32:
            setattr(parent, attribute, build_linear(kind, linear, rows))
            plan.converted += 1
    if plan.active:
        log.info("DiT linears %s in %.1f s (ms per call by kind: %s)", plan.summary(), time.monotonic() - started,
                 plan.timings_ms)
    return plan
