"""The ACE-Step DiT's linear layers on the CPU: fp32 or bf16 by default, int8 per group only within an error budget.

A DiT step multiplies every weight by all of the clip's tokens at once (10 s of audio: 250 latent frames,
patched by 2 into 125 rows), so its linears are GEMMs, not the GEMVs of MusicGen's decode. Measured on this
machine (docs/benchmarks.md, 2 cores with AMX), per linear at 125 rows: fp32 (MKL) about 250 GFLOP/s, our int8
kernel (AVX-512 VNNI, built for GEMV) about 2x that, torch's dynamic int8 Linear packed by fbgemm/x86 about 4x,
bf16 through oneDNN (AMX) about 5x, and torch's dynamic int8 Linear packed by oneDNN (AMX int8) about 9x.

Kinds, each a way to run one nn.Linear (`build_linear`): fp32 (left as it is), bf16 (weights in bf16, reordered
once for oneDNN; fp32 in and out), ours-int8 (inference.runtime.quantize.Int8Linear: one activation scale per
row), onednn-int8 and x86-int8 (torch.ao's dynamic int8 Linear: one 7-bit activation scale per call, so one loud
row coarsens every other row of the call: 98.6 % error on the others when one row is x100, risks.md M5).

Modes (the `weights` setting, `resolve_dit_mode`):
- auto: quality before speed, and reproducible (`plan_dit_linears`). Groups of same-shape linears (and rows) under
  MIN_WEIGHTS and the time embeddings and adaLN projection (`HIGH_PRECISION`: they scale every block) stay fp32.
  For the others, a calibration render at two timesteps (`CALIBRATION`) captures the real inputs of a few
  linears per group; each kind is measured on them against fp32, and only kinds within ERROR_BUDGET (1 % relative
  error per call) are candidates, of which the fastest (timed) is taken; fp32 always is one. If any group goes
  int8, an end-to-end check renders the calibration clip for two seeds: the final latents must stay within
  END_TO_END_FRACTION of the seed-to-seed distance, else every int8 group falls back to bf16. The plan is saved
  (inference/runtime/plans.py: checkpoint fingerprint, CPU flags, torch version) and reused, so restarts and
  replicas on one machine render a seed identically; it goes into ModelInfo.modes (the manifest) and doctor.
- int8: ours-int8 (per-row scales) for every linear but HIGH_PRECISION, or the first int8 kind this machine has;
  bf16: bf16 for every linear but HIGH_PRECISION; fp32: nothing is converted (the path that equals a direct
  pipeline call). Named modes are not measured: deterministic by construction.
Only on the CPU: on CUDA the pipeline runs bf16 (inference.acestep.engine) and auto converts nothing. Only the
DiT: the text and condition encoders run once per call. Each fp32 weight is freed as its replacement lands
(6.3 GB of DiT become 1.6), but for int8 groups until the end-to-end check passed. A LoRA request on converted
linears is refused with what to do (PEFT wraps nn.Linear only). Measured end to end before the budget (timing
alone): 3.9x per step and 1.8x per call at 1 thread (the VAE decode, untouched, is 65 % of ours); at 2 threads
with two other streams busy on the two cores, ours was slower (each of its short GEMMs waits for a preempted
OpenMP thread): `--cpu-threads 1` is the setting for a contended machine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from inference.runtime.quantize import Bf16Linear, Int8Linear, cpu_int8_engine, linears, onednn_bf16_available

log = logging.getLogger("continuo.inference")

FP32, BF16, ONEDNN_INT8, X86_INT8, OURS_INT8 = "fp32", "bf16", "onednn-int8", "x86-int8", "ours-int8"
INT8_KINDS = (OURS_INT8, ONEDNN_INT8, X86_INT8)  # named int8 takes the first available: per-row scales first
MODES = ("auto", "int8", "bf16", "fp32")
MIN_WEIGHTS = 1 << 20  # under auto, smaller linears stay fp32
ROWS = 125  # rows a DiT linear sees for 10 s of audio: 250 latent frames, patched by 2
ROWS_BY_PREFIX = {"time_embed": 1, "condition_embedder": 256}  # one row per take; the text + lyric tokens
HIGH_PRECISION = ("time_embed",)  # time_embed and time_embed_r: the timestep MLPs and the adaLN projection
TIMING_CALLS = 12  # the fastest of this many single calls: a shared machine preempts some of them
ERROR_BUDGET = 0.01  # a kind is a candidate for a group within this relative error on captured activations
END_TO_END_FRACTION = 0.05  # final latents under the plan within this fraction of the seed-to-seed distance
SAMPLED_LINEARS = 3  # per group, the linears whose inputs the calibration render captures (first, middle, last)


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
    """What the DiT's linears run as: per group (in x out @ rows) the kind, with what auto measured to choose it
    (relative error on captured activations and ms per call, per kind) and the end-to-end check."""

    mode: str
    choices: dict[str, str] = field(default_factory=dict)
    errors: dict[str, dict[str, float]] = field(default_factory=dict)
    timings_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    end_to_end: dict[str, float | bool] | None = None
    decisions: list[str] = field(default_factory=list)
    converted: int = 0
    total: int = 0
    reused: bool = False  # an earlier load's plan for this checkpoint and machine (inference/runtime/plans.py)
    seconds: float = 0.0

    @property
    def active(self) -> bool:
        return self.converted > 0

    def summary(self) -> str:
        if not self.active:
            return f"{self.mode}: all {self.total} DiT linears fp32"
        kinds = sorted(set(self.choices.values()) - {FP32})
        how = " (reused plan)" if self.reused else ""
        return f"{self.mode}: {self.converted} of {self.total} DiT linears {'/'.join(kinds)}{how}"

    def as_dict(self) -> dict:
        return {"mode": self.mode, "choices": dict(self.choices), "errors": self.errors,
                "timings_ms": self.timings_ms, "end_to_end": self.end_to_end, "decisions": list(self.decisions),
                "budget": f"relative error <= {ERROR_BUDGET:g} per call on captured activations; final latents "
                          f"within {END_TO_END_FRACTION:g} x the seed spread",
                "converted": self.converted, "total": self.total, "reused": self.reused,
                "seconds": round(self.seconds, 2), "summary": self.summary()}

    @classmethod
    def from_dict(cls, record: dict) -> LinearPlan:
        """A saved plan (as_dict), marked reused; converted is counted again when it is applied."""
        return cls(mode=record["mode"], choices=dict(record["choices"]), errors=record.get("errors", {}),
                   timings_ms=record.get("timings_ms", {}), end_to_end=record.get("end_to_end"),
                   decisions=list(record.get("decisions", [])), reused=True)


def high_precision(name: str) -> bool:
    return name.startswith(HIGH_PRECISION)


def group_key(name: str, linear: nn.Linear) -> str:
    """Linears of one shape and row count form a group (high-precision ones apart)."""
    return ("keep:" if high_precision(name) else "") + f"{linear.in_features}x{linear.out_features}@{rows_for(name)}"


def groups_of(transformer: nn.Module) -> dict[str, list[tuple[str, nn.Linear]]]:
    """group key -> [(name, linear)] in the transformer's order."""
    names = {id(module): name for name, module in transformer.named_modules()}
    groups: dict[str, list[tuple[str, nn.Linear]]] = {}
    for _, _, linear in linears(transformer):
        name = names[id(linear)]
        groups.setdefault(group_key(name, linear), []).append((name, linear))
    return groups


def named_plan(transformer: nn.Module, mode: str) -> LinearPlan:
    """A named mode's plan: int8 (the first int8 kind here) or bf16 for every linear but HIGH_PRECISION; fp32."""
    plan = LinearPlan(mode)
    kinds = candidate_kinds(mode)
    for key, members in groups_of(transformer).items():
        plan.choices[key] = FP32 if mode == FP32 or key.startswith("keep:") or not kinds else kinds[0]
    return plan


@contextmanager
def capturing(samples: dict[str, list[nn.Linear]]) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Hooks recording the inputs of the sampled linears (by id) while the block runs."""
    captured: dict[int, list[torch.Tensor]] = {}
    handles = []
    for members in samples.values():
        for linear in members:
            handles.append(linear.register_forward_pre_hook(
                lambda module, args: captured.setdefault(id(module), []).append(args[0].detach().clone())))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def relative_error(module: nn.Module, linear: nn.Linear, inputs: list[torch.Tensor]) -> float:
    """||module(x) - linear(x)|| / ||linear(x)|| over every captured call, each call as it came (its rows)."""
    error = reference = 0.0
    with torch.inference_mode():
        for x in inputs:
            exact = linear(x.float())
            error += (module(x.float()) - exact).float().pow(2).sum().item()
            reference += exact.float().pow(2).sum().item()
    return (error / max(reference, 1e-30)) ** 0.5


def sampled(members: list[tuple[str, nn.Linear]]) -> list[nn.Linear]:
    """First, middle and last of a group (SAMPLED_LINEARS evenly spread)."""
    count = min(SAMPLED_LINEARS, len(members))
    return [members[round(i * (len(members) - 1) / max(1, count - 1))][1] for i in range(count)]


def plan_dit_linears(transformer: nn.Module, mode: str, run, *, timer=None) -> LinearPlan:
    """auto's plan (module docstring): run() is a calibration forward of the model (two timesteps of a short
    render), whose inputs to a few linears per group are the activations each kind is measured on; timer(module,
    x) -> ms. Named modes: named_plan (nothing measured)."""
    if mode != "auto":
        return named_plan(transformer, mode)
    timer = timer or time_ms
    plan = LinearPlan(mode)
    groups = groups_of(transformer)
    measured = {key: members for key, members in groups.items() if not key.startswith("keep:")
                and members[0][1].in_features * members[0][1].out_features >= MIN_WEIGHTS}
    samples = {key: sampled(members) for key, members in measured.items()}
    with capturing(samples) as captured:
        run()
    kinds = [kind for kind in candidate_kinds(mode) if kind != FP32]
    for key, members in groups.items():
        plan.choices[key] = FP32
        if key not in measured:
            continue
        inputs = {id(linear): captured.get(id(linear), []) for linear in samples[key]}
        if not all(inputs.values()):
            plan.decisions.append(f"{key}: not reached by the calibration render, fp32")
            continue
        errors = {kind: max(relative_error(build_linear(kind, linear, rows_for(members[0][0])), linear,
                                           inputs[id(linear)]) for linear in samples[key]) for kind in kinds}
        plan.errors[key] = {kind: round(error, 5) for kind, error in errors.items()}
        allowed = [FP32, *(kind for kind in kinds if errors[kind] <= ERROR_BUDGET)]
        linear, rows = members[0][1], rows_for(members[0][0])
        x = torch.randn(rows, linear.in_features, generator=torch.Generator().manual_seed(0))  # global RNG untouched
        timings = {kind: round(timer(build_linear(kind, linear, rows), x), 4) for kind in allowed}
        plan.timings_ms[key] = timings
        plan.choices[key] = min(timings, key=timings.get)
    return plan


@torch.no_grad()
def apply_plan_(transformer: nn.Module, plan: LinearPlan, keep_originals: frozenset[str] = frozenset()
                ) -> dict[str, tuple[nn.Module, str, nn.Linear]]:
    """Swap the transformer's linears (in place) for the kinds plan chooses; counts plan.converted. Each fp32 weight
    is freed as its replacement lands, but for the kinds in keep_originals: returned by name as (parent, attribute,
    the original linear), to fall back to."""
    names = {id(module): name for name, module in transformer.named_modules()}
    kept = {}
    plan.total = plan.converted = 0
    for parent, attribute, linear in list(linears(transformer)):
        plan.total += 1
        name = names[id(linear)]
        kind = plan.choices.get(group_key(name, linear), FP32)
        if kind != FP32:
            setattr(parent, attribute, build_linear(kind, linear, rows_for(name)))
            plan.converted += 1
            if kind in keep_originals:
                kept[name] = (parent, attribute, linear)
    return kept


def convert_dit_linears_(transformer: nn.Module, mode: str, *, run=None, render=None, saved: dict | None = None,
                         timer=None) -> LinearPlan:
    """The DiT's linears converted in place as mode says; returns the plan. auto needs run() (the calibration
    forward, plan_dit_linears) and render(seed) -> final latents of the calibration clip (the end-to-end check);
    saved: an earlier load's plan (LinearPlan.as_dict), applied as it is."""
    started = time.monotonic()
    if saved is not None:
        plan = LinearPlan.from_dict(saved)
        apply_plan_(transformer, plan)
    else:
        plan = plan_dit_linears(transformer, mode, run, timer=timer)
        int8 = frozenset(INT8_KINDS) & set(plan.choices.values())
        reference = [render(seed) for seed in (0, 1)] if int8 and render is not None else None
        originals = apply_plan_(transformer, plan, keep_originals=int8 if reference else frozenset())
        if reference:
            check_end_to_end_(transformer, plan, reference, render, originals)
    plan.seconds = time.monotonic() - started
    if plan.active:
        log.info("DiT linears %s in %.1f s (errors by kind: %s; ms per call: %s%s)", plan.summary(), plan.seconds,
                 plan.errors, plan.timings_ms, "".join(f"; {line}" for line in plan.decisions))
    return plan


def check_end_to_end_(transformer: nn.Module, plan: LinearPlan, reference: list[torch.Tensor], render,
                      originals: dict) -> None:
    """The calibration clip's final latents under the plan against fp32 for two seeds; beyond END_TO_END_FRACTION
    of the seed-to-seed distance, every int8 group becomes bf16 (from its kept original)."""
    spread = ((reference[1] - reference[0]).norm() / reference[0].norm()).item()
    distance = max(((render(seed) - ref).norm() / ref.norm()).item() for seed, ref in enumerate(reference))
    within = distance <= END_TO_END_FRACTION * spread
    plan.end_to_end = {"distance": round(distance, 5), "seed_spread": round(spread, 5), "within": within}
    if within:
        return
    plan.decisions.append(f"final latents {distance:.4f} from fp32 against a seed spread of {spread:.4f}: int8 "
                          "groups run bf16")
    fallback = BF16 if kind_available(BF16) else FP32
    for key, kind in list(plan.choices.items()):
        if kind in INT8_KINDS:
            plan.choices[key] = fallback
    for name, (parent, attribute, linear) in originals.items():
        setattr(parent, attribute, linear if fallback == FP32 else build_linear(fallback, linear, rows_for(name)))
    if fallback == FP32:
        plan.converted -= len(originals)
