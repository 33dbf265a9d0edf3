"""A stream that keeps its decoder state between requests (inference/api.py:CodeStream): the jam's bars.

Why. A jam bar continues the stream's last bars of codes (`GenerationRequest.prompt_codes`). As a plain request
that prefills the whole context again every bar (CFG: two rows), which cost the jam RTF 1.50 against the engine's
0.92-0.94 on musicgen-small's shape with 2 bars of context (docs/benchmarks.md, "Jam"). A `KeptStream` keeps the
self-attention KV cache and the delay pattern of its decode and simply keeps decoding: a bar costs its own frames'
steps.

Why not a sliding window over the cache. MusicGen adds sinusoidal absolute positions to its input, so the keys of
a context prefilled at positions 0..P are not the keys of the same codes at later positions: a window cannot slide
over the cache. The stream keeps positions growing from its last (re)start instead, and when the next request would
take it past `max_frames` it starts over from the request's code prompt (the last bars, prefilled as a plain request
does) and goes on. The limit is the model's window (`MusicGenEngine.window_frames`: 1500 frames, 30 s): the
position table runs to max_positions (2048) and an index past it fails, but the model was trained on 30 s, so
positions past the window are ones it never saw. Memory: the cache holds rows (2 under CFG) x positions (grown in
steps of 256, at most max_frames + the delay) per layer; musicgen-small at the full 30 s with the int8 cache is
24 layers x 2 rows x 16 heads x 1536 positions x 64 x 2 (K and V) bytes + fp32 scales = 160 MB (fp32 cache: 604 MB).
Bandwidth: every step reads the cache it attends over, so a stream's steps grow dearer with its history: on
musicgen-small at int8, 98 KB per position against 289 MB of int4 weights, up to 1.37x a per-bar request's step
(200-300 positions) near the window's end, 1.19x on average over a window, against the two-bar prefill saved per
bar; a shorter `max_frames` trades one against the other (not yet measured on a quiet machine: docs/benchmarks.md,
"The kept stream").

Continue or start over. Each request's `prompt_codes` are the stream's last frames (as any code prompt). When they
are the end of what this stream made, and the rows are the same (CFG on or off), it continues from its state;
otherwise (the first request, a bank recalled in the jam, CFG turned on or off, the limit reached) it starts over
from them exactly as `MusicGenEngine.generate` would (tested: the same codes), and keeps that state. No request is
refused for what the stream holds: a mismatch costs one prefill, never a wrong continuation. A request too long to
keep even from a fresh start (its prompt and new frames past `max_frames`: a long context at a slow tempo, a short
`max_frames`) is made as a plain request (`MusicGenEngine.generate`, windowed past the window as any request), so
the stream never refuses what the per-bar path would make; the next request then starts over.

Errors and cancels. A request that fails or is cancelled (`should_cancel`, checked between steps) part way leaves
a state no request may continue (the cache holds some of its steps, the pattern some of its columns): the stream
forgets it, and the next request starts over from its code prompt, exactly as after any start over (tested with
a failure mid-request, and against a stream that kept the half-made state).

Conditioning and sampling. A new prompt or styles recompute the cross-attention keys and values (T5 states cached
per prompt by the engine); the self-attention history stays as it was decoded (the codes heard so far, under the
conditioning they were made with), as one long decode whose prompt changed there would have it. Temperature,
top-k/p, guidance and the seed are the sampler's, per request. The delay pattern: frame f of codebook k sits at
column f + 1 + k // channels, so the frames of a request are complete only once the first codebook has been
predicted delay (3 for 4 mono codebooks) frames past them; those first 3 frames (60 ms) of the first codebook of
the next request are sampled under the request before it. Unlike a plain request, a stream never puts the pad id
(the end of a sequence) in the first codebook after its frames: each request's last frames are predicted as the
middle of a stream, which is what they are (so a request's codes equal a plain decode of `delay` more frames, cut).

The compute thread. Every torch call runs on the engine's compute thread (`BatchScheduler.call`), one decode step
per call: the batch's own steps (other jobs) run between a stream's steps, so a stream never holds the engine for a
bar. The stream's cache is its own (per stream, so per jam); each of its steps sets it into the decoder's layers,
as every batch step and prefill sets the scheduler's own first (`BatchScheduler.use_rows`), so a render between two
requests leaves the stream's state untouched (tested). Its rows decode alone, not batched with the jobs' rows: a
jam beside renders shares the CPU step by step rather than the weight reads (not built: parking rows in the
scheduler's caches between requests).

Not built: melody checkpoints (their conditioning prefix sits in the cache) and compiled decode (fixed-shape caches)
do not declare Capability.CODE_STREAM; a LoRA adapter per request is refused in a stream.
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np
import torch

from inference.api import CancelCheck, Capability, GeneratedAudio, GenerationRequest
from inference.errors import Cancelled, InferenceError
from inference.musicgen.decode import Sampler, apply_pattern, build_delay_pattern, prefill, undelay
from inference.musicgen.model import RowPositions

log = logging.getLogger("continuo.inference")

CACHE_GRANULE = 256  # positions of the stream's cache grow in steps of this many


class KeptStream:
    """MusicGen's CodeStream: one stream's decode state, kept between requests (see the module's docstring)."""

    def __init__(self, engine, max_frames: int = 0, *, context_frames: int = 10) -> None:
        engine.refuse_capability(Capability.CODE_STREAM)
        window = engine.window_frames()
        max_frames = max_frames or window
        if not 0 < max_frames <= window:
            raise InferenceError(f"a stream holds at most the model's window, {window} frames "
                                 f"({window / engine.info.frame_rate:g} s); got max_frames {max_frames}")
        self.engine, self.max_frames = engine, max_frames
        self.context_frames = context_frames  # of the prompt decoded ahead of the new frames (the lead-in)
        self.args = engine.args
        self.delay = (self.args.num_codebooks - 1) // self.args.audio_channels  # the longest codebook delay
        self.lock = threading.Lock()  # one request at a time
        self.caches: list | None = None
        self.rows = 0
        self.pattern: torch.Tensor | None = None  # (1, K, L): the prompt's codes and pads; UNKNOWN to predict
        self.sequence: torch.Tensor | None = None  # (1, K, L): known up to column `position`
        self.position = 0  # the last known column; the columns before it are in the cache
        self.frames = 0  # complete frames since the last start (its prompt included)
        self.codes: np.ndarray | None = None  # (K, frames): those frames
        self.memory = None
        self.memory_key: tuple | None = None
        self.sampler: Sampler | None = None
        self.starts = 0  # prefills (the first request and every start over)
        self.continued = 0  # requests made from the kept state (counted when made)
        self.plain = 0  # requests too long to keep even after a start over: made as plain requests
        self.peak_bytes = 0  # the most bytes the cache held
        self.closed = False
        self.lost = ""  # what ended the last request part way (its state forgotten), until the next start
        self.label = ""  # the caller's id for the log lines (CodeStream.label)

    def prefix(self) -> str:
        return f"{self.label} " if self.label else ""

    # ---- the CodeStream surface -------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, *, should_cancel: CancelCheck | None = None) -> GeneratedAudio:
        engine = self.engine
        engine.refuse_unsupported(request)
        if request.adapter is not None:
            raise InferenceError("a stream takes no LoRA adapter per request; merge it at load (the lora setting)")
        prompt_audio = engine.prepare_prompt(request.audio_prompt)
        prompt_frames = engine.prompt_frames(request, prompt_audio)
        engine.validate(request, prompt_frames)
        new = math.ceil(request.duration_s * engine.info.frame_rate - 1e-6)
        cfg = request.guidance_scale if request.guidance_scale > 1 else None
        sampler = engine.sampler(request, cfg, [request.seed])  # the prefill's draw, then every step's
        with self.lock:
            if self.closed:
                raise InferenceError("this stream is closed; open another (open_stream)")
            reason = self.start_reason(request, cfg, new)
            if reason and prompt_frames + new > self.max_frames:  # too long to keep: a plain request, as before
                self.plain += 1
                log.info("%sstream: %d frames of prompt and %d new pass its %d frames: a plain request (%s)",
                         self.prefix(), prompt_frames, new, self.max_frames, reason)
                return engine.generate(request, should_cancel=should_cancel)
            try:
                with engine.generation_errors():
                    return self.decode(request, prompt_audio, prompt_frames, new, cfg, sampler, reason,
                                       should_cancel)
            except BaseException as error:
                self.forget()  # a half-made request's state is never continued: the next one starts over
                self.lost = type(error).__name__
                raise

    def decode(self, request: GenerationRequest, prompt_audio, prompt_frames: int, new: int, cfg: float | None,
               sampler: Sampler, reason: str, should_cancel: CancelCheck | None) -> GeneratedAudio:
        """The request's frames from the kept state, started over first where reason says (under the lock)."""
        engine = self.engine
        if reason:
            engine.scheduler.call(lambda: self.start(request, prompt_audio, cfg, sampler))
            self.starts += 1
            self.lost = ""
            log.info("%sstream: started from %d frames of prompt (%s)", self.prefix(), prompt_frames, reason)
        engine.scheduler.call(lambda: self.condition(request, cfg))
        self.sampler = sampler
        before = self.frames
        target = before + new + self.delay  # the column that completes frame before + new - 1
        while self.position < target:
            if should_cancel is not None and should_cancel():
                raise Cancelled("the stream's request was cancelled")
            engine.scheduler.call(self.step)
        codes = undelay(self.sequence[:, :, : target + 1], before + new, self.args.audio_channels)
        # a code prompt's last frames are the codec's context (the lead-in); an audio prompt's all, as generate
        first = 0 if request.prompt_codes is None else max(0, before - self.context_frames)
        audio = engine.decode_audio(codes[:, :, first:])
        if not np.isfinite(audio).all():
            raise InferenceError("the model produced non-finite audio (NaN or inf); try weights fp32 or another seed")
        self.codes = codes[0].cpu().numpy()
        self.frames = before + new
        if not reason:
            self.continued += 1
        lead_in, audio = np.split(audio[0], [(before - first) * engine.hop], axis=1)
        return GeneratedAudio(audio=np.ascontiguousarray(audio), sample_rate=engine.info.sample_rate,
                              seed=request.seed, codes=np.ascontiguousarray(self.codes[:, before:]),
                              lead_in=None if request.prompt_codes is None else np.ascontiguousarray(lead_in))

    def forget(self) -> None:
        """No state to continue (the next request starts over); the cache goes."""
        self.caches = self.sequence = self.pattern = self.codes = None
        self.position = self.frames = 0

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.forget()
            self.memory = self.memory_key = None

    def cache_bytes(self) -> int:
        return 0 if self.caches is None else sum(cache.nbytes() for cache in self.caches)

    # ---- continue or start over -------------------------------------------------------------------------------

    def start_reason(self, request: GenerationRequest, cfg: float | None, new: int) -> str:
        """'' when request continues this stream's state; else why it starts over."""
        if self.sequence is None:
            return f"the last request ended in {self.lost}" if self.lost else "first request"
        if request.prompt_codes is None:
            return "no code prompt to continue"
        prompt = np.asarray(request.prompt_codes)
        if prompt.shape[1] > self.frames or not np.array_equal(prompt, self.codes[:, self.frames - prompt.shape[1]:]):
            return "the code prompt is not this stream's end"
        if (2 if cfg else 1) != self.rows:
            return "guidance turned CFG " + ("on" if cfg else "off")
        if self.frames + new > self.max_frames:
            return f"the stream reached its {self.max_frames} frames"
        return ""

    def start(self, request: GenerationRequest, prompt_audio, cfg: float | None, sampler: Sampler) -> None:
        """The prompt prefilled into fresh state, as BatchScheduler.start_window does (on the compute thread)."""
        engine, args = self.engine, self.args
        with torch.inference_mode():
            prompt = engine.prompt_codes(request, prompt_audio, 1)
            frames = prompt.shape[2]
            self.rows = 2 if cfg else 1
            self.caches = None  # the old state goes before the new one is allocated
            self.reserve(1 + frames)
            self.condition(request, cfg)
            # the first codebook stays to be predicted past every frame the stream may make: never the end's pad
            self.pattern = build_delay_pattern(prompt, self.max_frames + self.delay + 1, args.audio_channels,
                                               args.pad_id)
            start = 1 + frames
            self.bind()
            first = prefill(engine.decoder, self.pattern, start, self.memory, sampler)
            self.sequence = self.pattern.clone()
            self.sequence[:, :, start] = first
            self.position, self.frames = start, frames
            self.codes = prompt[0].cpu().numpy()

    def condition(self, request: GenerationRequest, cfg: float | None) -> None:
        """The cross-attention keys and values for request's prompt and styles (recomputed only when they change;
        the self-attention history stays). On the compute thread."""
        key = (request.prompt, request.styles, self.rows)
        if key != self.memory_key:
            with torch.inference_mode():
                self.memory = self.engine.condition(request.prompt, 1, cfg is not None, request.styles)
            self.memory_key = key

    # ---- steps (on the compute thread) ------------------------------------------------------------------------

    def step(self) -> None:
        """One token for the stream's rows: column `position` in, column position + 1 predicted."""
        decoder = self.engine.decoder
        with torch.inference_mode():
            self.reserve(self.position + 1)
            self.bind()
            position = self.position
            tokens = self.sampler.expand(self.sequence[:, :, position])
            rows = RowPositions(torch.full((tokens.shape[0],), position, dtype=torch.long,
                                           device=decoder.positions.device), None)
            logits = decoder.decode_rows(tokens[:, :, None], rows, position + 1, self.memory)
            predicted = self.sampler(logits)
            self.sequence[:, :, position + 1] = apply_pattern(predicted, self.pattern[:, :, position + 1])
            self.position = position + 1

    def bind(self) -> None:
        """The decoder's layers read and write this stream's cache (until the next step or prefill sets its own)."""
        for layer, cache in zip(self.engine.decoder.layers, self.caches):
            layer.attention.kv_cache = cache

    def reserve(self, positions: int) -> None:
        """A cache of this stream's rows with room for positions, grown in CACHE_GRANULE steps (what is written
        kept)."""
        have = self.caches
        if have is not None and have[0].positions >= positions:
            return
        size = min(self.args.max_positions, -(-positions // CACHE_GRANULE) * CACHE_GRANULE)
        factory = self.engine.cache_factory(self.rows, size)
        caches = [factory(index) for index in range(len(self.engine.decoder.layers))]
        if have is not None:
            for old, grown in zip(have, caches):
                old.copy_into(grown)
        self.caches = caches
        self.peak_bytes = max(self.peak_bytes, self.cache_bytes())

