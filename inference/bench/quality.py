"""The quality harness: every lossy mode against fp32 on a model whose attention matters, under outlier stress.

Why not the tiny smoke model: its attention is uniform (risks.md M1-M2: with self-attention removed it still
agrees 97.4 % with itself), so no cache error can show, and its activations have no outlier channels.

The harness model (`build_copy_musicgen`) is a MusicGen checkpoint in the real on-disk format (the tiny builder,
head size 64: 4 heads of 64 in 256 dims, 2 layers, 4 codebooks of 2048, 2048 positions), whose decoder is
programmed, not trained, to continue a periodic sequence of codes: three heads of layer 0 attend to the key one
period back by matching the sinusoidal positions (the 32 fastest frequencies, which no other offset up to 2047
matches as well; `CopyProgram.sharpness` sets the logit margin), and copy its codes through V and the output
projection; the LM heads read them out (a top-1 probability near 0.5, the rest spread over the vocabulary). The
text moves the logits through cross-attention, so CFG 3 amplifies a real conditional/null difference. Training
it for a few seconds was tried first: on 2 shared cores a step took 2.5 s and 200 steps learned only the
alphabet, not the copy. A programmed copy is instant, deterministic, and its attention provably matters (the
attention-removed control, `CONTROLS`).

Stresses (`Stress`), each applied to the checkpoint before a mode loads it; the outlier transforms are
function-preserving in fp32 (outputs equal to rounding), so any change is the lossy mode's:
- k: in every head of layer 0, two K channels x A and the matching Q channels / A (outlier K channels);
- v: two V channels per head x A, the output projection's columns / A;
- ln: two channels of every LayerNorm (gamma and beta) x A, the next linears' input columns / A (activation
  outlier channels, as trained transformers have them);
- heads: HEAD_CHANNELS content channels of the final LayerNorm (gamma and beta) x A, the LM heads' input columns
  / A: activation outliers where the heads alone read them, the case where a quantized head flips argmax
  (onnxruntime#29849). Its controls (HEAD_CONTROLS, and BEFORE's "int8 weights, before": int8 heads, nothing
  equalised) are naive head quantizations that pass the plain stress and must fail this one;
- sharp: the copy heads' queries x s (sharper attention: not function-preserving, the reference is the sharpened
  fp32 model).

Head modes (`Option.heads`, EngineOptions.heads): int8 and int4 LM heads on top of int4 weights and the int8 cache
(auto's choice before the heads were measured), named so the table shows them whatever auto decides.

Metrics are those sampling sees (inference/musicgen/fidelity.py): per-step KL of the guided top-250 distribution
at CFG 3, top-k overlap and argmax agreement, teacher-forced stepwise through the decode path (fused attention
and cache writes) on one periodic history with 10 % of codes replaced at random, with bf16 weights and cache as
the noise floor. `continuo bench quality` prints the table (docs/benchmarks.md); tests run a short version.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from inference.api import GenerationRequest
from inference.musicgen.calibration import BUDGET
from inference.musicgen.engine import EngineOptions, engine_from_hf_model
from inference.musicgen.fidelity import GUIDANCE, Fidelity, compare
from inference.musicgen.model import sinusoids
from inference.musicgen.tiny import TinyShape, build_tiny_musicgen

HARNESS_SHAPE = TinyShape(decoder_hidden=256, decoder_ffn=512, decoder_layers=2, decoder_heads=4)
HEAD_DIM = 64
POSITION_FREQUENCIES = 32  # the fastest sinusoid frequencies: the copy heads match positions on these
COPY_HEADS = 3  # heads of layer 0 that copy (each carries 64 of the 192 content dimensions)
PROMPT = "dark techno kick"
DECODER = "decoder.model.decoder."


@dataclass(frozen=True)
class CopyProgram:
    """The programmed decoder: period in frames, attention logit margin scale, and the gains of the copy, the LM
    heads and the text's push on the logits."""

    period: int = 16
    sharpness: float = 1.5  # attention logit per unit of positional match (the next offset scores 3.5 less)
    copy_gain: float = 4.0
    head_gain: float = 0.08
    text_gain: float = 3.0


@dataclass(frozen=True)
class Stress:
    name: str
    k: float = 1.0
    v: float = 1.0
    ln: float = 1.0
    heads: float = 1.0
    sharp: float = 1.0


STRESSES = (Stress("none"), Stress("k x30", k=30), Stress("k x100", k=100), Stress("v x30", v=30),
            Stress("ln x30", ln=30), Stress("ln x100", ln=100), Stress("heads x100", heads=100),
            Stress("sharp x3", sharp=3), Stress("outliers x100", k=100, v=100, ln=100))
HEAD_CHANNELS = 8  # content channels of the final LayerNorm the heads stress makes loud


def position_dims(dim: int) -> list[int]:
    """The residual dimensions holding the cos and sin of the POSITION_FREQUENCIES fastest frequencies."""
    half = dim // 2
    return [*range(POSITION_FREQUENCIES), *range(half, half + POSITION_FREQUENCIES)]


def content_dims(dim: int) -> list[int]:
    taken = set(position_dims(dim))
    return [d for d in range(dim) if d not in taken]


@torch.no_grad()
def program_copy_(model, program: CopyProgram = CopyProgram(), seed: int = 0) -> None:
    """Set a transformers MusicgenForConditionalGeneration's decoder to the copy program (module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    config = model.config.decoder
    dim, heads = config.hidden_size, config.num_attention_heads
    assert dim // heads == HEAD_DIM and heads > COPY_HEADS, "the copy program needs head size 64 and 4+ heads"
    state = model.state_dict()
    content, half = content_dims(dim), dim // 2
    delay = program.period - 1  # position t predicts t + 1, whose codes sit one period back at t + 1 - period
    frequencies = sinusoid_frequencies(dim)
    for k in range(config.num_codebooks):
        table = torch.zeros_like(state[f"{DECODER}embed_tokens.{k}.weight"])
        table[:, content] = torch.randn(table.shape[0], len(content), generator=generator)
        state[f"{DECODER}embed_tokens.{k}.weight"].copy_(table)
        state[f"decoder.lm_heads.{k}.weight"].copy_(program.head_gain * table[: config.vocab_size])
    layer = f"{DECODER}layers.0.self_attn."
    q, k_, v, o = (state[f"{layer}{name}_proj.weight"] for name in ("q", "k", "v", "out"))
    for h in range(COPY_HEADS):
        rows = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
        for w in (q, k_, v):
            w[rows] = 0
        o[:, rows] = 0
        for j in range(POSITION_FREQUENCIES):
            c, s = math.cos(frequencies[j] * delay), math.sin(frequencies[j] * delay)
            cos_dim, sin_dim = j, half + j
            k_[h * HEAD_DIM + 2 * j, cos_dim] = 1.0
            k_[h * HEAD_DIM + 2 * j + 1, sin_dim] = 1.0
            # q . k = cos(w (t - delay - s)): the key one period back scores highest
            q[h * HEAD_DIM + 2 * j, cos_dim], q[h * HEAD_DIM + 2 * j, sin_dim] = c, s
            q[h * HEAD_DIM + 2 * j + 1, sin_dim], q[h * HEAD_DIM + 2 * j + 1, cos_dim] = c, -s
        q[rows] *= program.sharpness * 8.0 * 3.5  # x sqrt(D) and the LayerNorm's scale: `sharpness` per unit
        for c_index in range(HEAD_DIM):
            target = content[h * HEAD_DIM + c_index]
            v[h * HEAD_DIM + c_index, target] = 1.0
            o[target, h * HEAD_DIM + c_index] = program.copy_gain
    state[f"{DECODER}layers.0.encoder_attn.out_proj.weight"].mul_(program.text_gain / 0.02 * 0.05)
    state["enc_to_dec_proj.weight"].mul_(10.0)


def sinusoid_frequencies(dim: int) -> torch.Tensor:
    """The angular frequency of each cos/sin pair of the positions table (inference/musicgen/model.py:sinusoids)."""
    half = dim // 2
    table = sinusoids(2, dim)
    return torch.atan2(table[1, half:], table[1, :half])  # position 1: (cos w, sin w)


def linear_after(norm: str) -> list[str]:
    """The linears reading a LayerNorm's output (transformers' names), for the ln stress."""
    if norm.endswith("self_attn_layer_norm"):
        stem = norm.removesuffix("self_attn_layer_norm")
        return [f"{stem}self_attn.{name}_proj" for name in ("q", "k", "v")]
    if norm.endswith("encoder_attn_layer_norm"):
        return [norm.removesuffix("encoder_attn_layer_norm") + "encoder_attn.q_proj"]
    if norm.endswith("final_layer_norm"):
        return [norm.removesuffix("final_layer_norm") + "fc1"]
    return [f"decoder.lm_heads.{k}" for k in range(4)]


@torch.no_grad()
def apply_stress_(model, stress: Stress) -> None:
    """stress on a transformers MusicGen in place (function-preserving but for sharp)."""
    state = model.state_dict()
    config = model.config.decoder
    dim, heads = config.hidden_size, config.num_attention_heads
    channels = (5, 42)  # two channels of every head / norm (the same ones: outliers are stable across tokens)
    for i in range(config.num_hidden_layers):
        layer = f"{DECODER}layers.{i}.self_attn."
        for h in range(heads):
            rows = [h * HEAD_DIM + c for c in channels]
            if stress.k != 1.0 and i == 0:
                state[f"{layer}k_proj.weight"][rows] *= stress.k
                state[f"{layer}q_proj.weight"][rows] /= stress.k
            if stress.v != 1.0 and i == 0:
                state[f"{layer}v_proj.weight"][rows] *= stress.v
                state[f"{layer}out_proj.weight"][:, rows] /= stress.v
        if stress.sharp != 1.0 and i == 0:
            state[f"{layer}q_proj.weight"][: COPY_HEADS * HEAD_DIM] *= stress.sharp
    if stress.heads != 1.0:  # the final LayerNorm's outlier channels, read by the LM heads alone
        for c in content_dims(dim)[:: len(content_dims(dim)) // HEAD_CHANNELS][:HEAD_CHANNELS]:
            state[f"{DECODER}layer_norm.weight"][c] *= stress.heads
            state[f"{DECODER}layer_norm.bias"][c] *= stress.heads
            for linear in linear_after(f"{DECODER}layer_norm"):
                state[f"{linear}.weight"][:, c] /= stress.heads
    if stress.ln != 1.0:
        norms = [f"{DECODER}layers.{i}.{kind}" for i in range(config.num_hidden_layers)
                 for kind in ("self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm")]
        norm_channels = (position_dims(dim)[3], content_dims(dim)[100])  # one positional, one content channel
        for norm in [*norms, f"{DECODER}layer_norm"]:
            for c in norm_channels:
                state[f"{norm}.weight"][c] *= stress.ln
                state[f"{norm}.bias"][c] *= stress.ln
                for linear in linear_after(norm):
                    state[f"{linear}.weight"][:, c] /= stress.ln


@torch.no_grad()
def remove_attention_(model) -> None:
    """The control: every self-attention output projection zeroed (a model that ignores its history)."""
    for name, tensor in model.state_dict().items():
        if name.endswith("self_attn.out_proj.weight"):
            tensor.zero_()


@torch.no_grad()
def coarse_weights_(model, bits: int = 3) -> None:
    """The control: every decoder linear's weights rounded to `bits` bits per row (a deliberately coarse
    quantiser, applied in place in fp32)."""
    levels = 2 ** (bits - 1) - 1
    for name, tensor in model.state_dict().items():
        if name.startswith(DECODER + "layers.") and name.endswith(("proj.weight", "fc1.weight", "fc2.weight")):
            scale = tensor.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / levels
            tensor.copy_(torch.round(tensor / scale) * scale)


@torch.no_grad()
def per_tensor_heads_(model, bits: int = 8) -> None:
    """The control: each LM head's weights rounded to `bits` bits with one scale for the whole head (a naive
    per-tensor quantizer, applied in place in fp32; nothing else changes)."""
    levels = 2 ** (bits - 1) - 1
    for name, tensor in model.state_dict().items():
        if name.startswith("decoder.lm_heads."):
            scale = tensor.abs().amax().clamp_min(1e-12) / levels
            tensor.copy_(torch.round(tensor / scale) * scale)


def harness_codes(frames: int, period: int, *, noise: float = 0.1, seed: int = 0, codebooks: int = 4,
                  vocab: int = 2048) -> torch.Tensor:
    """(1, K, frames) codes: a random motif of `period` frames repeated, a fraction `noise` of codes random."""
    generator = torch.Generator().manual_seed(seed)
    motif = torch.randint(vocab, (1, codebooks, period), generator=generator)
    codes = motif.repeat(1, 1, math.ceil(frames / period))[:, :, :frames].clone()
    replaced = torch.rand(codes.shape, generator=generator) < noise
    codes[replaced] = torch.randint(vocab, (int(replaced.sum()),), generator=generator)
    return codes


def build_copy_musicgen(out_dir: Path, program: CopyProgram = CopyProgram(), seed: int = 0) -> Path:
    """The harness checkpoint in out_dir (the tiny builder's on-disk format, its smoke marker included)."""
    return build_tiny_musicgen(out_dir, seed=seed, shape=HARNESS_SHAPE,
                               edit=lambda model: program_copy_(model, program, seed))


def load_hf(directory: Path):
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
    return MusicgenForConditionalGeneration.from_pretrained(directory, local_files_only=True).eval(), processor


@dataclass(frozen=True)
class Option:
    """A mode the engine can run, by its EngineOptions fields; prepare: a change to the checkpoint first."""

    name: str
    weights: str = "fp32"
    kv_cache: str = "fp32"
    attention: str = "fused-cpu"
    calibrate: bool = True
    prepare: Callable | None = None
    heads: str = "auto"  # EngineOptions.heads: the LM heads beside int8 / int4 weights


EXACT = Option("fp32")
FLOOR = Option("bf16 floor (weights + cache)", weights="bf16", kv_cache="bf16")
BEFORE = (Option("int8 cache, before", kv_cache="int8", calibrate=False),
          Option("int8 weights, before", weights="int8", calibrate=False),
          Option("auto, before (int8 + int8 cache)", "auto", "auto", "auto", calibrate=False))
OPTIONS = (Option("bf16 cache", kv_cache="bf16"), Option("int8 cache", kv_cache="int8"),
           Option("mulaw8 cache", kv_cache="mulaw8"), Option("int8 weights", weights="int8"),
           Option("int8 weights + int8 cache", weights="int8", kv_cache="int8"), Option("int4 weights", weights="int4"),
           Option("int4 weights + int8 cache", weights="int4", kv_cache="int8"),
           Option("int4 weights + int8 heads + int8 cache", weights="int4", kv_cache="int8", heads="int8"),
           Option("int4 weights + int4 heads + int8 cache", weights="int4", kv_cache="int8", heads="int4"),
           Option("auto", "auto", "auto", "auto"))
CONTROLS = (Option("control: attention removed", prepare=remove_attention_),
            Option("control: 3-bit weights", prepare=coarse_weights_))
HEAD_CONTROLS = (Option("control: int8 heads, one scale per tensor", prepare=per_tensor_heads_),)  # and BEFORE's
# "int8 weights, before" (nothing equalised, heads int8 through our kernel): naive head quantizations the heads
# stress must fail


class Harness:
    """One stressed harness model: guided logits of any option over one history, compared with fp32's."""

    def __init__(self, directory: Path, stress: Stress, *, frames: int, program: CopyProgram = CopyProgram(),
                 stepwise: bool = True):
        self.model, processor = load_hf(directory)
        self.tokenizer = processor.tokenizer
        apply_stress_(self.model, stress)
        self.stress, self.stepwise = stress, stepwise
        self.codes = harness_codes(frames, program.period)
        self.request = GenerationRequest(prompt=PROMPT, duration_s=frames / 50, seed=0, guidance_scale=GUIDANCE)
        self.reference = self.logits(EXACT)
        self.last_modes: dict = {}

    def engine(self, option: Option):
        model = self.model
        if option.prepare is not None:
            model = copy.deepcopy(model)
            option.prepare(model)
        options = EngineOptions(weights=option.weights, kv_cache=option.kv_cache, attention=option.attention,
                                calibrate=option.calibrate, heads=option.heads)
        return engine_from_hf_model(model, self.tokenizer, options=options, name="quality harness", is_random=True)

    def logits(self, option: Option) -> torch.Tensor:
        engine = self.engine(option)
        self.last_modes = engine.info.modes
        return engine.teacher_forced_logits(self.request, self.codes, stepwise=self.stepwise)

    def measure(self, option: Option) -> Fidelity:
        return compare(self.reference, self.logits(option))


def run_quality_suite(*, frames: int = 1500, stresses: tuple[Stress, ...] = STRESSES,
                      options: tuple[Option, ...] = (FLOOR, *BEFORE, *OPTIONS, *CONTROLS, *HEAD_CONTROLS),
                      emit: Callable[[dict], None] = print,
                      progress: Callable[[str], None] | None = None) -> list[dict]:
    """One dict per (stress, option): Fidelity against fp32 beside the floor's (the first option)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="continuo-quality-") as tmp:
        directory = build_copy_musicgen(Path(tmp) / "copy")
        for stress in stresses:
            if progress is not None:
                progress(f"stress {stress.name}: {frames} positions, {len(options)} options")
            harness = Harness(directory, stress, frames=frames)
            floor = None
            for option in options:
                started = time.monotonic()
                fidelity = harness.measure(option)
                floor = floor or fidelity
                modes = harness.last_modes
                resolved = f"{modes.get('weights')} weights, {modes.get('heads')} heads, {modes.get('kv_cache')} cache"
                row = {"suite": "quality", "stress": stress.name, "option": option.name, "resolved": resolved,
                       **fidelity.row(),
                       "floor_kl": round(floor.kl, 6), "kl_vs_floor": round(fidelity.kl / max(floor.kl, 1e-12), 2),
                       "within_budget": BUDGET.allows(fidelity, floor), "seconds": round(time.monotonic() - started, 2)}
                emit(row)
                results.append(row)
    return results


ATTENTION_CHANNEL = 7  # the K channel made loud in attention_errors


def attention_errors(gain: float, *, keys: int = 1500, logit_std: float = 3.0, seed: int = 0) -> dict[str, float]:
    """Relative error of one decode step's attention output (head size 64, `keys` cached keys, attention logits of
    std logit_std, as trained heads have them) with one K channel x gain, per cache scheme, through the cache
    classes and the fused kernel: int8 per token as before; int8 after equalisation (factors from 256 other keys
    of the same distribution, as calibration measures them at load); mu-law; bf16."""
    from inference.musicgen.calibration import per_head_unit
    from inference.musicgen.kv_cache import Int8KVCache, KVCache, MuLawKVCache, int8_encode
    from inference.runtime.kernels import decode_attention_op

    op = decode_attention_op()
    generator = torch.Generator().manual_seed(seed)
    k, v = (torch.randn(1, 1, keys, HEAD_DIM, generator=generator) for _ in range(2))
    calibration = torch.randn(256, HEAD_DIM, generator=generator)
    q = torch.randn(1, 1, 1, HEAD_DIM, generator=generator)
    k[..., ATTENTION_CHANNEL] *= gain
    calibration[:, ATTENTION_CHANNEL] *= gain
    scale = HEAD_DIM**-0.5
    q = q * logit_std / ((q @ k.transpose(-1, -2)) * scale).std()
    positions = torch.arange(keys)

    def attend(cache, query, key, value=v) -> torch.Tensor:
        cache.write_span(positions, key, value)
        return cache.attend_one(query, keys, op, scale)

    exact = attend(KVCache(1, 1, keys, HEAD_DIM, torch.float32), q, k)
    unit = per_head_unit(calibration.abs().amax(dim=0), 1)
    # KIVI's scheme, simulated (not built; docs/benchmarks.md says why): K per channel over every key, V per token
    k_scale = k.abs().amax(dim=2, keepdim=True) / 127
    kivi_k = torch.round(k / k_scale).clamp(-127, 127) * k_scale
    codes, v_scale = int8_encode(v)
    kivi = attend(KVCache(1, 1, keys, HEAD_DIM, torch.float32), q, kivi_k, codes.float() * v_scale)
    outputs = {"int8, before": attend(Int8KVCache(1, 1, keys, HEAD_DIM), q, k),
               "int8 K per channel, V per token (KIVI, simulated)": kivi,
               "int8 equalised": attend(Int8KVCache(1, 1, keys, HEAD_DIM), q * unit, k / unit),
               "mulaw8 equalised": attend(MuLawKVCache(1, 1, keys, HEAD_DIM), q * unit, k / unit),
               "bf16": attend(KVCache(1, 1, keys, HEAD_DIM, torch.bfloat16), q, k)}
    return {name: ((out - exact).norm() / exact.norm()).item() for name, out in outputs.items()}


def run_attention_suite(*, gains: tuple[float, ...] = (1, 10, 30, 100), emit: Callable[[dict], None] = print
                        ) -> list[dict]:
    rows = []
    for gain in gains:
        row = {"suite": "quality-attention", "k_channel_gain": gain, "keys": 1500, "head_dim": HEAD_DIM,
               **{name: round(error, 4) for name, error in attention_errors(gain).items()}}
        emit(row)
        rows.append(row)
    return rows
