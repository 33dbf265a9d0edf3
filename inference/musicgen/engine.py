"""Our engine, the default: our own decode loop over a MusicGen checkpoint in Hugging Face format.

MusicGenEngine satisfies inference.api.Engine, as the transformers reference (inference.musicgen.reference) does,
so the bridge switches engines without change. T5 and EnCodec are transformers modules; the decoder is
inference.musicgen.model.MusicGenDecoder with a static KV cache. It declares text, continuation, variations (one
batched decode), streaming and style mixing, and melody for MusicGen-melody checkpoints.

Concurrent requests share the decode steps (inference.musicgen.batching.BatchScheduler): a request that arrives
while others decode joins them at the next step, and every torch call of the engine runs on one compute thread.
`concurrent_jobs` tells the daemon how many jobs to run at once (options.max_batch); compiled decode (fixed
shapes for CUDA graphs) decodes one request at a time on its own path (decode_compiled): batching under CUDA
graphs (fixed row buckets) is not built. The anchor is gpt-fast: ModelArgs with a name table, a preallocated
KVCache, prefill / decode_one_token / decode_n_tokens split so that only the hot step is compiled.

Modes are chosen by name (EngineOptions): `weights` (auto: int4 or int8 on the CPU as calibration allows, fp16 on
CUDA; int4 is bnb-nf4 on CUDA;
inference/runtime/quantize.py), `kv_cache` (auto: int8 under int8 / int4 weights and `fused-cpu`, else the weights'
dtype; `resolve_kv_cache`), `attention` (auto | sdpa | eager | flash | fused-cpu), `compile`. On the CPU the lossy
modes are equalised at load, and what auto chose is measured against fp32 within a budget, else fp32
(inference/musicgen/calibration.py); ModelInfo.modes says what runs and why. Greedy fp32
decoding gives transformers' codes (tests). Past the model's 30 s window, windowed re-prompting in code space
(`plan_windows`) renders up to max_output_s (300 s) per request.

A jam's bars: `open_stream` gives a stream that keeps its decoder state (KV cache, delay pattern) between requests
(inference/musicgen/code_stream.py, Capability.CODE_STREAM), so a bar costs its own steps, not its context's
prefill; its steps run one per call on the compute thread, between the batch's, on its own cache. Not on melody
checkpoints (their prefix sits in the cache) nor under compiled decode (fixed caches): a jam there prefills per bar.

Melody checkpoints (the config's model_type decides): the decoder has no cross-attention; the projected chroma
frames (235, tiled or cut) and T5 states are a prefix of the sequence (inference/musicgen/model.py:Prefix),
written into the cache once per window. The CFG null row is zero text and chroma bin 0, as in transformers, and
greedy codes equal transformers' with and without a melody. The chroma extractor is the checkpoint's own; drums
and bass are not stripped first as audiocraft does with Demucs (send a melodic stem).

Not fixed (measured by `continuo bench gpu`, no GPU here): on a GPU a variation may not reproduce from its seed
alone (kernels differ by batch size; on the CPU it does, tested); mulaw8 under SDPA / flash dequantizes the used
cache every layer and step (a memory saver at a cost, docs/benchmarks.md), and compiled decode with mulaw8 the
whole 2048-position cache.

Speed on this machine: warm_up times a 1 s take (`measure_speed`) into `measured_speed` and saves it beside the
calibration (inference/runtime/plans.py, kind musicgen-speed) for `continuo doctor`; the daemon's ETAs start from
it (bridge/jobs/pool.py:RealTime).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from inference.adapters import weight_file
from inference.api import (
    CancelCheck,
    Capability,
    ChunkCallback,
    GeneratedAudio,
    GenerationRequest,
    LoraAdapter,
    MeasuredSpeed,
    ModelInfo,
    ProgressCallback,
)
from inference.errors import Cancelled, InferenceError
from inference.musicgen.batching import BatchScheduler, Ticket
from inference.musicgen.calibration import calibrate, calibration_inputs
from inference.musicgen.checkpoint import describe_model, hop_length, is_melody_config
from inference.musicgen.code_stream import KeptStream
from inference.musicgen.codec import CodecStream, FastCodecDecoder, supported
from inference.musicgen.decode import (
    Sampler,
    StaticStep,
    build_delay_pattern,
    decode_one_token,
    generate_codes,
    pattern_length,
    teacher_forced_logits,
    teacher_forced_steps,
    undelay,
)
from inference.musicgen.kv_cache import DEFAULT_MU, LOSSY_CACHES, KVCacheMode, build_cache_factory
from inference.musicgen.lora import adapter_applied, fold, load_adapter, merge_
from inference.musicgen.model import ATTENTION_BACKENDS, ModelArgs, MusicGenDecoder, Prefix, build_decoder
from inference.musicgen.streaming import ChunkStreamer, ExactStreamer
from inference.runtime.memory import release_memory
from inference.runtime.plans import SPEED, PlanKey, checkpoint_fingerprint, load_plan, save_plan
from inference.runtime.progress import ProgressReporter
from inference.runtime.quantize import (
    HEAD_MODES,
    WeightMode,
    activation_dtype,
    apply_weight_mode_,
    head_keep,
    resolve_weight_mode,
    weight_bytes,
)
from inference.runtime.request_checks import RequestChecks

log = logging.getLogger("continuo.inference")

WARM_UP_PROMPT = "warm up"
SPEED_TAKE_S = 1.0  # the take warm_up times (measure_speed): 50 steps of every codebook and their codec decode
CACHE_GRANULE = 256  # cache length grows in steps of this many positions
TEXT_CACHE = 64  # prompts whose T5 states are kept (encode_text)
ENGINE_CAPABILITIES = frozenset({Capability.TEXT, Capability.CONTINUATION, Capability.VARIATIONS,
                                 Capability.STREAMING, Capability.STYLES,
                                 Capability.CODE_PROMPT})  # melody checkpoints add MELODY; CODE_STREAM: code_stream.py
# A code prompt's audio is decoded with this many of its last frames ahead of the new ones (EnCodec is not causal:
# the new audio starts as the stream it continues would have sounded), not the whole context (cost per chunk)
CODE_DECODE_CONTEXT_S = 0.2


@dataclass(frozen=True)
class EngineOptions:
    """How the decoder runs; every field is chosen by name (presets, flags, `continuo doctor`)."""

    weights: str = "auto"  # WeightMode
    kv_cache: str = "auto"  # KVCacheMode
    attention: str = "auto"  # auto | sdpa | eager | flash | fused-cpu (resolve_attention)
    compile: bool = False  # compiled decode: the decoder's step as one graph per batch size (decode.StaticStep)
    compile_backend: str = "inductor"  # inductor: CUDA graphs (CUDA only); eager: Dynamo's trace alone (CPU checks)
    mu: float = DEFAULT_MU  # mu-law cache companding
    window_s: float | None = None  # decode window; None: the model's (30 s); longer output re-prompts
    keep_s: float = 10.0  # seconds of the previous window kept as the next window's prompt
    chunk_s: float = 1.0  # streaming: audio is emitted every this many seconds of new frames
    first_chunk_s: float = 0.5  # streaming with the exact codec stream: the first chunk (first audio sooner)
    chunk_context_s: float = 0.2  # streaming: code context decoded before each chunk (EnCodec is not causal)
    crossfade_s: float = 0.01  # streaming: raised-cosine crossfade at each seam
    max_output_s: float = 300.0  # longest output per request (windowed)
    max_batch: int = 4  # jobs decoded together at most (continuous batching); 1: one job at a time
    # Lossy CPU modes are equalised at load and, when auto chose them, measured against fp32 within a budget
    # (inference/musicgen/calibration.py). False: as before calibration existed (no equalisation, no gate, the LM
    # heads int8 too): the quality benchmark's "before" rows.
    calibrate: bool = True
    # The LM heads beside int8 / int4 weights (resolve_heads): auto = bf16, or int4 / int8 where weights auto's
    # calibration measured them within its budget; named bf16 / int8 / int4 are served as named, not measured
    heads: str = "auto"
    lora: str = ""  # a MusicGen LoRA adapter (inference/musicgen/lora.py) merged into the weights at load
    lora_weight: float = 1.0

    def stream_frames(self, frame_rate: float) -> tuple[int, int]:
        """Streaming's (first chunk, later chunks) in frames at frame_rate: first_chunk_s and chunk_s, at least 1."""
        return max(1, round(self.first_chunk_s * frame_rate)), max(1, round(self.chunk_s * frame_rate))


def plan_windows(prompt_frames: int, total_frames: int, window: int, keep: int) -> list[tuple[int, int]]:
    """(context frames, new frames) per decode window until total_frames exist.

    The first window continues the whole prompt; each later one re-prompts with the last `keep` frames
    (in code space, so the codes decode as one seamless stream: no re-encoding, no crossfade needed).
    """
    if prompt_frames >= window:
        raise ValueError(f"prompt of {prompt_frames} frames leaves no room in a {window}-frame window")
    plan, have = [], prompt_frames
    while have < total_frames:
        context = prompt_frames if not plan else min(keep, have)
        new = min(window - context, total_frames - have)
        plan.append((context, new))
        have += new
    return plan


class MusicGenEngine(RequestChecks):
    """A loaded MusicGen with our decoder: callers on any threads, up to concurrent_jobs of them at once, decode
    together on the engine's compute thread (its batch scheduler)."""

    info: ModelInfo
    measured_speed: MeasuredSpeed | None  # warm_up's take (measure_speed)

    def __init__(self, decoder: MusicGenDecoder, text_encoder, codec, tokenizer, info: ModelInfo,
                 options: EngineOptions, hop: int, weights: WeightMode, kv_cache: KVCacheMode, chroma_extractor=None):
        self.decoder, self.text_encoder, self.codec, self.tokenizer = decoder, text_encoder, codec, tokenizer
        self.chroma_extractor = chroma_extractor  # melody checkpoints: audio -> one-hot chroma frames
        self.info, self.options, self.hop = info, options, hop
        self.weights, self.kv_cache = weights, kv_cache
        self.device = torch.device(info.device)
        self.args = decoder.args
        self.delay_codebooks = self.args.num_codebooks // self.args.audio_channels
        self.cache_shape: tuple[int, int] | None = None  # (batch, positions) of the engine's own caches
        self.own_caches: list = []
        self.lock = threading.Lock()  # the compiled path and the engine-level caches (teacher forcing)
        self.text_cache: OrderedDict = OrderedDict()  # (prompt, styles) -> T5 states and mask (encode_text)
        self.text_lock = threading.Lock()
        self.static = compile_step(options, self.device) if options.compile else None
        self.step_fn = self.static or decode_one_token
        self.scheduler = BatchScheduler(decoder, self.cache_factory, self.generation_errors,
                                        max_positions=self.args.max_positions)
        # EnCodec's decode, fast and streaming where the codec is one it knows (inference/musicgen/codec.py)
        self.fast_codec = FastCodecDecoder(codec).eval() if codec is not None and supported(codec) is None else None
        self.measured_speed = None
        self.speed_key: PlanKey | None = None  # where the measured speed is saved for `continuo doctor`
        self.fingerprint = ""  # the checkpoint's (plans.checkpoint_fingerprint), which adapters name as their base
        self.folds: dict = {}  # calibration's equalisation by module (calibration.Folds), folded into adapters

    @property
    def concurrent_jobs(self) -> int:
        """Jobs the daemon may run at once: max_batch decode together; compiled decode takes one at a time."""
        return 1 if self.static is not None else max(1, self.options.max_batch)

    @property
    def compute(self) -> BatchScheduler:
        """The engine's compute thread (inference.runtime.compute.ComputeThread): its scheduler, which runs every
        torch call of the engine; callers hand it other torch work too (compute.call), so it stays the only one."""
        return self.scheduler

    def close(self) -> None:
        """Nothing outside this process to let go of."""

    # ---- public surface -------------------------------------------------------------------------------------

    def warm_up(self) -> float:
        """Two steps (kernels, caches, the warm-up prompt's T5 states), then measure_speed."""
        started = time.monotonic()
        self.generate(GenerationRequest(prompt=WARM_UP_PROMPT, duration_s=2 / self.info.frame_rate, seed=0))
        self.measured_speed = self.measure_speed()
        return time.monotonic() - started

    def measure_speed(self, audio_s: float = SPEED_TAKE_S, clock=time.perf_counter) -> MeasuredSpeed:
        """The real-time factor on this machine now: one take of audio_s on the warm-up prompt, whose T5 states are
        cached (as a repeated prompt runs: the steps and the codec), at batch 1 with CFG. Saved per checkpoint,
        machine and modes (speed_key) for `continuo doctor`; the daemon refines it from finished jobs."""
        started = clock()
        self.generate(GenerationRequest(prompt=WARM_UP_PROMPT, duration_s=audio_s, seed=0))
        speed = MeasuredSpeed(rtf=round((clock() - started) / audio_s, 3), audio_s=audio_s,
                              source="warm-up", load_1min=round(os.getloadavg()[0], 2))
        log.info("%s: %s", self.info.name, speed.describe())
        if self.speed_key is not None:
            save_plan(self.speed_key, {**asdict(speed), "measured": time.strftime("%Y-%m-%d %H:%M"),
                                       "summary": f"{speed.describe()}, {time.strftime('%Y-%m-%d %H:%M')}"})
        return speed

    def open_stream(self, *, max_frames: int = 0) -> KeptStream:
        """A stream that keeps its decoder state between requests (inference/musicgen/code_stream.py: the jam's
        bars cost their own steps, not their context's prefill); max_frames 0: the model's window (30 s)."""
        return KeptStream(self, max_frames, context_frames=round(CODE_DECODE_CONTEXT_S * self.info.frame_rate))

    def generate(self, request: GenerationRequest, *, on_progress: ProgressCallback | None = None,
                 should_cancel: CancelCheck | None = None, on_chunk: ChunkCallback | None = None) -> GeneratedAudio:
        """on_chunk(audio (C, samples)): streamed audio, every options.chunk_s while decoding (optional)."""
        forward = None if on_chunk is None else (lambda audio: on_chunk(audio[0]))
        return self.generate_batch(request, [request.seed], on_progress=on_progress, should_cancel=should_cancel,
                                   on_chunk=forward)[0]

    def generate_batch(self, request: GenerationRequest, seeds: Sequence[int], *,
                       on_progress: ProgressCallback | None = None,
                       should_cancel: CancelCheck | None = None, on_chunk: ChunkCallback | None = None,
                       ) -> list[GeneratedAudio]:
        """Variations: len(seeds) samples of one request in one batched decode (one weight read per step).

        on_chunk(audio (B, C, samples)) streams the new audio as it is decoded; the chunks add up to the result.
        """
        seeds = list(seeds)
        self.refuse_batch(request, seeds, streaming=on_chunk is not None)
        prompt_audio = self.prepare_prompt(request.audio_prompt)
        prompt_frames = self.prompt_frames(request, prompt_audio)
        self.validate(request, prompt_frames)
        frames = math.ceil(request.duration_s * self.info.frame_rate - 1e-6)
        total_steps = self.total_steps(prompt_frames, frames)
        reporter = ProgressReporter(on_progress, total_steps)
        started = time.monotonic()
        streamer = None if on_chunk is None else self.streamer(prompt_frames, on_chunk)
        codes = self.run(request, prompt_audio, frames, total_steps, reporter, should_cancel, seeds, streamer)
        streamed = streamer.audio() if isinstance(streamer, ExactStreamer) else None
        lead_in = None
        if streamed is not None and streamed.shape[-1] == (codes.shape[2] - prompt_frames) * self.hop:
            audio = streamed  # decoded while the steps ran, equal to the whole decode (codec.py)
        else:
            first = 0 if request.prompt_codes is None else max(0, prompt_frames - round(
                CODE_DECODE_CONTEXT_S * self.info.frame_rate))  # a code prompt: its last frames as the codec's context
            with self.generation_errors():  # the codec can run out of memory too
                audio = self.decode_audio(codes[:, :, first:])
            lead_in, audio = np.split(audio, [(prompt_frames - first) * self.hop], axis=2)
        if not np.isfinite(audio).all():
            raise InferenceError("the model produced non-finite audio (NaN or inf); try weights fp32 or another seed")
        log.info("generated %d x %.2f s (%d steps, %s weights, %s cache) in %.2f s, seeds %s",
                 len(seeds), audio.shape[-1] / self.info.sample_rate, total_steps, self.weights.value,
                 self.kv_cache.value, time.monotonic() - started, seeds)
        new_codes = codes[:, :, prompt_frames:].cpu().numpy()
        return [GeneratedAudio(audio=np.ascontiguousarray(audio[b]), sample_rate=self.info.sample_rate, seed=seed,
                               codes=np.ascontiguousarray(new_codes[b]),
                               lead_in=None if request.prompt_codes is None or lead_in is None
                               else np.ascontiguousarray(lead_in[b]))
                for b, seed in enumerate(seeds)]

    def prompt_frames(self, request: GenerationRequest, prompt_audio: np.ndarray | None) -> int:
        """Frames of the prompt: the audio prompt's whole codec frames, or the code prompt's frames (checked)."""
        if request.prompt_codes is None:
            return 0 if prompt_audio is None else prompt_audio.shape[-1] // self.hop
        if prompt_audio is not None:
            raise InferenceError("a request continues audio_prompt or prompt_codes, not both; send one")
        codes = np.asarray(request.prompt_codes)
        if codes.ndim != 2 or codes.shape[0] != self.args.num_codebooks or codes.shape[1] == 0:
            raise InferenceError(f"prompt_codes must be (codebooks, frames) = ({self.args.num_codebooks}, P>0) for "
                                 f"{self.info.name}, got shape {codes.shape}")
        if not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0 or codes.max() >= self.args.vocab_size:
            raise InferenceError(f"prompt_codes must be integer codes in 0..{self.args.vocab_size - 1} (this "
                                 "model's own, from GeneratedAudio.codes)")
        return codes.shape[1]

    def prompt_codes(self, request: GenerationRequest, prompt_audio: np.ndarray | None, batch: int) -> torch.Tensor:
        """The prompt as codes (B, K, P): the code prompt as given, else the audio prompt encoded."""
        if request.prompt_codes is None:
            return self.encode_prompt(prompt_audio, batch)
        codes = torch.from_numpy(np.asarray(request.prompt_codes, dtype=np.int64)).to(self.device)
        return codes[None].expand(batch, -1, -1)

    def generate_codes(self, request: GenerationRequest, seeds: list[int] | None = None,
                       on_step=None) -> torch.Tensor:
        """Codes (B, K, frames) incl. prompt frames; one batched decode for len(seeds) samples (default [seed])."""
        self.refuse_unsupported(request)
        prompt_audio = self.prepare_prompt(request.audio_prompt)
        prompt_frames = self.prompt_frames(request, prompt_audio)
        self.validate(request, prompt_frames)
        frames = math.ceil(request.duration_s * self.info.frame_rate - 1e-6)
        with torch.inference_mode():
            return self.decode(request, prompt_audio, prompt_frames + frames, seeds or [request.seed], on_step)

    def teacher_forced_logits(self, request: GenerationRequest, codes: torch.Tensor, *,
                              stepwise: bool = False) -> torch.Tensor:
        """Guided logits (B, K, L-1, V) over the delayed sequence of codes (B, K, frames): for quality checks.
        stepwise: one decode step per position (decode.teacher_forced_steps), else one prefill of them all."""
        self.refuse_unsupported(request)
        cfg = request.guidance_scale if request.guidance_scale > 1 else None
        batch, _, frames = codes.shape

        def logits() -> torch.Tensor:
            with self.lock, torch.inference_mode():
                memory = self.condition(request.prompt, batch, cfg is not None, request.styles, request.melody)
                pattern = build_delay_pattern(codes.to(self.device), frames, self.args.audio_channels,
                                              self.args.pad_id)
                self.ensure_caches(batch * (2 if cfg else 1), pattern.shape[2] + prefix_length(memory))
                forced = teacher_forced_steps if stepwise else teacher_forced_logits
                return forced(self.decoder, pattern, memory, Sampler(cfg, 0.0, 0, 0.0, None))

        return self.scheduler.call(logits)

    # ---- steps ----------------------------------------------------------------------------------------------

    def streamer(self, prompt_frames: int, on_chunk: ChunkCallback) -> ChunkStreamer | ExactStreamer:
        frame_rate = self.info.frame_rate
        first_frames, chunk_frames = self.options.stream_frames(frame_rate)
        if self.fast_codec is not None:
            return ExactStreamer(
                start_frame=prompt_frames, first_frames=first_frames, chunk_frames=chunk_frames,
                streams=[CodecStream(self.fast_codec, prompt_frames) for _ in range(self.args.audio_channels)],
                emit=on_chunk)
        return ChunkStreamer(
            start_frame=prompt_frames, chunk_frames=chunk_frames,
            context_frames=max(1, round(self.options.chunk_context_s * frame_rate)),
            crossfade_samples=max(1, round(self.options.crossfade_s * self.info.sample_rate)), hop=self.hop,
            decode=self.decode_audio, emit=on_chunk,
        )

    def run(self, request, prompt_audio, frames, total_steps, reporter, should_cancel, seeds,
            streamer: ChunkStreamer | None = None) -> torch.Tensor:
        def on_step(done: int, sequence=None) -> None:
            if should_cancel is not None and should_cancel():
                raise Cancelled(f"cancelled after {done} of {total_steps} steps")
            reporter.step(done)

        with self.generation_errors():
            if should_cancel is not None and should_cancel():
                raise Cancelled("cancelled before generation started")
            reporter.stage("conditioning", 0.0)
            prompt_frames = self.prompt_frames(request, prompt_audio)
            with torch.inference_mode():
                return self.decode(request, prompt_audio, prompt_frames + frames, seeds, on_step, streamer)

    def decode(self, request: GenerationRequest, prompt_audio, frames: int, seeds: list[int], on_step,
               streamer: ChunkStreamer | None = None) -> torch.Tensor:
        """Codes (B, K, frames) for B = len(seeds) samples of one request, window by window past the model's
        window: a ticket of the batch scheduler, decoded with every other request running."""
        if request.adapter is not None:
            return self.scheduler.call(lambda: self.decode_adapted(request, prompt_audio, frames, seeds, on_step,
                                                                   streamer))
        if self.static is not None:
            return self.scheduler.call(lambda: self.decode_compiled(request, prompt_audio, frames, seeds, on_step,
                                                                    streamer))
        batch = len(seeds)
        cfg = request.guidance_scale if request.guidance_scale > 1 else None

        def prepare() -> tuple:
            with torch.inference_mode():
                memory = self.condition(request.prompt, batch, cfg is not None, request.styles, request.melody)
                return memory, self.prompt_codes(request, prompt_audio, batch)

        memory, codes = self.scheduler.call(prepare)
        windows = self.windows_for(codes.shape[2], frames, memory)

        def window_step(steps_before: int, codes: torch.Tensor, context: int, window: int):
            return self.window_step(on_step, streamer, steps_before, codes, context, window)

        ticket = Ticket(codes=codes, windows=windows, memory=memory, sampler=self.sampler(request, cfg, seeds),
                        window_step=window_step, delay_steps=self.delay_codebooks - 1,
                        channels=self.args.audio_channels, label=f"seeds {seeds}")
        codes = self.scheduler.run(ticket)
        if streamer is not None:
            self.scheduler.call(lambda: streamer.finish(codes))
        return codes

    def decode_compiled(self, request: GenerationRequest, prompt_audio, frames: int, seeds: list[int], on_step,
                        streamer: ChunkStreamer | None = None) -> torch.Tensor:
        """decode for compiled decode (decode.StaticStep): one request at a time, caches at full length. Also a
        request with a LoRA adapter (decode_adapted), uncompiled."""
        batch = len(seeds)
        cfg = request.guidance_scale if request.guidance_scale > 1 else None
        with self.lock, torch.inference_mode():
            memory = self.condition(request.prompt, batch, cfg is not None, request.styles, request.melody)
            if self.static is not None:
                memory = self.static.pad_memory(memory)  # the compiled step's fixed buffers
            codes = self.prompt_codes(request, prompt_audio, batch)
            sampler = self.sampler(request, cfg, seeds)
            steps_before = 0
            for context, new in self.windows_for(codes.shape[2], frames, memory):
                window = context + new
                positions = pattern_length(window, self.args.num_codebooks, self.args.audio_channels)
                self.ensure_caches(batch * (2 if cfg else 1), positions + prefix_length(memory))
                step = self.window_step(on_step, streamer, steps_before, codes, context, window)
                out = generate_codes(self.decoder, codes[:, :, codes.shape[2] - context :], window, memory,
                                     sampler, step, self.step_fn)
                codes = torch.cat([codes, out[:, :, context:]], dim=2)
                steps_before += new + self.delay_codebooks - 1
            if streamer is not None:
                streamer.finish(codes)
            return codes

    def decode_adapted(self, request: GenerationRequest, prompt_audio, frames: int, seeds: list[int], on_step,
                       streamer: ChunkStreamer | None = None) -> torch.Tensor:
        """A request with a LoRA adapter (inference/musicgen/lora.py): the adapter's side path in for this request
        alone, decoded on the compute thread while the batch's other requests wait, the decoder's own layers back
        after it. A file that is not a MusicGen adapter for this model is an InferenceError naming it."""
        with self.adapted(request.adapter):
            return self.decode_compiled(request, prompt_audio, frames, seeds, on_step, streamer)

    def adapted(self, adapter: LoraAdapter):
        """A context in which the decoder runs with `adapter`'s side path, folded into calibration's equalisation
        where the engine was equalised (inference/musicgen/lora.py:fold); the decoder's own layers back after it."""
        lora = load_adapter(weight_file(adapter.path))
        if lora.base_fingerprint and self.fingerprint and lora.base_fingerprint != self.fingerprint:
            log.warning("lora=%s was trained on another checkpoint (%s..., this one %s...)", adapter.name,
                        lora.base_fingerprint[:12], self.fingerprint[:12])
        if self.folds:
            lora = fold(lora, self.folds)
        return adapter_applied(self.decoder, lora, adapter.weight, adapter.name)

    def sampler(self, request: GenerationRequest, cfg: float | None, seeds: list[int]) -> Sampler:
        """Guidance and sampling of one request; one generator per seed (each sample draws from its own)."""
        generators = None
        if request.temperature > 0:
            generators = [torch.Generator(self.device).manual_seed(seed) for seed in seeds]
        nucleus = request.top_p > 0
        return Sampler(cfg, request.temperature, 0 if nucleus else request.top_k, request.top_p, generators)

    def windows_for(self, prompt_frames: int, frames: int, memory) -> list[tuple[int, int]]:
        """The decode windows of a request (plan_windows), refused when a melody prefix leaves too little room."""
        windows = plan_windows(prompt_frames, frames, self.window_frames(), self.keep_frames())
        for context, new in windows:
            window = context + new
            positions = pattern_length(window, self.args.num_codebooks, self.args.audio_channels)
            if prefix_length(memory) + positions > self.args.max_positions:
                raise InferenceError(
                    f"the text prompt is too long for this melody model: {prefix_length(memory)} conditioning "
                    f"positions leave fewer than the {positions} a {window / self.info.frame_rate:.1f} s window "
                    f"needs ({self.args.max_positions} in all); shorten the prompt")
        return windows

    def window_step(self, on_step, streamer: ChunkStreamer | None, steps_before: int, codes: torch.Tensor,
                    context: int, window: int):
        """The per-step callback of one window: progress/cancel, then any streaming chunk that is complete."""
        base = codes.shape[2] - context  # global index of the window's first frame
        channels = self.args.audio_channels

        def step(done: int, sequence: torch.Tensor) -> None:
            if on_step is not None:
                on_step(steps_before + done, sequence)
            if streamer is None:
                return
            complete = min(window, max(0, context + done - self.delay_codebooks + 1))  # frames in every codebook
            streamer.update(base + complete, lambda: torch.cat(
                [codes, undelay(sequence, complete, channels)[:, :, context:]], dim=2))

        return step

    def window_frames(self) -> int:
        window_s = self.options.window_s or self.info.max_duration_s
        return int(min(window_s, self.info.max_duration_s) * self.info.frame_rate + 1e-6)

    def keep_frames(self) -> int:
        return min(int(self.options.keep_s * self.info.frame_rate + 1e-6), self.window_frames() - 1)

    def total_steps(self, prompt_frames: int, frames: int) -> int:
        windows = plan_windows(prompt_frames, prompt_frames + frames, self.window_frames(), self.keep_frames())
        return sum(new + self.delay_codebooks - 1 for _, new in windows)

    def validate(self, request: GenerationRequest, prompt_frames: int) -> None:
        """As RequestChecks, but past the window is fine (windowed re-prompting) up to max_output_s."""
        if not (math.isfinite(request.duration_s) and request.duration_s > 0):
            raise InferenceError(f"duration_s must be a positive number of seconds, got {request.duration_s}")
        if prompt_frames >= self.window_frames():
            raise InferenceError(
                f"audio prompt ({prompt_frames / self.info.frame_rate:.2f} s) fills this model's "
                f"{self.window_frames() / self.info.frame_rate:.1f} s window; it exceeds what can be continued; "
                "use a shorter prompt"
            )
        if request.duration_s > self.info.max_output_s + 1e-6:
            raise InferenceError(
                f"duration_s ({request.duration_s:.2f} s) exceeds this engine's {self.info.max_output_s:.0f} s "
                "per request (max_output_s); render fewer bars"
            )
        super().validate(replace(request, duration_s=min(request.duration_s, 1.0 / self.info.frame_rate)), 0)

    def condition(self, prompt: str, batch: int, cfg: bool, styles: tuple[tuple[str, float], ...] = (),
                  melody: np.ndarray | None = None):
        """The decoder's conditioning for [prompt x batch; null x batch] (CFG) or [prompt x batch].

        Cross-attention keys/values, or for a melody checkpoint the Prefix of chroma + text states; the
        null condition is zero text and, as in transformers, chroma bin 0 in every frame.
        """
        states, mask = self.encode_text(prompt, styles)
        states, mask = states.expand(batch, -1, -1), mask.expand(batch, -1)
        if cfg:
            states = torch.cat([states, torch.zeros_like(states)])
            mask = torch.cat([mask, torch.zeros_like(mask)])
        dtype = next(p.dtype for p in self.decoder.embeddings.parameters())
        if self.chroma_extractor is None:
            return self.decoder.encode_memory(states.to(dtype), mask)
        chroma = None if melody is None else self.chroma(melody)
        null = torch.zeros((1, 1 if chroma is None else chroma.shape[1], self.args.num_chroma), device=self.device)
        null[:, :, 0] = 1
        chroma = (null if chroma is None else chroma).expand(batch, -1, -1)
        if cfg:
            chroma = torch.cat([chroma, null.expand(batch, -1, -1)])
        return self.decoder.encode_prefix(states.to(dtype), mask, chroma)

    def chroma(self, melody: np.ndarray) -> torch.Tensor:
        """(C, T) audio at the model's rate -> (1, frames, num_chroma) one-hot chroma (mono mix, up to 30 s)."""
        audio = np.asarray(melody, dtype=np.float32)
        audio = audio.mean(axis=0) if audio.ndim == 2 else audio
        if audio.ndim != 1 or audio.size == 0 or not np.isfinite(audio).all():
            raise InferenceError(f"melody must be finite (channels, samples) audio, got shape {np.shape(melody)}")
        features = self.chroma_extractor(audio, sampling_rate=self.info.sample_rate, return_tensors="pt")
        return features["input_features"].to(self.device, torch.float32)  # (1, frames, num_chroma)

    def encode_text(self, prompt: str, styles: tuple[tuple[str, float], ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """T5 states (1, S, text_dim) and mask (1, S); with styles, the weighted blend of every prompt's states.

        Cached per (prompt, styles), TEXT_CACHE of them, most recent kept: a repeated or unchanged prompt (a jam's
        next take, a variation, a loop re-rendered) costs no T5 pass (T5-base on 2 cores: tens of ms per prompt).
        The states are read-only (the callers expand and concatenate them into new tensors).
        """
        key = (prompt, tuple((text, float(weight)) for text, weight in styles))
        with self.text_lock:
            cached = self.text_cache.get(key)
            if cached is not None:
                self.text_cache.move_to_end(key)
                return cached
        encoded = self.run_text_encoder(prompt, styles)
        with self.text_lock:
            self.text_cache[key] = encoded
            while len(self.text_cache) > TEXT_CACHE:
                self.text_cache.popitem(last=False)
        return encoded

    def run_text_encoder(self, prompt: str, styles: tuple[tuple[str, float], ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """encode_text's work. Style mixing: prompts are padded to one length, their states (zero at padding)
        averaged with the weights (prompt has weight 1), and a token is attended to when any prompt has one there.
        """
        prompts = [prompt] + [text for text, _ in styles]
        weights = torch.tensor([1.0] + [float(weight) for _, weight in styles], device=self.device)
        if (weights < 0).any() or not torch.isfinite(weights).all() or weights.sum() <= 0:
            raise InferenceError(f"style weights must be >= 0 and not all 0, got {weights.tolist()[1:]}")
        tokens = self.tokenizer(prompts, return_tensors="pt", padding=True)
        ids, mask = tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
        states = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (N, S, text_dim)
        if len(prompts) == 1:
            return states, mask
        states = states * mask[..., None]
        blend = (weights[:, None, None] * states).sum(dim=0, keepdim=True) / weights.sum()
        return blend, mask.amax(dim=0, keepdim=True)

    def encode_prompt(self, prompt_audio: np.ndarray | None, batch: int) -> torch.Tensor:
        """(C, T) audio -> codes (B, K, P); stereo models interleave left/right codebooks."""
        if prompt_audio is None:
            return torch.zeros((batch, self.args.num_codebooks, 0), dtype=torch.long, device=self.device)
        audio = torch.from_numpy(prompt_audio).to(self.device)[None]  # (1, C, T)
        per_channel = [self.codec.encode(audio[:, c : c + 1]).audio_codes[0] for c in range(audio.shape[1])]
        codes = torch.stack(per_channel, dim=2).flatten(1, 2) if len(per_channel) == 2 else per_channel[0]
        return codes.expand(batch, -1, -1).long()  # (B, K, P)

    def decode_audio(self, codes: torch.Tensor) -> np.ndarray:
        """codes (B, K, T) -> audio (B, C, samples) float32 (on the compute thread)."""
        def decode() -> np.ndarray:
            with torch.inference_mode():
                channels = [codes] if self.args.audio_channels == 1 else [codes[:, ::2], codes[:, 1::2]]
                audio = [self.codec_decode(part) for part in channels]
                return torch.cat(audio, dim=1).float().cpu().numpy()

        return self.scheduler.call(decode)

    def codec_decode(self, codes: torch.Tensor) -> torch.Tensor:
        """One channel's codes (B, K, T) -> audio (B, 1, samples): the fast decoder where it applies (codec.py)."""
        if self.fast_codec is not None:
            return self.fast_codec(codes)
        return self.codec.decode(codes[None], [None]).audio_values

    def ensure_caches(self, batch: int, positions: int) -> None:
        """The compiled path's and teacher forcing's own caches in every layer: reused when they fit,
        otherwise allocated (compiled: the full window).

        Caches are sized for this request's batch, and shrink when it needs less than half of what is held
        (a memset to reallocate, against holding the largest request's memory for ever). The old caches go
        before the new ones are allocated, so the peak is one set; if allocating fails (out of memory),
        no layer keeps a cache and the next request allocates afresh. The batch scheduler sets its own
        caches into the layers for each step, so these are set again every time.
        """
        if self.options.compile:
            positions = self.args.max_positions
        else:
            positions = min(self.args.max_positions, math.ceil(positions / CACHE_GRANULE) * CACHE_GRANULE)
        if (self.cache_shape is not None and self.cache_shape[0] == batch
                and positions <= self.cache_shape[1] < 2 * positions):
            for layer, cache in zip(self.decoder.layers, self.own_caches):
                layer.attention.kv_cache = cache
            return
        self.release_caches()
        factory = self.cache_factory(batch, positions)
        try:
            self.decoder.setup_caches(factory)
        except BaseException:
            self.release_caches()
            raise
        self.own_caches = [layer.attention.kv_cache for layer in self.decoder.layers]
        self.cache_shape = (batch, positions)

    def release_caches(self) -> None:
        had = self.cache_shape is not None
        self.cache_shape = None
        self.own_caches = []
        self.decoder.setup_caches(lambda index: None)
        if had and self.device.type == "cuda":
            release_memory()  # the caching allocator hands the old caches back

    def cache_bytes(self) -> int:
        """Bytes of the decode caches: the batch scheduler's, and the compiled path's own."""
        return sum(cache.nbytes() for cache in self.own_caches) + self.scheduler.cache_bytes()

    def cache_factory(self, rows: int, positions: int):
        """Caches in this engine's cache mode, rows x positions: the scheduler's, and the compiled path's own."""
        return build_cache_factory(
            self.kv_cache, batch=rows, heads=self.args.n_head, positions=positions, head_dim=self.args.head_dim,
            activation_dtype=activation_dtype(self.weights, self.device), device=self.device, mu=self.options.mu,
        )


def prefix_length(memory) -> int:
    """Positions a melody model's conditioning prefix takes ahead of the codes (0 for cross-attention models)."""
    return memory.length if isinstance(memory, Prefix) else 0


COMPILE_BACKENDS = ("inductor", "eager")


def compile_step(options: EngineOptions, device: torch.device) -> StaticStep:
    """The compiled decode step (decode.StaticStep): inductor with CUDA graphs (mode reduce-overhead) on a GPU;
    the eager backend traces the same graph anywhere (the CPU tests' check that it is whole and replayed)."""
    backend = options.compile_backend
    if backend not in COMPILE_BACKENDS:
        raise ValueError(f"compile_backend must be one of {', '.join(COMPILE_BACKENDS)}, got {backend!r}")
    if backend == "inductor":
        if device.type != "cuda":
            raise ValueError("compile (CUDA graphs) needs a CUDA device; leave it off on the CPU")

        def compile_fn(function):
            return torch.compile(function, mode="reduce-overhead", fullgraph=True, dynamic=False)
    else:
        def compile_fn(function):
            return torch.compile(function, backend=backend, fullgraph=True, dynamic=False)
    return StaticStep(compile_fn, device)


def engine_from_hf_model(model, tokenizer, *, options: EngineOptions = EngineOptions(),
                         device: str | torch.device = "cpu", name: str = "musicgen", source_kind: str = "local",
                         is_random: bool = False, chroma_extractor=None,
                         checkpoint: Path | None = None) -> MusicGenEngine:
    """Build our engine from a loaded Musicgen(Melody)ForConditionalGeneration (decoder weights mapped by name).

    Melody checkpoints need chroma_extractor (their processor's MusicgenMelodyFeatureExtractor). checkpoint: the
    folder it was read from, whose calibration decision is saved and reused (inference/runtime/plans.py).

    The transformers model keeps its decoder; callers that no longer need it drop the model.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # flash-attn, bitsandbytes and the probes use the current device
    asked_weights, asked_cache = WeightMode.parse(options.weights), KVCacheMode.parse(options.kv_cache)
    weights = resolve_weight_mode(asked_weights, device)
    attention = resolve_attention(options.attention, device, compile=options.compile)
    kv_cache = resolve_kv_cache(asked_cache, weights, attention)
    named_heads = resolve_heads(options.heads, asked_weights, weights, device)
    check_compile(options, weights, attention)
    config = model.config
    melody = is_melody_config(config)
    if melody and chroma_extractor is None:
        raise ValueError("a MusicGen-melody checkpoint needs its chroma feature extractor (the processor's)")
    args = ModelArgs.from_hf_config(config.decoder, text_dim=config.text_encoder.hidden_size,
                                    melody=config if melody else None)
    hf_state = {name: tensor.detach().float() for name, tensor in model.state_dict().items()  # no copy in fp32
                if name.startswith(("decoder.", "enc_to_dec_proj.", "audio_enc_to_dec_proj."))}
    decoder = build_decoder(args, hf_state)
    if options.lora:  # before equalisation and quantisation: the adapter rides along into int8 / int4
        merge_(decoder, load_adapter(adapter_file(options.lora)), options.lora_weight, Path(options.lora).stem)
    text_encoder = model.text_encoder.to(device=device, dtype=torch.float32).eval()
    codec = model.audio_encoder.to(device=device, dtype=torch.float32).eval()
    calibration = None
    quantized = (WeightMode.INT8, WeightMode.INT4)
    if options.calibrate and device.type == "cpu" and (weights in quantized or kv_cache in LOSSY_CACHES):
        inputs = calibration_inputs(text_encoder, tokenizer, codec, args, hop=hop_length(config), device=device,
                                    sample_rate=config.audio_encoder.sampling_rate)
        gate_weights = asked_weights is WeightMode.AUTO and weights is WeightMode.INT8
        gate_cache = asked_cache is KVCacheMode.AUTO and kv_cache in LOSSY_CACHES
        try_int4 = gate_weights and int4_available()
        key = None if checkpoint is None or not (gate_weights or gate_cache) else PlanKey(  # int4: another choice
            "musicgen-calibration", checkpoint_fingerprint(checkpoint),
            f"weights={asked_weights.value} kv_cache={asked_cache.value} attention={attention}"
            + (" candidates=int4,int8" if try_int4 else "") + (f" heads={named_heads}" if named_heads else ""))
        decided = None if key is None else load_plan(key)
        decoder, calibration = calibrate(decoder, inputs, weights=weights, kv_cache=kv_cache, gate_weights=gate_weights,
                                         gate_cache=gate_cache, decided=decided, try_int4=try_int4,
                                         heads=named_heads or "bf16", gate_heads=try_int4 and not named_heads)
        if key is not None and decided is None:
            save_plan(key, calibration.as_dict())
        weights, kv_cache = WeightMode(calibration.weights), KVCacheMode(calibration.kv_cache)
        log.info("engine calibration %s", calibration.summary() + "".join(f"; {d}" for d in calibration.decisions))
    if weights not in quantized or calibration is None:  # calibrate returns int8 / int4 weights already swapped
        keep = head_keep(named_heads) if named_heads else None if options.calibrate else {}
        decoder = apply_weight_mode_(decoder, weights, device, keep=keep)
    decoder.set_attention_backend(attention)
    for module in (decoder, text_encoder, codec):
        own_memory_(module)
    if device.type == "cuda":
        release_memory()  # what loading staged on the GPU goes back before the first request
    parameters = sum(p.numel() for p in text_encoder.parameters()) + sum(p.numel() for p in codec.parameters())
    parameters += sum(p.numel() for p in build_param_counter(args))
    heads = served_heads(weights, device, calibration, named_heads, options.calibrate)
    modes = {"weights": weights.value, "heads": heads, "kv_cache": kv_cache.value, "attention": attention,
             "calibration": None if calibration is None else calibration.as_dict()}
    if options.lora:
        modes["lora"] = {"merged": options.lora, "weight": options.lora_weight}
    per_request_lora = not (melody or options.compile)  # any weights; equalised: folded (lora.py:fold)
    # a kept stream needs cross-attention (a melody prefix sits in the cache) and growable caches (not compiled)
    kept_stream = not (melody or options.compile)
    info = describe_model(config, name=name, source_kind=source_kind, is_random=is_random, device=str(device),
                          parameters=parameters, max_output_s=options.max_output_s,
                          capabilities=ENGINE_CAPABILITIES | ({Capability.LORA} if per_request_lora else set())
                          | ({Capability.CODE_STREAM} if kept_stream else set()),
                          modes=modes)
    hop = hop_length(config)
    log.info("engine: %s weights (LM heads %s, %.1f MB), %s kv cache, %s attention on %s", weights.value, heads,
             weight_bytes(decoder) / 2**20, kv_cache.value, attention, device)
    engine = MusicGenEngine(decoder, text_encoder, codec, tokenizer, info, replace(options, attention=attention),
                            hop, weights, kv_cache, chroma_extractor=chroma_extractor if melody else None)
    if calibration is not None:
        engine.folds = calibration.folds
    if checkpoint is not None:
        engine.fingerprint = checkpoint_fingerprint(checkpoint)
        engine.speed_key = PlanKey("musicgen" + SPEED, checkpoint_fingerprint(checkpoint),
                                   f"weights={weights.value} kv_cache={kv_cache.value} attention={attention} "
                                   f"threads={torch.get_num_threads()}")
    return engine


def adapter_file(path: str) -> Path:
    """The weight file of an adapter path (a .safetensors file, or a directory holding one)."""
    return weight_file(Path(path).expanduser())


def resolve_kv_cache(mode: KVCacheMode, weights: WeightMode, attention: str) -> KVCacheMode:
    """auto: int8 where the weights are int8 and our CPU kernel reads the cache (the CPU default), else the
    weights' activation dtype. With batched jobs the cache's bytes are the cost of each row added: 4 jobs took
    1.32-1.56x one job's time with int8 against 1.68x with fp32, in a quarter of the memory
    (docs/benchmarks.md, "Batching"). Calibration at load then equalises K and V channels into the weights and
    keeps auto's int8 only within its KL budget against fp32 (inference/musicgen/calibration.py; measured where
    attention matters: docs/benchmarks.md, "Quality")."""
    if mode is KVCacheMode.AUTO and weights in (WeightMode.INT8, WeightMode.INT4) and attention == "fused-cpu":
        return KVCacheMode.INT8
    return mode


def resolve_heads(asked: str, asked_weights: WeightMode, weights: WeightMode, device: torch.device) -> str | None:
    """The LM heads named in EngineOptions.heads, or None for auto.

    auto keeps the heads bf16 beside int8 / int4 weights unless calibration chose the weights too (weights auto on
    the CPU with our kernels) and measured int4 or int8 heads within its budget (inference/musicgen/calibration.py).
    A user who names `weights int8` or `int4` gets bf16 heads, as before: the named modes are not measured, and a
    quantized head is where argmax flips on outlier activations (onnxruntime#29849); what `int8` / `int4` promise
    is the quality docs/benchmarks.md measured for them, which was with bf16 heads. Named int8 / int4 heads (the
    quality harness's rows) need int8 or int4 weights (or auto) on the CPU."""
    if asked == "auto":
        return None
    if asked not in HEAD_MODES:
        raise ValueError(f"LM heads must be auto or one of {', '.join(HEAD_MODES)}, got {asked!r}")
    quantized = (WeightMode.INT8, WeightMode.INT4)
    if asked != "bf16" and (device.type != "cpu" or (weights not in quantized and asked_weights != WeightMode.AUTO)):
        raise ValueError(f"LM heads {asked!r} run on our CPU kernels beside int8 or int4 weights; weights "
                         f"{weights.value!r} on {device.type} keeps its own heads (use heads auto)")
    return asked


def served_heads(weights: WeightMode, device: torch.device, calibration, named: str | None, calibrated: bool) -> str:
    """The LM heads' precision as served (ModelInfo.modes["heads"])."""
    if calibration is not None:
        return calibration.heads
    if weights in (WeightMode.INT8, WeightMode.INT4):
        return named or ("bf16" if calibrated else weights.value)  # calibrate off: the heads as the weights
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(activation_dtype(weights, device), "fp32")


def int4_available() -> bool:
    """Our int4 kernel runs here (auto's calibration measures int4 weights first only then)."""
    from inference.runtime.kernels import kernels_status

    return kernels_status().usable


def check_compile(options: EngineOptions, weights: WeightMode, attention: str) -> None:
    """Modes compiled decode cannot run; the message names what to change."""
    if not options.compile:
        return
    if weights in (WeightMode.BNB_INT8, WeightMode.BNB_NF4):
        raise ValueError(f"compile_decode cannot capture bitsandbytes layers (weights {weights.value!r}); "
                         "use weights fp16 or bf16 with compile_decode, or turn compile_decode off")
    if attention == "fused-cpu":
        raise ValueError("compile_decode cannot trace our CPU attention kernel; use attention sdpa")


def resolve_attention(name: str, device: torch.device, compile: bool = False) -> str:
    """auto -> flash on CUDA when flash-attn is usable, else sdpa; on the CPU our fused kernel when it builds
    (sdpa when compiled), else sdpa."""
    name = name.strip().lower()
    if name == "auto":
        if device.type == "cuda":
            from inference.runtime.device import check_flash_attn

            return "flash" if check_flash_attn(device).usable else "sdpa"
        from inference.runtime.kernels import kernels_status

        return "fused-cpu" if device.type == "cpu" and not compile and kernels_status().usable else "sdpa"
    if name not in ATTENTION_BACKENDS:
        raise ValueError(f"attention must be auto or one of {', '.join(ATTENTION_BACKENDS)}, got {name!r}")
    if name == "flash" and device.type != "cuda":
        raise ValueError("attention 'flash' needs flash-attn on a CUDA GPU; use sdpa (or eager, the reference)")
    if name == "fused-cpu" and device.type != "cpu":
        raise ValueError("attention 'fused-cpu' is our CPU kernel; on a GPU use flash or sdpa")
    return name


def own_memory_(module: torch.nn.Module) -> None:
    """Give every CPU parameter and buffer memory of its own.

    transformers loads safetensors through a private memory map, and one tensor still viewing it keeps
    the whole file mapped: with the decoder's fp32 weights read once for quantization, that is about
    2 GB of musicgen-small's file counted in the daemon's memory for as long as it runs. Copies let the
    map go once the transformers model is dropped (measured: resident 4.2 GB -> 1.8 GB).
    """
    with torch.no_grad():
        for sub in module.modules():
            for parameter in sub._parameters.values():
                if parameter is not None and parameter.device.type == "cpu":
                    parameter.data = parameter.data.clone()
            for name, buffer in list(sub._buffers.items()):
                if buffer is not None and buffer.device.type == "cpu":
                    sub._buffers[name] = buffer.clone()


def build_param_counter(args: ModelArgs):
    """Parameter tensors of the decoder's shape on the meta device (counting without memory)."""
    with torch.device("meta"):
        return list(MusicGenDecoder(args).parameters())
