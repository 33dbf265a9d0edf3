"""The decode loop: delay pattern (pure functions), sampling, prefill / decode_one_token / decode_n_tokens.

Delay pattern. Sequence position 0 holds BOS (the pad id) in every codebook.
Codebook k is delayed by offset(k) = k // channels positions (stereo models
interleave left/right codebooks, which share a delay), so frame j of codebook
k sits at position j + 1 + offset(k). Positions before and after a codebook's
frames hold the pad id. With 4 mono codebooks and 3 frames (P = pad):

    k=0: P a0 a1 a2 P  P  P
    k=1: P P  b0 b1 b2 P  P
    k=2: P P  P  c0 c1 c2 P
    k=3: P P  P  P  d0 d1 d2

Generation predicts position t + 1 from positions <= t; where the pattern
already knows position t + 1 (pad, or a code of the audio prompt) the
prediction is overwritten with it, exactly as transformers does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

from inference.musicgen.model import MusicGenDecoder, Prefix

log = logging.getLogger("continuo.inference")

UNKNOWN = -1  # pattern entry to be predicted

StepCallback = Callable[[int, Tensor], None]  # (steps done, the sequence so far (B, K, L)); may raise to stop


def delay_offsets(num_codebooks: int, channels: int) -> Tensor:
    """(K,) delay of each codebook in positions."""
    return torch.arange(num_codebooks) // channels


def pattern_length(frames: int, num_codebooks: int, channels: int) -> int:
    """Positions for BOS + frames + the longest delay."""
    return 1 + frames + int(delay_offsets(num_codebooks, channels).max())


def build_delay_pattern(prompt: Tensor, frames: int, channels: int, pad_id: int) -> Tensor:
    """prompt codes (B, K, P) -> pattern (B, K, L): prompt codes and pads placed, UNKNOWN where to predict.

    frames is the total (prompt + new) frame count; L = pattern_length(frames, K, channels).
    """
    batch, codebooks, prompt_frames = prompt.shape
    length = pattern_length(frames, codebooks, channels)
    pattern = torch.full((batch, codebooks, length), pad_id, dtype=torch.long, device=prompt.device)
    for k, offset in enumerate(delay_offsets(codebooks, channels).tolist()):
        pattern[:, k, 1 + offset : 1 + offset + frames] = UNKNOWN
        pattern[:, k, 1 + offset : 1 + offset + prompt_frames] = prompt[:, k]
    return pattern


def undelay(sequence: Tensor, frames: int, channels: int) -> Tensor:
    """sequence (B, K, L) in the delay pattern -> codes (B, K, frames) aligned in time."""
    offsets = delay_offsets(sequence.shape[1], channels).tolist()
    return torch.stack([sequence[:, k, 1 + offset : 1 + offset + frames] for k, offset in enumerate(offsets)], dim=1)


def apply_pattern(tokens: Tensor, pattern_column: Tensor) -> Tensor:
    """tokens (B, K) predicted for one position; keep them only where the pattern says UNKNOWN."""
    return torch.where(pattern_column == UNKNOWN, tokens, pattern_column)


def predicted_columns(pattern: Tensor) -> list[bool]:
    """pattern (B, K, L) -> per position, whether it is UNKNOWN in every row and codebook: a prediction for it goes
    in whole (apply_pattern would keep all of it), once the delays have started and until they end."""
    return (pattern == UNKNOWN).flatten(0, 1).all(dim=0).tolist()


def guide(logits: Tensor, guidance_scale: float | None) -> Tensor:
    """CFG: logits (2B, K, V) as [conditional; null] -> (B, K, V), null + (conditional - null) * scale (computed
    in place on the difference: the same bits). None: no CFG, logits returned as is."""
    if guidance_scale is None:
        return logits
    conditional, null = logits.chunk(2, dim=0)
    return (conditional - null).mul_(guidance_scale).add_(null)


def filter_logits(logits: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    """logits (..., V) scaled by temperature, then top-p (when > 0) or else top-k (when > 0) kept.

    At temperature 1 the division is skipped (x / 1 is x, bit for bit); logits itself comes back when nothing is
    filtered at 1, else a new tensor. The top-k threshold is the smallest of the k largest (topk unsorted: the same
    value as the sorted k-th, ties and all)."""
    if temperature != 1:
        logits = logits / temperature
    if top_p > 0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(dim=-1) - probs > top_p  # keep the first token past top_p
        return logits.scatter(-1, order, sorted_logits.masked_fill_(drop, float("-inf")))  # order: a permutation
    if 0 < top_k < logits.shape[-1]:
        threshold = torch.topk(logits, top_k, dim=-1, sorted=False).values.amin(dim=-1, keepdim=True)
        return logits.masked_fill(logits < threshold, float("-inf"))
    return logits


def softmax_rows(logits: Tensor) -> Tensor:
    """softmax over the last dim, one row at a time on the CPU: with two rows or more torch's CPU softmax opens an
    OpenMP parallel region (grain 1 row), which waits for the helper thread to wake, and on a loaded 2-core machine
    to get a core. A single row runs inline, and the kernel computes each row alone, so the bits are the same
    (tests/inference/musicgen/test_sampling_bits.py). Other devices: one call.

    Measured (2 cores AMD EPYC; issue 24's step profile, musicgen-small int4 + int8 heads, Sampler.__call__ per step,
    A/B/C alternated in one process, load 1.6-3.2): one call, sampling p90 4.8-8.1 ms and mean 1.27-3.09 ms in the
    rounds where the neighbour's load rose (median 0.62-0.78); row by row, p90 0.71-0.81 ms, mean 0.61-0.70 ms in
    every round (median 0.58-0.70). The row loop's own cost: median +0.01-0.05 ms in the quiet rounds. Alone: 8 ms
    a call with the helper thread pinned to our core, 6 us row by row.
    """
    if logits.device.type != "cpu":
        return torch.softmax(logits, dim=-1)
    rows = logits.reshape(-1, logits.shape[-1])
    probs = torch.empty_like(rows)
    for row, out in zip(rows, probs):
        torch.softmax(row, dim=-1, out=out)
    return probs.view(logits.shape)


def sample(logits: Tensor, generators: list[torch.Generator] | None, temperature: float, top_k: int,
           top_p: float) -> Tensor:
    """logits (B, K, V) -> tokens (B, K). Greedy when temperature is 0; row b draws from generators[b].

    Gumbel-style draw, same law as multinomial: argmax(probs / noise), noise ~ Exp(1) drawn by row b's generator
    into its slice of one buffer (the same draws as a tensor of its own), divided and argmaxed for all rows at once.

    Cost (Sampler.__call__, 2 cores AMD EPYC, before -> after issue 24's pass). Step profile (musicgen-small int4 +
    int8 heads, A/B alternated in one process), median a step: load 4.3-5.6, 0.571-0.588 -> 0.565-0.579 ms; load
    2.0, 0.713-0.802 -> 0.759-0.810 ms; load 1.6-3.2, 0.620-0.783 -> 0.582-0.703 ms, where the mean went 0.75-3.09
    -> 0.61-0.70 ms and p90 0.85-8.13 -> 0.71-0.81 ms (softmax_rows); with filter_logits' one op less, load
    2.7-3.0, 0.613-0.690 -> 0.590-0.727 ms (no stall in that run). The medians are within the noise: after the
    layers' call every op starts with cold caches (the same call warm: 249-305 -> 252-256 us at logits (2, 4, 1,
    2048)), and about half of it is exponential_ itself (160-300 us for 8192 draws: mt19937 and a log each, serial).
    """
    if temperature <= 0 or generators is None:
        return logits.argmax(dim=-1)
    probs = softmax_rows(filter_logits(logits, temperature, top_k, top_p))
    return probs.div_(draw_noise(probs.shape, generators, probs.dtype, probs.device)).argmax(dim=-1)


def draw_noise(shape: torch.Size | tuple[int, ...], generators: list[torch.Generator],
               dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """Exp(1) noise (B, K, V), contiguous: row b drawn by generators[b] into its slice of one buffer (the same draws
    as a tensor of its own). The Python path and the fused op draw it here; a generator count other than B is
    refused (fewer would leave rows undrawn)."""
    if len(generators) != shape[0]:
        raise ValueError(f"{len(generators)} generators for {shape[0]} rows")
    noise = torch.empty(shape, dtype=dtype, device=device)
    for row, generator in zip(noise, generators):  # one generator per sample: each variation has its own seed
        row.exponential_(1, generator=generator)
    return noise


_fused_op: list = []  # [torch.ops.continuo_cpu.guided_sample or None], looked up at the first CPU sampling


def fused_sample_op():
    """The fused CPU sampling op where it gives this module's bits (kernels.guided_sample_op, then fused_op_agrees),
    else None; looked up once per process."""
    if not _fused_op:
        from inference.runtime.kernels import guided_sample_op

        op = guided_sample_op()
        if op is not None and not fused_op_agrees(op, torch.ops.continuo_cpu.guided_probs):
            log.warning("fused CPU sampling disagrees with torch's softmax here (another torch?): the Python path "
                        "samples")
            op = None
        _fused_op.append(op)
    return _fused_op[0]


def fused_op_agrees(op, probs_op) -> bool:
    """Whether the op's probabilities and tokens are this module's, bit for bit, on a few fixed rows (the model's
    vocabulary and a short one, CFG, temperature 0.7 and 1, top-k): a torch whose CPU softmax rounds otherwise than
    the one sampling.cpp was written against is caught here, once, instead of drawing other tokens."""
    generator = torch.Generator().manual_seed(0)
    for vocab, temperature in ((2048, 1.0), (2048, 0.7), (37, 1.0)):
        logits = torch.randn(4, 4, vocab, generator=generator) * 4
        probs = softmax_rows(filter_logits(guide(logits, 3.0), temperature, 250, 0.0))
        noise = torch.empty(2, 4, vocab).exponential_(1, generator=generator)
        if not torch.equal(probs_op(logits, 3.0, temperature, 250), probs):
            return False
        if not torch.equal(op(logits, 3.0, temperature, 250, noise), (probs / noise).argmax(dim=-1)):
            return False
    return True


class Sampler:
    """Guidance + sampling settings for one request.

    On the CPU, top-k sampling (top_p 0, temperature > 0, fp32 logits) runs as one C++ call
    (runtime/csrc/sampling.cpp, torch.ops.continuo_cpu.guided_sample) on the noise draw_noise drew: guide,
    filter_logits, softmax_rows, the division and the argmax of sample() for each sample and codebook, one row at a
    time in a buffer that stays in L1, with the same bits (its softmax is torch's CPU kernel, compiled from ATen's
    vector headers at the width torch dispatches to; tests/inference/musicgen/test_fused_sampling.py). `fused =
    False` (or no kernels, or another vector width) keeps the Python path, which top-p, greedy and other devices
    always take. Why: after the layers' call every torch op of that path (chunk, sub, mul, add, topk, amin,
    masked_fill, a softmax per row, div, argmax: about 15) paid its dispatch with cold caches; the op pays one. The
    noise stays torch's exponential_, one call per sample with its generator, so the draws and the generators'
    states are unchanged.

    Measured (2026-12-07, 2 cores AMD EPYC, musicgen-small random weights int4 + int8 heads + int8 cache, CFG, one
    sample, top-k 250, temperature 1; Sampler.__call__ per step, Python path and fused op alternated in blocks of
    25 calls in one process, about 300 calls each, median / p90 in ms), Python -> fused:
    load 2.8-3.0: 0.622 / 0.748 -> 0.376 / 0.460; load 3.2-3.7: 0.594 / 0.731 -> 0.356 / 0.426; load 2.8:
    0.573 / 0.668 -> 0.356 / 0.410; load 1.6-1.7: 0.698 / 0.804 -> 0.423 / 0.496; load 2.7-3.0: 0.653 / 0.850 ->
    0.409 / 0.518. About 0.25 ms of a 12.5-14 ms step. Of the fused call, draw_noise is 0.20-0.23 ms (exponential_:
    8192 draws, mt19937 and a log each, serial) and the op 0.107 ms (27 us warm: 14 without top-k; cold caches
    left by the layers' call do the rest; a trivial op of ours costs 10-45 us cold where it costs 1 warm).
    Tried and left out: the op's row buffers kept per thread instead of allocated per call (cold, top-k 250: 43-143
    us against 47-116, within the neighbour's noise); a radix select for the top-k threshold was not built (the
    nth_element it would replace is 3.3 us a row warm).
    """

    fused = True  # the fused CPU op where it applies; False: the Python path (the A/B measurement, the tests)

    def __init__(self, guidance_scale: float | None, temperature: float, top_k: int, top_p: float,
                 generators: list[torch.Generator] | None):
        self.guidance_scale = guidance_scale
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.generators = generators
        self.copies = 1 if guidance_scale is None else 2  # the decoder's rows per sample: [conditional; null]

    def __call__(self, logits: Tensor) -> Tensor:
        # logits (B', K, 1, V) from the decoder -> tokens (B, K)
        rows = logits[:, :, -1]
        op = self.fused_op(rows)
        if op is not None:
            noise = draw_noise((rows.shape[0] // self.copies, *rows.shape[1:]), self.generators)
            return op(rows.contiguous(), self.guidance_scale, self.temperature, self.top_k, noise)
        guided = guide(rows, self.guidance_scale)
        return sample(guided, self.generators, self.temperature, self.top_k, self.top_p)

    def fused_op(self, rows: Tensor):
        """The fused CPU op for these logits (B', K, V), or None where the Python path samples them."""
        if (not self.fused or self.temperature <= 0 or self.generators is None or self.top_p > 0
                or rows.device.type != "cpu" or rows.dtype != torch.float32):
            return None
        return fused_sample_op()

    def expand(self, tokens: Tensor) -> Tensor:
        """(B, K, T) -> the decoder batch: [tokens; tokens] under CFG."""
        return tokens if self.copies == 1 else torch.cat([tokens] * self.copies, dim=0)


def prefill(model: MusicGenDecoder, pattern: Tensor, start: int, memory, sampler: Sampler) -> Tensor:
    """Run positions 0..start-1 (BOS + the known prompt) at once; returns tokens (B, K) for position start."""
    input_pos = torch.arange(start, device=pattern.device)
    logits = model(sampler.expand(pattern[:, :, :start]), input_pos, memory, kv_end=start)
    return apply_pattern(sampler(logits), pattern[:, :, start])


def decode_one_token(model: MusicGenDecoder, tokens: Tensor, position: int, memory, sampler: Sampler) -> Tensor:
    """tokens (B, K) at position -> tokens (B, K) predicted for position + 1 (before the pattern is applied).

    The position goes to the device as a kernel argument (arange), never as host data (torch.tensor([...],
    device=cuda) would be a blocking copy every step).
    """
    input_pos = torch.arange(position, position + 1, device=tokens.device)
    logits = model(sampler.expand(tokens[:, :, None]), input_pos, memory, kv_end=position + 1)
    return sampler(logits)


MEMORY_SLOTS = 64  # text tokens the compiled step's cross-attention buffers hold; doubled when a prompt needs more


def static_logits(model: MusicGenDecoder, tokens: Tensor, input_pos: Tensor, layer_memory) -> Tensor:
    """The one function compiled decode traces: one query over the full-length caches, masked by position."""
    return model.logits(tokens, input_pos, layer_memory, None, True)


class StaticStep:
    """Compiled decode: the decoder's one-token forward as one graph per batch size; sampling stays eager.

    Every tensor the graph reads keeps its shape and address from step to step: the caches are full length
    (attention masks by position), the position is a device tensor written in place (fill_, no host copy),
    and the text memory sits padded to memory_slots tokens in buffers kept for the current batch
    (pad_memory), with its mask always present. compile_fn(function) -> the compiled function
    (torch.compile(fullgraph=True, dynamic=False) in the engine; inductor with CUDA graphs on a GPU, the
    eager backend in the CPU tests). Melody models fold their prefix length into the position.
    torch.compiler.cudagraph_mark_step_begin() runs before each step. Before this, a Python-int position, the
    sampler and the text length were in the trace: each step was a new graph until Dynamo's limit of 8, then
    silently eager over all 2048 positions (tests/inference/musicgen/test_gpu_paths.py holds the CPU twin).
    """

    def __init__(self, compile_fn: Callable, device: torch.device, memory_slots: int = MEMORY_SLOTS):
        self.compiled = compile_fn(static_logits)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.memory_slots = memory_slots
        self.memory: list[tuple[Tensor, Tensor, Tensor]] | None = None

    def pad_memory(self, memory):
        """Per-layer cross-attention (keys, values, mask) -> the same in the fixed buffers; a Prefix passes."""
        if isinstance(memory, Prefix):
            return memory
        batch, heads, length, head_dim = memory[0][0].shape
        while self.memory_slots < length:  # a longer prompt than ever: bigger buffers, one more graph
            self.memory_slots *= 2
        shape = (batch, heads, self.memory_slots, head_dim)
        keys = memory[0][0]
        if (self.memory is None or len(self.memory) != len(memory) or self.memory[0][0].shape != shape
                or self.memory[0][0].dtype != keys.dtype):
            self.memory = None  # let the old buffers go before the new ones are allocated
            self.memory = [(torch.zeros(shape, dtype=keys.dtype, device=keys.device),
                            torch.zeros(shape, dtype=keys.dtype, device=keys.device),
                            torch.zeros((batch, 1, 1, self.memory_slots), dtype=torch.bool, device=keys.device))
                           for _ in memory]
        for (k, v, mask), (k_buffer, v_buffer, mask_buffer) in zip(memory, self.memory):
            k_buffer.zero_()
            v_buffer.zero_()
            k_buffer[:, :, :length] = k
            v_buffer[:, :, :length] = v
            mask_buffer.zero_()
            mask_buffer[..., :length] = True if mask is None else mask
        return self.memory

    def __call__(self, model: MusicGenDecoder, tokens: Tensor, position: int, memory, sampler: Sampler) -> Tensor:
        prefix = isinstance(memory, Prefix)
        self.position.fill_(position + (memory.length if prefix else 0))
        layer_memory = [None] * len(model.layers) if prefix else memory
        torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs are consumed
        logits = self.compiled(model, sampler.expand(tokens[:, :, None]), self.position, layer_memory)
        return sampler(logits)


def decode_n_tokens(model: MusicGenDecoder, pattern: Tensor, start: int, first: Tensor, memory, sampler: Sampler,
                    on_step: StepCallback | None = None, step_fn=decode_one_token) -> Tensor:
    """Fill pattern positions start..L-1; first holds position start (from prefill). Returns the sequence (B, K, L)."""
    sequence = pattern.clone()
    sequence[:, :, start] = first
    whole = predicted_columns(pattern)
    if on_step is not None:
        on_step(1, sequence)
    for position in range(start, sequence.shape[2] - 1):
        predicted = step_fn(model, sequence[:, :, position], position, memory, sampler)
        if not whole[position + 1]:  # pads or prompt codes in this column: the pattern's stay
            predicted = apply_pattern(predicted, pattern[:, :, position + 1])
        sequence[:, :, position + 1] = predicted
        if on_step is not None:
            on_step(position + 2 - start, sequence)
    return sequence


def generate_codes(model: MusicGenDecoder, prompt: Tensor, frames: int, memory, sampler: Sampler,
                   on_step: StepCallback | None = None, step_fn=decode_one_token) -> Tensor:
    """prompt codes (B, K, P) -> codes (B, K, frames) including the prompt; the caches must be set up."""
    args = model.args
    pattern = build_delay_pattern(prompt, frames, args.audio_channels, args.pad_id)
    start = 1 + prompt.shape[2]  # BOS + prompt frames are known in codebook 0
    model.start_sequence(memory)  # melody models: the conditioning prefix into the cache first
    first = prefill(model, pattern, start, memory, sampler)
    sequence = decode_n_tokens(model, pattern, start, first, memory, sampler, on_step, step_fn)
    return undelay(sequence, frames, args.audio_channels)


def teacher_forced_logits(model: MusicGenDecoder, sequence: Tensor, memory, sampler: Sampler) -> Tensor:
    """Guided logits (B, K, L-1, V) for positions 1..L-1 given the whole delayed sequence (B, K, L) at once.

    Equivalent to L-1 decode steps fed the true tokens (the cache holds the same keys either way);
    the quality tests compare weight and cache modes with it.
    """
    length = sequence.shape[2] - 1
    input_pos = torch.arange(length, device=sequence.device)
    model.start_sequence(memory)
    logits = model(sampler.expand(sequence[:, :, :length]), input_pos, memory, kv_end=length, last_only=False)
    return guide(logits, sampler.guidance_scale)


def teacher_forced_steps(model: MusicGenDecoder, sequence: Tensor, memory, sampler: Sampler) -> Tensor:
    """As teacher_forced_logits, but one decode step per position: the path generation takes (our fused CPU
    attention reading the cache in place, the cache write kernel), so a cache mode is measured where it runs."""
    model.start_sequence(memory)
    steps = []
    for position in range(sequence.shape[2] - 1):
        input_pos = torch.arange(position, position + 1, device=sequence.device)
        logits = model(sampler.expand(sequence[:, :, position : position + 1]), input_pos, memory,
                       kv_end=position + 1)
        steps.append(guide(logits[:, :, -1], sampler.guidance_scale))
    return torch.stack(steps, dim=2)
