"""The engine benchmark: random-weight MusicGen models of the real shapes, our engine and transformers in one run.

One dict per configuration (the bridge prints them as JSON lines). steps_per_s is measured the same way for both
backends: decode steps after the first, over the time between the first and the last step.

Our engine is timed as a user gets it from a warm engine: one generate with streaming on (the codec decodes while
the steps run, inference/musicgen/codec.py), a prompt it has not seen (T5 included). first_audio_s: request to
the first streamed chunk (0.5 s of audio); rtf: request to the whole render. Beside it, in the same run: a
memory-bandwidth probe right before and after each run (`bandwidth_gbs`, the higher; `probes_gbs`, both), the
bytes one step reads (`step_bytes`: every linear's weights, the LM heads, the cache at the mean position) and so
the roofline
(`roofline_steps_per_s`, `roofline_step_ms`); the median step (`step_ms`: a decode step alone, the streamed
codec's chunks fall between a few), the fraction of the roofline it reaches (`roofline_fraction`) and what it
spends past the bytes (`overhead_ms`: dispatch, compute, attention); and each configuration's wall against
transformers' (`vs_transformers`). The targets (issue 24): `TARGETS`, checked per row (`targets`).

The wall of each target, from the same run (`run_walls`, `walls` and `reachable` in the row): the figure the run
would have reached with every decode step after the first at its roofline and everything else as it ran (T5, the
prefill, the first step, the streamed codec's pushes, each timed, and the render's assembly). A target whose wall is
past it (`reachable` false) cannot be met at this run's bandwidth whatever the steps do.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from inference.api import GenerationRequest
from inference.musicgen.engine import EngineOptions, engine_from_hf_model
from inference.musicgen.model import ModelArgs
from inference.musicgen.streaming import ExactStreamer
from inference.runtime.memory import trim_heap
from inference.runtime.quantize import weight_bytes

log = logging.getLogger("continuo.inference")

PROMPT = "warm lo-fi piano with soft drums"
T5_BASE = dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12, vocab_size=32128)
ENCODEC_32KHZ = dict(
    sampling_rate=32_000, audio_channels=1, hidden_size=128, num_filters=64, upsampling_ratios=[8, 5, 4, 4],
    num_lstm_layers=2, codebook_size=2048, target_bandwidths=[2.2], use_causal_conv=False, normalize=False,
    use_conv_shortcut=False, norm_type="weight_norm",
)


@dataclass(frozen=True)
class BenchConfig:
    backend: str  # engine | transformers
    weights: str
    kv_cache: str
    compile: bool = False
    attention: str = "auto"
    compile_backend: str = "inductor"  # eager: Dynamo's trace alone, for the CPU dry run of `bench gpu`
    heads: str = "auto"  # the LM heads (EngineOptions.heads): auto keeps bf16 beside named weights


def configs_for(device: torch.device, quick: bool) -> list[BenchConfig]:
    if device.type == "cuda":
        configs = [BenchConfig("transformers", "fp16", "fp16"), BenchConfig("engine", "fp16", "fp16"),
                   BenchConfig("engine", "fp16", "fp16", compile=True), BenchConfig("engine", "bf16", "mulaw8"),
                   BenchConfig("engine", "bnb-int8", "fp16"), BenchConfig("engine", "bnb-nf4", "fp16")]
        return configs[:3] if quick else configs
    configs = [BenchConfig("transformers", "fp32", "fp32"), BenchConfig("engine", "int4", "int8", heads="int8"),
               BenchConfig("engine", "int4", "int8"), BenchConfig("engine", "int8", "int8"),
               BenchConfig("engine", "fp32", "fp32"),
               BenchConfig("engine", "int8", "fp32"), BenchConfig("engine", "int8", "mulaw8")]
    # int4 weights with int8 heads is what auto resolves to on the quality harness (docs/benchmarks.md, "Quality");
    # bf16 weights are slower than fp32 on the CPU (FACTS)
    return configs[:4] if quick else configs


def build_random_musicgen(shape: str, seed: int = 0):
    """(model, tokenizer): random weights, real widths/depths of shape (T5-base, EnCodec 32 kHz)."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    from inference.musicgen.tiny import build_tokenizer

    args = ModelArgs.from_name(shape)
    config = MusicgenConfig(
        text_encoder=T5Config(**T5_BASE, feed_forward_proj="relu", pad_token_id=0, eos_token_id=1,
                              decoder_start_token_id=0),
        audio_encoder=EncodecConfig(**ENCODEC_32KHZ),
        decoder=MusicgenDecoderConfig(
            vocab_size=args.vocab_size, max_position_embeddings=args.max_positions, num_hidden_layers=args.n_layer,
            ffn_dim=args.ffn_dim, num_attention_heads=args.n_head, hidden_size=args.dim,
            num_codebooks=args.num_codebooks, audio_channels=args.audio_channels,
            pad_token_id=args.pad_id, bos_token_id=args.pad_id,
        ),
    )
    from transformers import MusicgenForConditionalGeneration

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = model.generation_config.decoder_start_token_id = args.pad_id
    model.generation_config.bos_token_id = args.pad_id
    return model, build_tokenizer()


class StepClock:
    """Timestamps of decode steps; steps_per_s over steps 2..N, first_chunk_s when a chunk of frames is complete.

    On CUDA every tick waits for the device first: kernels are queued, and without it the clock would time the
    launches, not the work (and a sync-free decode loop would look as fast as Python can queue).
    """

    def __init__(self, chunk_steps: int, device: torch.device | None = None):
        self.chunk_steps = chunk_steps
        self.device = device if device is not None and device.type == "cuda" else None
        self.sync()
        self.started = time.perf_counter()
        self.times: list[float] = []

    def sync(self) -> None:
        if self.device is not None:
            torch.cuda.synchronize(self.device)

    def __call__(self, steps_done: int, *_args) -> None:
        self.sync()
        self.times.append(time.perf_counter())

    def steps_per_s(self) -> float:
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])

    def median_step_s(self) -> float:
        """The median interval between steps: a decode step alone (the streamed codec runs between a few)."""
        intervals = sorted(b - a for a, b in zip(self.times, self.times[1:]))
        return intervals[len(intervals) // 2]

    def chunk_ready_s(self) -> float:
        return self.times[min(self.chunk_steps, len(self.times)) - 1] - self.started


def run_transformers(model, processor_like, duration_s: float, clock: StepClock, seed: int) -> None:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Tick(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            clock(0)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    frames = round(duration_s * 50)
    inputs = processor_like([PROMPT], return_tensors="pt", padding=True)
    inputs = {name: value.to(model.device) for name, value in inputs.items()}
    torch.manual_seed(seed)
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=frames + 3, do_sample=True, top_k=250, guidance_scale=3.0,
                       stopping_criteria=StoppingCriteriaList([Tick()]))


def reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    from inference.runtime.memory import peak_resident_bytes

    return (peak_resident_bytes() or 0) / 2**20


def transformers_cache_bytes(model, steps: int, batch: int) -> int:
    """Self-attention DynamicCache at the end of the run (keys + values, every layer), for comparison."""
    decoder = model.config.decoder
    element = next(model.decoder.parameters()).element_size()
    return decoder.num_hidden_layers * 2 * batch * steps * decoder.hidden_size * element


TARGETS = {  # issue 24, musicgen-small shape, 10 s, CFG 3, 2 threads (musicgen-medium: rtf <= 1.5)
    "rtf": 0.5, "decoder_rtf": 0.4, "first_audio_s": 0.25, "vs_transformers": 16.0, "roofline_fraction": 0.7}
SHAPE_TARGETS = {"musicgen-small": TARGETS, "musicgen-medium": {"rtf": 1.5}}
AT_LEAST = ("vs_transformers", "roofline_fraction")  # the ratios; the other targets are times
WARM_UP_PROMPT = "warm up, a prompt the measured run does not share"


def memory_bandwidth_gbs(megabytes: int = 512, repeats: int = 5) -> float:
    """This machine's read bandwidth now, at torch's thread count: the best of repeats sums over a buffer far
    larger than the caches (what a decode step's weight read is bound by)."""
    buffer = torch.ones(megabytes * 2**20 // 4)
    buffer.sum()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        buffer.sum()
        best = min(best, time.perf_counter() - started)
    return buffer.numel() * 4 / best / 1e9


def step_bytes(engine, position: int, rows: int = 2) -> int:
    """Bytes one decode step of engine reads: the layers' and heads' weights as stored (codes, scales, packed
    blocks, LayerNorms), and the self-attention cache of rows (CFG: 2) up to position. Not the cross-attention's
    key/value projection (run once per request on the text: encode_memory), nor the few text keys it reads."""
    return decoder_step_bytes(engine.decoder, position, rows)


def decoder_step_bytes(decoder, position: int, rows: int = 2) -> int:
    """step_bytes for a decoder alone."""

    def nbytes(module) -> int:
        tensors = [*module.parameters(), *module.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    total = sum(nbytes(layer) for layer in decoder.layers) + sum(nbytes(head) for head in decoder.heads)
    total -= sum(nbytes(layer.cross_attention.wkv) for layer in decoder.layers if layer.cross_attention is not None)
    cache = decoder.layers[0].attention.kv_cache
    if cache is not None:
        total -= sum(cache.nbytes() for cache in (layer.attention.kv_cache for layer in decoder.layers))
        per_position_row = cache.nbytes() / cache.positions / cache.rows
        total += int(per_position_row * position * rows * len(decoder.layers))
    return total


@contextmanager
def patched(owner, name: str, replacement) -> Iterator[None]:
    """owner.name replaced while the block runs (a bench's timers around the engine's own methods)."""
    original = owner.__dict__[name]
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


def run_walls(*, started: float, ticks: list[float], pushes: list[tuple[float, float]], wall_s: float,
              first_audio_s: float, read_s: Callable[[int], float], audio_s: float) -> dict:
    """The run with every decode step after the first at its roofline and everything else as it ran: the wall each
    time target meets at this run's bandwidth.

    ticks: a time after each decode step (the first step carries T5 and the prefill); pushes: (start, seconds) of
    each streamed codec push (they run between steps, after a step's tick, and the final one after the last);
    read_s(position): a step's roofline, its read at that position over the run's bandwidth, taken at the mean
    position of the steps it stands for (the run's, and the shorter caches' of the steps before first audio). A
    step's time is what lies between two ticks less the pushes in it; first audio came after the steps whose ticks
    precede it, and the push that returned it."""
    def steps_spent(last: int) -> float:  # steps 2..last+1: their ticks' span less the pushes inside it
        span_end = ticks[last]
        inside = sum(seconds for began, seconds in pushes if ticks[0] <= began < span_end)
        return span_end - ticks[0] - inside

    steps = len(ticks)
    spent, roofline_s = steps_spent(steps - 1), read_s(steps // 2)
    first_steps = sum(1 for tick in ticks if tick - started <= first_audio_s)
    first_spent, roofline_first_s = steps_spent(first_steps - 1), read_s(first_steps // 2)
    at_roofline = (steps - 1) * roofline_s - spent  # the run's change with those steps at their roofline (< 0)
    wall = wall_s + at_roofline
    return {
        "rtf": round(wall / audio_s, 3),
        "decoder_rtf": round((ticks[-1] - started + at_roofline) / audio_s, 3),
        "first_audio_s": round(first_audio_s - first_spent + (first_steps - 1) * roofline_first_s, 3),
        "wall_s": round(wall, 2),
        "steps_s": round(spent, 3), "pushes_s": round(sum(seconds for _, seconds in pushes), 3),
        "first_audio_steps": first_steps,
    }


def bench_config(model, tokenizer, shape: str, config: BenchConfig, duration_s: float, device: torch.device,
                 seed: int = 0, probe_bandwidth: bool = False) -> dict:
    """One configuration's row. probe_bandwidth: the bandwidth probe right before and right after the timed run,
    the higher kept (a shared machine's load moves within minutes; the roofline is the ceiling seen around it)."""
    frames = round(duration_s * 50)
    steps = frames + 3
    chunk_steps = 50 + 3  # the first second of all four codebooks
    engine = None
    if config.backend == "engine":
        options = EngineOptions(weights=config.weights, kv_cache=config.kv_cache, attention=config.attention,
                                compile=config.compile, compile_backend=config.compile_backend, heads=config.heads)
        engine = engine_from_hf_model(model, tokenizer, options=options, device=device, name=shape)
        graphs_before = compile_counts()
        engine.generate(GenerationRequest(prompt=WARM_UP_PROMPT, duration_s=0.1, seed=seed))  # warm (and compile)
    else:
        model.to(device=device, dtype=torch.float16 if config.weights == "fp16" else torch.float32)
        run_transformers(model, tokenizer, 0.1, StepClock(1), seed)
    gc.collect()
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    bandwidth_gbs = memory_bandwidth_gbs() if probe_bandwidth else None
    clock = StepClock(chunk_steps, device)
    first_audio_s = None
    if engine is not None:
        def on_chunk(_audio) -> None:
            nonlocal first_audio_s
            if first_audio_s is None:
                first_audio_s = time.perf_counter() - clock.started

        ticks: list[float] = []  # should_cancel is asked once before the steps, then once per step
        pushes: list[tuple[float, float]] = []  # the streamed codec's pushes: (start, seconds)
        push = ExactStreamer.push

        def timed_push(streamer, codes, final):
            began = time.perf_counter()
            try:
                return push(streamer, codes, final)
            finally:
                pushes.append((began, time.perf_counter() - began))

        request = GenerationRequest(prompt=PROMPT, duration_s=duration_s, seed=seed)
        with patched(ExactStreamer, "push", timed_push):
            engine.generate(request, on_chunk=on_chunk,
                            should_cancel=lambda: ticks.append(time.perf_counter()) is not None)
        clock.sync()
        wall_s = time.perf_counter() - clock.started
        clock.times = ticks[1:]
    else:
        run_transformers(model, tokenizer, duration_s, clock, seed)
        clock.sync()
        wall_s = time.perf_counter() - clock.started
    if first_audio_s is None:
        first_audio_s = wall_s  # transformers hands over audio only at the end
    probes = None
    if bandwidth_gbs is not None:  # both readings kept: one far above the other was a burst the steps may not see
        probes = [round(bandwidth_gbs, 1), round(memory_bandwidth_gbs(), 1)]
        bandwidth_gbs = max(bandwidth_gbs, probes[1])
    result = {
        "suite": "engine", "shape": shape, "backend": config.backend, "weights": config.weights,
        "kv_cache": config.kv_cache, "compile": config.compile,
        "attention": engine.options.attention if engine else "sdpa",
        "device": str(device), "cfg": 3.0, "audio_s": duration_s, "steps": steps,
        "steps_per_s": round(clock.steps_per_s(), 2),
        "decoder_rtf": round((clock.times[-1] - clock.started) / duration_s, 3),
        "rtf": round(wall_s / duration_s, 3), "wall_s": round(wall_s, 2), "first_audio_s": round(first_audio_s, 3),
        "peak_rss_mb": round(peak_rss_mb()),
        "device_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None,
        "kv_cache_bytes": engine.cache_bytes() if engine else transformers_cache_bytes(model, steps, 2),
        "threads": torch.get_num_threads(), "load_1min": round(os.getloadavg()[0], 2),
    }
    if engine is not None:
        result["resolved"] = (f"{engine.weights.value} weights, LM heads {engine.info.modes.get('heads', '?')}, "
                              f"{engine.kv_cache.value} cache")
        result["decoder_weights_mb"] = round(weight_bytes(engine.decoder) / 2**20)
        position = steps // 2  # the mean position of the run's steps
        read = step_bytes(engine, position)
        step_s = clock.median_step_s()
        result |= {"step_mb": round(read / 1e6, 1), "fast_step": engine.decoder.fast_weights_built(),
                   "step_ms": round(step_s * 1e3, 2)}
        if bandwidth_gbs:  # the wall: a step can go no faster than its bytes at the probe's bandwidth
            roofline_s = read / (bandwidth_gbs * 1e9)
            result |= {"bandwidth_gbs": round(bandwidth_gbs, 1), "probes_gbs": probes,
                       "roofline_steps_per_s": round(1 / roofline_s, 1),
                       "roofline_step_ms": round(roofline_s * 1e3, 2),
                       "overhead_ms": round((step_s - roofline_s) * 1e3, 2),
                       "roofline_fraction": round(roofline_s / step_s, 3)}
            result["walls"] = run_walls(
                started=clock.started, ticks=clock.times, pushes=pushes, wall_s=wall_s, first_audio_s=first_audio_s,
                read_s=lambda at, of=engine: step_bytes(of, at) / (bandwidth_gbs * 1e9), audio_s=duration_s)
    if config.compile and engine is not None:
        result |= {name: count - graphs_before[name] for name, count in compile_counts().items()}
        result["compile_backend"] = config.compile_backend
    del engine
    trim_heap()  # the next configuration starts from what is held, not this one's freed heap (RSS grew per row)
    return result


def check_targets(result: dict, baseline: dict | None) -> dict:
    """Adds vs_transformers (their wall / ours, same run) and, on the CPU, each target met or not."""
    if baseline is not None and result["backend"] == "engine":
        result["vs_transformers"] = round(baseline["wall_s"] / result["wall_s"], 2)
        result["steps_vs_transformers"] = round(result["steps_per_s"] / baseline["steps_per_s"], 2)
    if result["backend"] != "engine" or result["device"] != "cpu":
        return result
    limits = SHAPE_TARGETS.get(result["shape"])
    if limits is None:
        return result
    result["targets"] = {name: met(name, result[name], limit) for name, limit in limits.items() if name in result}
    walls = result.get("walls")
    if walls is not None:  # each target's wall at this run's bandwidth: can it be met at all?
        if baseline is not None:
            walls["vs_transformers"] = round(baseline["wall_s"] / walls["wall_s"], 2)
        result["reachable"] = {name: met(name, walls[name], limit) for name, limit in limits.items() if name in walls}
    return result


def met(name: str, value: float, limit: float) -> bool:
    """A target met: the ratios (AT_LEAST) at or above their limit, the times at or below."""
    return value >= limit if name in AT_LEAST else value <= limit


def cache_attention_ms(device: torch.device, positions: int, *, dtype: torch.dtype = torch.float32, batch: int = 2,
                       heads: int = 16, head_dim: int = 64, repeats: int = 30) -> dict[str, float]:
    """One layer's cache update + SDPA for one decode query (musicgen-small's shape, CFG batch), per cache mode:
    the best of 7 runs of `repeats`, in ms. mulaw8 here dequantizes the used cache as every CUDA path does."""
    from inference.musicgen.kv_cache import KVCache, MuLawKVCache

    q, k, v = (torch.randn(batch, heads, 1, head_dim, dtype=dtype, device=device) for _ in range(3))
    input_pos = torch.arange(positions - 1, positions, device=device)
    caches = {"cache": KVCache(batch, heads, 2048, head_dim, dtype, device=device),
              "mulaw8": MuLawKVCache(batch, heads, 2048, head_dim, device=device)}
    clock = StepClock(1, device)
    timings = {}
    for name, cache in caches.items():
        best = float("inf")
        for _ in range(7):
            clock.sync()
            started = time.perf_counter()
            for _ in range(repeats):
                keys, values = cache.update(input_pos, k, v, positions)
                torch.nn.functional.scaled_dot_product_attention(q, keys, values)
            clock.sync()
            best = min(best, (time.perf_counter() - started) / repeats * 1e3)
        timings[name] = round(best, 4)
    return timings


def compile_counts() -> dict[str, int]:
    """Dynamo's running totals: graphs compiled, graph breaks, CUDA graph captures skipped (a delta is one run's)."""
    from torch._dynamo.utils import counters

    return {"graphs": int(counters["stats"]["unique_graphs"]),
            "graph_breaks": int(sum(counters["graph_break"].values())),
            "cudagraph_skips": int(sum(counters["inductor"].get(name, 0) for name in ("cudagraph_skips",)))}


def run_engine_suite(*, quick: bool, shapes: list[str] | None = None, duration_s: float | None = None,
                     device: str = "auto", emit=print) -> list[dict]:
    from inference.runtime.device import pick_device

    target = pick_device(device)
    shapes = shapes or (["musicgen-small"] if quick else ["musicgen-small", "musicgen-medium"])
    duration_s = duration_s or (2.0 if quick else 10.0)
    results = []
    for shape in shapes:
        started = time.perf_counter()
        model, tokenizer = build_random_musicgen(shape)
        log.info("built random %s in %.1f s", shape, time.perf_counter() - started)
        if target.type == "cpu" and not results:  # one EnCodec for every shape: its row once (bench/codec.py)
            from inference.bench.codec import codec_row

            row = codec_row(model.audio_encoder) | {"shape": shape, "device": str(target)}
            emit(row)
            results.append(row)
        baseline = None
        for config in configs_for(target, quick):
            result = bench_config(model, tokenizer, shape, config, duration_s, target,
                                  probe_bandwidth=target.type == "cpu" and config.backend == "engine")
            baseline = result if config.backend == "transformers" else baseline
            result = check_targets(result, baseline)
            emit(result)
            results.append(result)
        del model
        gc.collect()
    return results

