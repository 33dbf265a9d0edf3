"""Calibration at load: lossy CPU modes (int8 weights, int8 cache) made robust to outlier channels, then measured
against the exact path and taken only within a stated budget.

1. Statistics. One fp32 teacher-forced forward over a few calibration rows (`CalibrationInputs`: two prompts and
   their CFG null rows, over the codec's codes of a synthetic clip) records, per channel, the largest |value| of
   every LayerNorm's output and of every layer's keys and values; its guided logits are the reference.
2. Equalisation (`equalize_`), folded into the weights, so it costs nothing per step and the kernels are
   unchanged (function-preserving: fp32 outputs equal to rounding):
   - keys: each K channel divided by its range (per head, geometric mean 1), the matching Q channel multiplied:
     q.k is unchanged, and the int8 cache's scale per row, head and token no longer follows one loud channel.
     That is what KIVI and KVQuant get from per-channel K scales, without a per-channel scale in a growing cache
     (whose scales would change as tokens arrive, or need a residual window in full precision and a second path
     in the fused kernel);
   - values: each V channel divided by sqrt(range(V) / range(output projection column)) (SmoothQuant's balance),
     the output projection's column multiplied;
   - LayerNorm channels: SmoothQuant (alpha 0.5) between each LayerNorm and the linears reading it (self-attention
     qkv, cross-attention q, the feed-forward's first linear, the LM heads): activation outlier channels move into
     the weights, where int8 keeps a scale per output row.
   Each equalised linear then computes diag(r) W diag(c) on its input x / c (r, c per channel: `Folds`, kept on
   Calibration.folds by module name). Anything added beside such a layer must be folded the same way: a LoRA
   adapter's A (r, in) becomes A diag(c) and its B (out, r) diag(r) B (inference/musicgen/lora.py:fold).
3. The gate (only where a mode was chosen by auto): the floor is bf16 weights and a bf16 cache against fp32; int4
   weights (where our kernels run), else int8 (LM heads in bf16), then quantized LM heads on top of the weights
   taken (HEAD_CANDIDATES: int4, then int8), then the int8 cache on top of both, each are taken only when their
   mean per-step KL of the guided top-250 distribution is within `Budget` (KL_FACTOR x the floor's, agreement
   MIN_AGREEMENT), else the weights fall back to fp32, the heads stay bf16, the cache fp32. The decision and its
   figures (`Calibration`, `heads` among them) go to the log, ModelInfo.modes (the manifest), the saved plan
   (inference/runtime/plans.py: a plan saved before the heads were measured keeps bf16 heads) and `continuo
   doctor`.

The LM heads (issue #24). They were kept bf16 beside int8 / int4 weights because a quantized head is where argmax
flips on outlier activations (onnxruntime#29849). In a musicgen-small int4 step they are 16.8 MB of about 245 read
and cost 1.9-2.4 ms of CPU at 1 thread as bf16, 0.63-0.74 ms as int8 and 0.53-0.66 ms as int4 through our kernels
(one call for the four heads: model.py:fused_heads; `continuo bench step --quick --threads 1`, alternated with
main, load 3.2-4.0, docs/benchmarks.md). So
they are measured like the weights: on the quality harness (docs/benchmarks.md, "Quality") with the heads stress
(outlier channels of the final LayerNorm that only the heads read), equalised int8 heads stay within the budget
and int4 heads are beyond it (KL about 12 x the floor on the harness's programmed heads, stressed or not), while
naive int8 heads (one scale per tensor, or nothing equalised) pass the plain model and fail the stress. Only auto
quantizes them, after measuring: a user who names `weights int8` / `int4` gets bf16 heads, the quality those names
were measured with (engine.resolve_heads); EngineOptions.heads names them for the harness and the benchmarks.
Equalising the heads needed one fix: a weight column of zeros (the harness's heads read no positional channel)
made its factor so large that MAX_SHIFT's clamp, relative to the largest factor, lifted every live channel to one
value and undid the equalisation (int8 heads under the heads stress: KL 0.157, agreement 0.857); column_max now
counts such a column as DEAD_COLUMN x the largest (KL 1.73e-3, as unstressed).

Measured on the quality harness (inference/bench/quality.py, docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from inference.musicgen.decode import Sampler, build_delay_pattern, teacher_forced_logits
from inference.musicgen.fidelity import GUIDANCE, Fidelity, compare
from inference.musicgen.kv_cache import KVCacheMode, build_cache_factory
from inference.musicgen.model import MusicGenDecoder
from inference.runtime.quantize import (
    WeightMode,
    check_heads,
    head_keep,
    kept_linear,
    linears,
    quantize_int4_cpu_,
    quantize_int8_cpu_,
)

log = logging.getLogger("continuo.inference")

PROMPTS = ("warm lo-fi piano chords with soft drums",)
FRAMES = 48  # calibration positions per row (about a second at 50 Hz, plus the delay pattern)
SMOOTHING_ALPHA = 0.5  # SmoothQuant's migration strength
MAX_SHIFT = 1e4  # no equalisation factor beyond this (a dead channel must not blow a weight up)
DEAD_COLUMN = 1e-4  # a weight column below this x the largest counts as this for the factors (column_max)


@dataclass(frozen=True)
class Budget:
    """A lossy mode is taken when its mean KL is at most kl_factor x the bf16 floor's (or min_kl where that is
    larger: a near-exact floor must not refuse a mode far below what sampling shows) and its argmax agreement at
    least min_agreement (Fidelity.within)."""

    kl_factor: float = 10.0
    min_kl: float = 2e-4
    min_agreement: float = 0.95

    def allows(self, fidelity: Fidelity, floor: Fidelity) -> bool:
        return fidelity.within(floor, self.kl_factor, self.min_kl, self.min_agreement)

    def describe(self) -> str:
        return (f"mean KL <= max({self.kl_factor:g} x bf16 floor, {self.min_kl:g}) and argmax agreement >= "
                f"{self.min_agreement:g}")


BUDGET = Budget()


Folds = dict[str, tuple[Tensor | None, Tensor | None]]  # module name -> (row factors r, input factors c): the
# equalised layer computes diag(r) W diag(c) on x / c; None: that side is unchanged


@dataclass
class Calibration:
    """What calibration at load did: equalised or not, what auto resolved to, and the figures it decided on."""

    weights: str
    kv_cache: str
    equalized: bool
    gated: bool  # False: the modes were named, not chosen by auto (measured nothing)
    heads: str = "bf16"  # the LM heads beside int8 / int4 weights (HEAD_MODES); an old saved decision has none: bf16
    budget: str = ""
    floor: Fidelity | None = None
    measured: dict[str, Fidelity] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reused: bool = False  # the gate's decision is an earlier load's, saved for this checkpoint and machine
    folds: Folds = field(default_factory=dict, repr=False, compare=False)  # what equalize_ folded (not saved)

    def summary(self) -> str:
        figures = ", ".join(f"{name}: KL {f.kl:.2e}, agreement {f.agreement:.3f}" for name, f in self.measured.items())
        floor = f"bf16 floor KL {self.floor.kl:.2e}; " if self.floor is not None else ""
        how = ("reused calibration" if self.reused else "calibrated") if self.gated else "named"
        heads = f" (LM heads {self.heads})" if self.weights in QUANTIZED else ""
        return (f"{how}: weights {self.weights}{heads}, kv_cache {self.kv_cache} ({floor}{figures or 'no gate'}; "
                f"{'equalised' if self.equalized else 'not equalised'}; {self.seconds:.1f} s)")

    def as_dict(self) -> dict:
        return {"weights": self.weights, "heads": self.heads, "kv_cache": self.kv_cache, "equalized": self.equalized,
                "gated": self.gated, "budget": self.budget if self.gated else None,
                "floor": self.floor.row() if self.floor else None,
                "measured": {name: f.row() for name, f in self.measured.items()}, "decisions": list(self.decisions),
                "seconds": round(self.seconds, 2), "reused": self.reused, "summary": self.summary()}

    @classmethod
    def from_dict(cls, record: dict) -> Calibration:
        """A saved decision (as_dict) as a Calibration, marked reused; one saved before the heads were measured
        (no "heads") keeps bf16 heads, as it was decided with them."""
        floor = record.get("floor")
        return cls(weights=record["weights"], kv_cache=record["kv_cache"], equalized=True, gated=True,
                   heads=record.get("heads") or "bf16",
                   budget=record.get("budget") or "", floor=Fidelity(**floor) if floor else None,
                   measured={name: Fidelity(**row) for name, row in record.get("measured", {}).items()},
                   decisions=list(record.get("decisions", [])), reused=True)


@dataclass
class CalibrationInputs:
    """Conditioning states and the codes to teacher-force: text (R, S, text_dim) with mask (R, S), R = prompts
    then their null rows (CFG), codes (P, K, frames) for the P prompts; chroma for melody checkpoints."""

    text_states: Tensor
    text_mask: Tensor
    codes: Tensor
    chroma: Tensor | None = None


def synthetic_clip(seconds: float, sample_rate: int, channels: int) -> np.ndarray:
    """(C, T) a chord over a four-on-the-floor kick (deterministic): a plausible history for the codec's codes."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    chord = sum(0.15 * np.sin(2 * np.pi * hz * t) for hz in (220.0, 277.2, 329.6))
    beat = np.exp(-30 * (t % 0.5)) * np.sin(2 * np.pi * 55 * t)
    return np.tile((chord + 0.5 * beat).astype(np.float32), (channels, 1))


@torch.no_grad()
def calibration_inputs(text_encoder, tokenizer, codec, args, *, sample_rate: int, hop: int,
                       device: torch.device) -> CalibrationInputs:
    """The calibration rows: PROMPTS through T5, and FRAMES of codes of a synthetic clip through the codec."""
    tokens = tokenizer(list(PROMPTS), return_tensors="pt", padding=True)
    ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
    states = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    states = torch.cat([states, torch.zeros_like(states)])
    mask = torch.cat([mask, torch.zeros_like(mask)])
    audio = torch.from_numpy(synthetic_clip(FRAMES * hop / sample_rate, sample_rate, args.audio_channels))
    audio = audio.to(device)[None]
    per_channel = [codec.encode(audio[:, c : c + 1]).audio_codes[0] for c in range(audio.shape[1])]
    codes = torch.stack(per_channel, dim=2).flatten(1, 2) if len(per_channel) == 2 else per_channel[0]
    codes = codes[:, :, :FRAMES].long().expand(len(PROMPTS), -1, -1)
    chroma = None
    if args.conditioning == "prefix":  # the null chroma (bin 0) for every row: the melody is not calibrated
        chroma = torch.zeros((states.shape[0], 1, args.num_chroma), device=device)
        chroma[:, :, 0] = 1
    return CalibrationInputs(states, mask, codes, chroma)


def forced_logits(decoder: MusicGenDecoder, inputs: CalibrationInputs, kv_cache: KVCacheMode) -> Tensor:
    """Guided logits (P, K, L-1, V) teacher-forced over the inputs, with a cache of mode kv_cache."""
    args = decoder.args
    dtype = next(decoder.embeddings.parameters()).dtype
    states = inputs.text_states.to(dtype)
    if inputs.chroma is None:
        memory = decoder.encode_memory(states, inputs.text_mask)
    else:
        memory = decoder.encode_prefix(states, inputs.text_mask, inputs.chroma)
    pattern = build_delay_pattern(inputs.codes, inputs.codes.shape[2], args.audio_channels, args.pad_id)
    prefix = 0 if inputs.chroma is None else memory.length
    decoder.setup_caches(build_cache_factory(
        kv_cache, batch=states.shape[0], heads=args.n_head, positions=pattern.shape[2] + prefix,
        head_dim=args.head_dim, activation_dtype=dtype, device=inputs.codes.device))
    try:
        with torch.inference_mode():
            return teacher_forced_logits(decoder, pattern, memory, Sampler(GUIDANCE, 0.0, 0, 0.0, None))
    finally:
        decoder.setup_caches(lambda index: None)


@dataclass
class Statistics:
    """Per-channel max |value| over the calibration rows: LayerNorm outputs by module name, keys and values per
    layer (H*D,)."""

    norms: dict[str, Tensor] = field(default_factory=dict)
    keys: dict[int, Tensor] = field(default_factory=dict)
    values: dict[int, Tensor] = field(default_factory=dict)


@contextmanager
def recording(decoder: MusicGenDecoder) -> Iterator[Statistics]:
    """Hooks that fill a Statistics while the block runs forwards of decoder."""
    stats, handles = Statistics(), []

    def keep_max(table: dict, key, value: Tensor) -> None:
        peak = value.detach().abs().float().reshape(-1, value.shape[-1]).amax(dim=0)
        table[key] = peak if key not in table else torch.maximum(table[key], peak)

    for name, module in decoder.named_modules():
        if isinstance(module, nn.LayerNorm):
            handles.append(module.register_forward_hook(
                lambda _m, _i, out, name=name: keep_max(stats.norms, name, out)))
    for index, layer in enumerate(decoder.layers):
        def on_qkv(_module, _inputs, out, index=index):
            _, k, v = out.chunk(3, dim=-1)
            keep_max(stats.keys, index, k)
            keep_max(stats.values, index, v)
        handles.append(layer.attention.wqkv.register_forward_hook(on_qkv))
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()


def per_head_unit(factors: Tensor, heads: int) -> Tensor:
    """factors (H*D,) scaled so that each head's geometric mean is 1, clamped to [1/MAX_SHIFT, MAX_SHIFT]."""
    grouped = factors.clamp_min(factors.max() / MAX_SHIFT).view(heads, -1)
    return (grouped / grouped.log().mean(dim=1, keepdim=True).exp()).clamp(1 / MAX_SHIFT, MAX_SHIFT).reshape(-1)


def column_max(weights: list[Tensor]) -> Tensor:
    """Per input channel, the largest |weight| over weights, at least DEAD_COLUMN x the largest: a column of zeros
    (a channel no reader uses) must not make its factor so large that per_head_unit's MAX_SHIFT clamp, relative to
    the largest factor, lifts every live channel to one value (it undid the equalisation of the LM heads under the
    quality harness's heads stress, whose heads read no positional channel: int8 heads KL 0.157 before, docs/
    benchmarks.md)."""
    peak = torch.stack([w.abs().amax(dim=0) for w in weights]).amax(dim=0)
    return peak.clamp_min(float(peak.max()) * DEAD_COLUMN)


@torch.no_grad()
def equalize_(decoder: MusicGenDecoder, stats: Statistics, alpha: float = SMOOTHING_ALPHA) -> Folds:
    """Fold the channel equalisation (module docstring, step 2) into decoder's fp32 weights. Each changed weight is
    a new tensor: the decoder's weights may be the checkpoint's own (build_decoder assigns them), which others
    still read. Returns the factors folded into each linear (Folds, by module name)."""
    heads = decoder.args.n_head
    names = {id(module): name for name, module in decoder.named_modules()}
    folds: Folds = {}

    def record(module: nn.Module, rows: Tensor | None = None, columns: Tensor | None = None) -> None:
        old_rows, old_columns = folds.get(names[id(module)], (None, None))
        rows = rows if old_rows is None else old_rows * rows if rows is not None else old_rows
        columns = columns if old_columns is None else old_columns * columns if columns is not None else old_columns
        folds[names[id(module)]] = (rows, columns)

    for index, layer in enumerate(decoder.layers):
        attention = layer.attention
        key = per_head_unit(stats.keys[index], heads)
        value = per_head_unit(stats.values[index].clamp_min(1e-12).pow(alpha)
                              / column_max([attention.wo.weight]).clamp_min(1e-12).pow(1 - alpha), heads)
        rows = torch.cat([key, 1 / key, 1 / value])  # q x key, k / key, v / value
        rescale(attention.wqkv, rows[:, None])
        rescale(attention.wo, value[None, :])
        record(attention.wqkv, rows=rows)
        record(attention.wo, columns=value)
    for norm, readers in norm_readers(decoder):
        peak = stats.norms.get(names[id(norm)])
        if peak is None:
            continue
        shift = per_head_unit(peak.clamp_min(1e-12).pow(alpha) / column_max(
            [r.weight for r in readers]).clamp_min(1e-12).pow(1 - alpha), 1)
        rescale(norm, 1 / shift, "weight")
        rescale(norm, 1 / shift, "bias")
        for reader in readers:
            rescale(reader, shift[None, :])
            record(reader, columns=shift)
    return folds


def rescale(module: nn.Module, factor: Tensor, name: str = "weight") -> None:
    """module.<name> replaced by a new parameter: the old one times factor."""
    setattr(module, name, nn.Parameter(getattr(module, name).detach() * factor, requires_grad=False))


def norm_readers(decoder: MusicGenDecoder) -> list[tuple[nn.LayerNorm, list[nn.Linear]]]:
    """Each LayerNorm and the linears that read its output alone."""
    pairs = []
    for layer in decoder.layers:
        pairs.append((layer.attention_norm, [layer.attention.wqkv]))
        if layer.cross_attention is not None:
            pairs.append((layer.cross_attention_norm, [layer.cross_attention.wq]))
        pairs.append((layer.ffn_norm, [layer.ffn.w1]))
    pairs.append((decoder.norm, list(decoder.heads)))
    return pairs


def twin(decoder: MusicGenDecoder) -> MusicGenDecoder:
    """A copy of decoder's modules sharing its tensors (no weight copied), without what its step keeps between
    calls (the one-call lists, the fused heads' concatenated tensors: not copied, then rebuilt by the copy)."""
    memo = {id(tensor): tensor for tensor in [*decoder.parameters(), *decoder.buffers()]}
    memo |= {id(kept): None for kept in decoder.kept_calls()}
    copied = copy.deepcopy(decoder, memo)
    copied.forget_kept_calls()
    return copied


def variant(decoder: MusicGenDecoder, kind: str, heads: str = "bf16") -> MusicGenDecoder:
    """A decoder sharing decoder's tensors whose linears run as kind: "int8" or "int4" (LM heads as `heads`:
    HEAD_MODES), "bf16" or "fp32" (the same modules, unpacked). No fp32 weight is copied."""
    copied = twin(decoder)
    if kind == "int8":
        return quantize_int8_cpu_(copied, keep=head_keep(heads))
    if kind == "int4":
        return quantize_int4_cpu_(copied, keep=head_keep(heads))
    if kind == "bf16":
        for parent, name, linear in list(linears(copied)):
            setattr(parent, name, kept_linear(linear, "bf16"))
    return copied


def with_heads(decoder: MusicGenDecoder, served: MusicGenDecoder, heads: str) -> MusicGenDecoder:
    """served (a quantized variant of decoder) with its LM heads made from decoder's (fp32, equalised) as `heads`;
    the body's quantized tensors shared, not quantized again."""
    copied = twin(served)
    for index, head in enumerate(decoder.heads):
        copied.heads[index] = kept_linear(head, heads)
    return copied


QUANTIZED = (WeightMode.INT8.value, WeightMode.INT4.value)
HEAD_CANDIDATES = ("int4", "int8")  # quantized LM heads the gate measures, cheapest first (bf16 heads otherwise)


def calibrate(decoder: MusicGenDecoder, inputs: CalibrationInputs, *, weights: WeightMode, kv_cache: KVCacheMode,
              gate_weights: bool, gate_cache: bool, budget: Budget | None = None, decided: dict | None = None,
              try_int4: bool = False, heads: str = "bf16", gate_heads: bool = False
              ) -> tuple[MusicGenDecoder, Calibration]:
    """decoder (fp32, on the CPU) equalised for the lossy modes, and the decoder to serve: int8 / int4 weights as
    Int8Linear / Int4Linear (LM heads as `heads`), fp32 as it is. A mode chosen by auto (gate_*) is measured first
    and falls back beyond the budget: try_int4 (auto on a CPU with our kernels) measures int4 weights first and takes
    them within the budget, else int8 as before, else fp32; gate_heads then measures the LM heads quantized on top
    of the weights taken (HEAD_CANDIDATES, cheapest first) and keeps bf16 heads where none is within the budget;
    the cache is measured last, on top of both. decided: an earlier load's decision (Calibration.as_dict,
    inference/runtime/plans.py), taken instead of measuring. Returns (decoder, what was done)."""
    started, budget = time.monotonic(), budget or BUDGET
    check_heads(heads)
    with recording(decoder) as stats:
        reference = forced_logits(decoder, inputs, KVCacheMode.FP32)
    folds = equalize_(decoder, stats)
    if decided is not None and (gate_weights or gate_cache):
        result = Calibration.from_dict(decided)
        result.folds = folds
        served = variant(decoder, result.weights, result.heads) if result.weights in QUANTIZED else None
        result.seconds = time.monotonic() - started
        return (served if served is not None else decoder), result
    result = Calibration(weights=weights.value, kv_cache=kv_cache.value, equalized=True, heads=heads,
                         gated=gate_weights or gate_cache or gate_heads, budget=budget.describe(), folds=folds)
    lossy_cache = kv_cache if kv_cache in (KVCacheMode.INT8, KVCacheMode.MULAW8) else None
    served = variant(decoder, weights.value, heads) if weights.value in QUANTIZED and not (gate_weights and try_int4) \
        else None
    if result.gated:
        floor_decoder = variant(decoder, "bf16")
        result.floor = compare(reference, forced_logits(floor_decoder, inputs, KVCacheMode.BF16))
        del floor_decoder
    if gate_weights and try_int4:
        served = variant(decoder, "int4", heads)
        fidelity = result.measured["int4 weights"] = compare(reference, forced_logits(served, inputs,
                                                                                      KVCacheMode.FP32))
        if budget.allows(fidelity, result.floor):
            result.weights = WeightMode.INT4.value
        else:
            result.decisions.append(f"int4 weights beyond the budget (KL {fidelity.kl:.2e}): int8 measured next")
            served = variant(decoder, "int8", heads)
    if served is not None and gate_weights and result.weights == WeightMode.INT8.value:
        fidelity = result.measured["int8 weights"] = compare(reference, forced_logits(served, inputs,
                                                                                      KVCacheMode.FP32))
        if not budget.allows(fidelity, result.floor):
            result.decisions.append(f"int8 weights beyond the budget (KL {fidelity.kl:.2e}): fp32 weights")
            served, result.weights = None, WeightMode.FP32.value
    if served is not None and gate_heads:
        for index, kind in enumerate(HEAD_CANDIDATES):
            candidate = with_heads(decoder, served, kind)
            name = f"{result.weights} weights + {kind} heads"
            fidelity = result.measured[name] = compare(reference, forced_logits(candidate, inputs, KVCacheMode.FP32))
            if budget.allows(fidelity, result.floor):
                served, result.heads = candidate, kind
                break
            after = (f"{HEAD_CANDIDATES[index + 1]} heads measured next" if index + 1 < len(HEAD_CANDIDATES)
                     else "bf16 heads kept")
            result.decisions.append(f"{name} beyond the budget (KL {fidelity.kl:.2e}): {after}")
    if lossy_cache is not None and gate_cache:
        measured = served if served is not None else variant(decoder, "fp32")
        on_top = "" if served is None else f"{result.weights} weights + " + (
            f"{result.heads} heads + " if result.heads != "bf16" else "")
        name = f"{on_top}{lossy_cache.value} cache"
        fidelity = result.measured[name] = compare(reference, forced_logits(measured, inputs, lossy_cache))
        if not budget.allows(fidelity, result.floor):
            result.decisions.append(f"{name} beyond the budget (KL {fidelity.kl:.2e}): fp32 cache")
            result.kv_cache = KVCacheMode.FP32.value
    if result.weights not in QUANTIZED:
        result.heads = result.weights  # the heads are the decoder's own precision then
    result.seconds = time.monotonic() - started
    return (served if served is not None else decoder), result
