"""Where one decode step's time goes (issue 24): a random-weight MusicGen of a real shape, one request at batch 2
(CFG), every step split into its parts.

Python side, timed around the methods one step calls (perf_counter, per step; medians reported):
- `step`: BatchScheduler.step, the whole step as the engine runs it (no streaming codec: no on_chunk);
- `layers_call` (CONTINUO_STEP_PROFILE=1 set for the process; the kernels read it once): the one C++ call through
  every layer (decode_layers.cpp) timed inside it, mean per step, and its split per op class (`layers`):
  layer norms, the six linears, cache write, self- and cross-attention, GELU, residual adds;
- `lm_heads`: final norm + the 4 codebook heads (MusicGenDecoder.head_logits), bf16, int8 or int4 (`heads`);
- `embed_and_args`: the rest of decode_rows (embeddings, positions, the C++ call's argument lists and their
  conversion at the call);
- `sampling`: CFG combine + top-k sampling (Sampler.__call__);
- `bookkeeping`: the rest of the step (tokens in, rows' cache views, delay pattern, progress callback).
Beside them the step's weight-and-cache bytes over the bandwidth probed in the same run (`read_floor_ms`): what a
step could not go below. Random weights: figures of speed only, never of quality.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import torch

PROFILE_VARIABLE = "CONTINUO_STEP_PROFILE"
# decode_layers_profile's slots (csrc/decode_layers.cpp: enum Part), in order
LAYER_PARTS = ("norm", "qkv", "cache_write", "self_attention", "self_out", "cross_q", "cross_attention",
               "cross_out", "ffn_in", "activation", "ffn_out", "residual_and_args", "setup")


class Timers:
    """Per-step seconds per named part, wall clock and this thread's CPU time (`<name>_cpu`); a part's calls within
    one step are summed."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.steps: list[dict[str, float]] = []

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[name] += time.perf_counter() - wall
                self.current[name + "_cpu"] += time.thread_time() - cpu
        return timed

    def end_step(self) -> None:
        self.steps.append(dict(self.current))
        self.current.clear()

    def median_ms(self, name: str, skip: int = 2) -> float:
        values = [step.get(name, 0.0) for step in self.steps[skip:]]
        return statistics.median(values) * 1e3 if values else 0.0


def profile_engine(engine, *, duration_s: float, prompt: str = "warm lo-fi piano with soft drums",
                   seed: int = 0) -> dict:
    """One request through engine with every step timed in parts (the module's docstring); medians in ms."""
    from inference.api import GenerationRequest
    from inference.bench.musicgen import patched
    from inference.musicgen import batching
    from inference.musicgen.decode import Sampler
    from inference.musicgen.model import MusicGenDecoder

    timers = Timers()
    step = batching.BatchScheduler.step
    decode_rows = MusicGenDecoder.decode_rows
    head_logits = MusicGenDecoder.head_logits
    sampler_call = Sampler.__call__
    ops = torch.ops.continuo_cpu

    parts = len(LAYER_PARTS) + 2  # decode_layers_profile: parts, total, calls; wall then CPU
    inside = [0.0] * (2 * parts)

    def one_step(self) -> None:
        timers.wrap("step", step)(self)
        this_step = ops.decode_layers_profile(True)
        timers.current["layers_call"] = this_step[parts - 2]
        timers.current["layers_call_cpu"] = this_step[2 * parts - 2]
        inside[:] = [total + value for total, value in zip(inside, this_step)]
        timers.end_step()

    ops.decode_layers_profile(True)
    with (patched(batching.BatchScheduler, "step", one_step),
          patched(MusicGenDecoder, "decode_rows", timers.wrap("decode_rows", decode_rows)),
          patched(MusicGenDecoder, "head_logits", timers.wrap("lm_heads", head_logits)),
          patched(Sampler, "__call__", timers.wrap("sampling", sampler_call))):
        engine.generate(GenerationRequest(prompt=prompt, duration_s=duration_s, seed=seed))
    result = {}
    for suffix in ("", "_cpu"):
        medians = {name: timers.median_ms(name + suffix)
                   for name in ("step", "decode_rows", "layers_call", "lm_heads", "sampling")}
        medians["embed_and_args"] = medians["decode_rows"] - medians["layers_call"] - medians["lm_heads"]
        medians["bookkeeping"] = medians["step"] - medians["decode_rows"] - medians["sampling"]
        result["python" + suffix] = {name: round(value, 3) for name, value in medians.items()}
    result["steps"] = len(timers.steps)
    result |= layer_split(inside)  # CONTINUO_STEP_PROFILE was set: the C++ call's own split, mean per call
    return result


def enable_layer_profile() -> None:
    """Sets CONTINUO_STEP_PROFILE=1 (decode_layers.cpp reads it at its first call in the process) and loads the
    kernels (decode_layers_profile is theirs); raises with the reason when they cannot be built here."""
    os.environ[PROFILE_VARIABLE] = "1"
    from inference.runtime.kernels import kernels_status

    status = kernels_status()
    if not status.usable:
        raise RuntimeError(f"the step profile runs our CPU kernels, which are not here: {status.reason}")


DECODER_ONLY_SHAPES = ("musicgen-medium", "musicgen-large", "musicgen-stereo-medium", "musicgen-stereo-large")


def run_step_profile(*, shape: str = "musicgen-small", weights: tuple[str, ...] = ("int4", "int8"),
                     heads: tuple[str, ...] = ("bf16", "int8", "int4"), kv_cache: str = "int8",
                     duration_s: float = 4.0, rounds: int = 2, rows: int = 2, emit=print) -> list[dict]:
    """Each weight mode's engine, with each LM-head mode (EngineOptions.heads, named: the heads' part before and
    after quantizing them), profiled `rounds` times, alternated (the modes meet the same load); one dict per
    profile. Shapes of DECODER_ONLY_SHAPES (their fp32 model does not fit beside other work): the decoder alone,
    built one linear at a time, `duration_s * 5` steps per profile (decode_rows: no sampling, no T5).
    rows above 2 (batched requests, each row with its own cache): the decoder alone at 2 rows and at `rows`,
    alternated, over a whole job's positions (`duration_s * 50` steps from position 0; medium's `duration_s * 5`)."""
    enable_layer_profile()
    if shape in DECODER_ONLY_SHAPES or rows != 2:
        steps = max(8, round(duration_s * 5)) if shape in DECODER_ONLY_SHAPES else round(duration_s * 50)
        return run_decoder_profile(shape=shape, weights=weights, kv_cache=kv_cache, steps=steps, rounds=rounds,
                                   rows=(2, rows) if rows != 2 else (2,), emit=emit)
    from inference.api import GenerationRequest
    from inference.bench.musicgen import build_random_musicgen, memory_bandwidth_gbs, step_bytes
    from inference.musicgen.engine import EngineOptions, engine_from_hf_model

    model, tokenizer = build_random_musicgen(shape)
    engines = {}
    for mode in weights:
        for head in heads:
            options = EngineOptions(weights=mode, kv_cache=kv_cache, heads=head)
            engine = engine_from_hf_model(model, tokenizer, options=options, name=shape)
            engine.generate(GenerationRequest(prompt="warm up", duration_s=0.2, seed=0))
            engines[mode, head] = engine
    del model
    results = []
    for round_index in range(rounds):
        for (mode, head), engine in engines.items():
            bandwidth = memory_bandwidth_gbs()
            profile = profile_engine(engine, duration_s=duration_s)
            read = step_bytes(engine, profile["steps"] // 2)
            result = {"suite": "step-profile", "shape": shape, "weights": mode, "heads": head, "kv_cache": kv_cache,
                      "round": round_index, "threads": torch.get_num_threads(),
                      "fast_step": engine.decoder.fast_weights_built(),
                      "fused_heads": engine.decoder.fused_heads() is not None, "step_mb": round(read / 1e6, 1),
                      "bandwidth_gbs": round(bandwidth, 1), "read_floor_ms": round(read / bandwidth / 1e6, 2),
                      **profile, "load_1min": round(os.getloadavg()[0], 2)}
            emit(result)
            results.append(result)
    return results


def run_decoder_profile(*, shape: str, weights: tuple[str, ...], kv_cache: str, steps: int, rounds: int,
                        rows: tuple[int, ...] = (2,), emit=print) -> list[dict]:
    """The decoder alone (random_decoder, time_decoder_steps), one weight mode and row count held at a time
    (medium's int8 decoder is 1.9 GB), `rounds` times each, alternated; every row with text (no CFG null row)."""
    import gc

    from inference.bench.musicgen import decoder_step_bytes, memory_bandwidth_gbs

    results = []
    for round_index in range(rounds):
        for mode in weights:
            for count in rows:
                decoder = random_decoder(shape, mode, kv_cache=kv_cache, rows=count, positions=max(64, steps + 8))
                time_decoder_steps(decoder, steps=2, rows=count)  # warm: first touches, the one-call path's lists
                bandwidth = memory_bandwidth_gbs()
                started = time.perf_counter()
                timed = time_decoder_steps(decoder, steps=steps, rows=count)
                wall = time.perf_counter() - started
                read = decoder_step_bytes(decoder, steps // 2, count)
                result = {"suite": "step-profile", "shape": shape, "weights": mode, "kv_cache": kv_cache,
                          "round": round_index, "threads": torch.get_num_threads(), "decoder_only": True,
                          "rows": count, "steps": steps, "steps_wall_s": round(wall, 2),
                          "step_mb": round(read / 1e6, 1), "bandwidth_gbs": round(bandwidth, 1),
                          "read_floor_ms": round(read / bandwidth / 1e6, 2), **timed,
                          "load_1min": round(os.getloadavg()[0], 2)}
                emit(result)
                results.append(result)
                del decoder
                gc.collect()
    return results


def random_decoder(shape: str, weights: str, *, kv_cache: str = "int8", rows: int = 2, positions: int = 512,
                   seed: int = 0):
    """A MusicGen decoder of shape with random weights in `weights` (int4 or int8; the LM heads bf16 as the engine
    keeps them), fused CPU attention and caches of rows x positions: built one linear at a time (each filled,
    quantized and swapped in before the next is filled), so the fp32 model is never whole in memory (medium's is
    7 GB)."""
    import math

    from inference.bench.random_weights import Pool, uninitialised_layers
    from inference.musicgen.kv_cache import KVCacheMode, build_cache_factory
    from inference.musicgen.model import ModelArgs, MusicGenDecoder
    from inference.runtime.kernels import int4_linear_op, int8_linear_op
    from inference.runtime.quantize import INT8_KEEP, kept_linear, kernel_linear, linears

    args = ModelArgs.from_name(shape)
    if int4_linear_op() is None or int8_linear_op() is None:  # built or loaded here first
        raise RuntimeError("the step profile runs our CPU kernels, which cannot be built here")
    with uninitialised_layers():
        decoder = MusicGenDecoder(args).eval()
    pool = Pool(seed)
    names = {id(module): name for name, module in decoder.named_modules()}
    with torch.no_grad():
        for embedding in decoder.embeddings:
            pool.fill_(embedding.weight.data, 0.05)
        pending = [(parent, name) for parent, name, _ in linears(decoder)]  # names only: a held nn.Linear would
        for parent, name in pending:  # keep its fp32 weight alive (medium's 7 GB, whole, before this was so)
            linear = getattr(parent, name)
            pool.fill_(linear.weight.data, 1.0 / math.sqrt(linear.in_features))
            if linear.bias is not None:
                linear.bias.data.zero_()
            if any(names[id(linear)].startswith(prefix) for prefix in INT8_KEEP):
                swapped = kept_linear(linear, "bf16")
            else:
                swapped = kernel_linear(linear, weights)  # int8 where int4's layout does not fit
            setattr(parent, name, swapped)
            del linear, swapped
    decoder.set_attention_backend("fused-cpu")
    decoder.setup_caches(build_cache_factory(KVCacheMode(kv_cache), batch=rows, heads=args.n_head,
                                             positions=positions, head_dim=args.head_dim,
                                             activation_dtype=torch.float32, device="cpu"))
    return decoder


def time_decoder_steps(decoder, *, steps: int = 100, rows: int = 2, text_tokens: int = 12, seed: int = 0,
                       digits: int = 3) -> dict:
    """steps decode steps of decoder alone (decode_rows: embeddings, the layers, the LM heads; no sampling), rows
    at the same position, from 0: the median step in ms, whether it took the one-call path, whether the last
    logits are finite, and the C++ call's split (CONTINUO_STEP_PROFILE=1) as means per step."""
    from inference.musicgen.model import RowPositions

    args = decoder.args
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        text = torch.randn(rows, text_tokens, args.text_dim, generator=generator)
        memory = decoder.encode_memory(text, torch.ones(rows, text_tokens, dtype=torch.long))
        tokens = torch.randint(0, args.vocab_size, (rows, args.num_codebooks, 1), generator=generator)
        positions = torch.zeros(rows, dtype=torch.long)
        torch.ops.continuo_cpu.decode_layers_profile(True)
        times = []
        for position in range(steps):
            started = time.perf_counter()
            logits = decoder.decode_rows(tokens, RowPositions.build(positions, position, True), position + 1,
                                         memory)
            times.append(time.perf_counter() - started)
            positions += 1
            tokens = logits[:, :, -1].argmax(dim=-1, keepdim=True)
        inside = torch.ops.continuo_cpu.decode_layers_profile(True)
    times.sort()
    result = {"step_ms": round(times[len(times) // 2] * 1e3, 2), "fast_step": decoder.fast_weights_built(),
              "finite": bool(torch.isfinite(logits).all())}
    return result | layer_split(inside, digits)


def layer_split(inside: list[float], digits: int = 3) -> dict:
    """decode_layers_profile's totals -> {"layers": wall ms per call, "layers_cpu": the thread's CPU ms per call},
    rounded to `digits` (nothing when CONTINUO_STEP_PROFILE was not set: no call counted)."""
    parts = len(LAYER_PARTS) + 2  # the parts, the total, the count of calls
    split = {}
    for key, values in (("layers", inside[:parts]), ("layers_cpu", inside[parts:])):
        calls = values[-1]
        if calls > 0:
            split[key] = {name: round(values[i] / calls * 1e3, digits)
                          for i, name in enumerate((*LAYER_PARTS, "total"))}
    return split
