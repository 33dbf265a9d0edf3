"""Continuous batching: the decode steps of every running request in one forward pass, on one compute thread.

A decode step reads every weight once however many rows it runs, so concurrent requests share that read.
Requests (tickets) join the running decode at a step boundary and leave it when their codes are done; the
others never stop. Each ticket keeps its own prompt, length, seed, settings, window plan, delay pattern,
progress, cancel and streaming (its on_step callback).

Rows. A ticket holds rows [conditional x n; null x n] under CFG, [conditional x n] without (n variations),
contiguous in the cache, tickets in the order they joined (`Ticket.row`). A leaving ticket's rows are closed up
(`KVCache.move_rows`), so the live rows are always the cache's first rows and the fused kernel reads them in
place.

Positions. Every row has its own position (`inference.musicgen.model.RowPositions`): the step writes each row's key
and value at that row's position and attends over the first kv_end = furthest position + 1 keys, the later
ones masked per row. We chose per-row positions over left-aligned padding: padding would need a joining request's
prompt shifted to the running rows' position (a new prefill of everyone at every join, or a request waiting for the
others), and it would feed masked pad positions into the sinusoidal positions and the melody prefix. With per-row
positions a joining request prefills its own rows only, at positions 0..P, as it would alone. The fused CPU kernel
attends each row over its own keys only (up to its last unmasked one, in 16-key blocks from position 0, masked keys
inside weighing exactly 0, every sum in a fixed order), and the int8 linears quantise each row on its own scale and
sum in integers, so with the CPU defaults (int8 or int4 weights, LM heads bf16 or quantized as calibration decides,
int8 cache, fused attention) a request gives the same logits, bit for bit, at every step alone or in a batch: tested
per step at head size 64 over a 300-step job with another joining (tests/inference/musicgen/test_batching.py), and
in the kernel alone for rows at positions up to 1499 (tests/inference/runtime/test_kernels.py). Elsewhere it holds
to rounding only, and one flipped near-tie then diverges a sampled job: SDPA (one masked kernel over the batch),
fp32 weights (oneDNN GEMMs block by row count; the test's control), and torch's dynamic int8 stand-in where our
kernels cannot be built (one activation scale per call, shared by every row).

Text conditioning. Each ticket's cross-attention keys/values (rows, H, S_j, D) are padded to the longest S and
masked, rebuilt only when the tickets change. Melody checkpoints carry their prefix in the cache: a ticket's
positions are offset by its prefix length, and there is no cross-attention.

The compute thread. The scheduler is the engine's inference.runtime.compute.ComputeThread: every torch call of the
engine (conditioning, prompt encoding, steps, codec decodes) runs on one thread (`call`), between steps.
`continuo serve` gives it the main thread (`serve`); without a serving thread the calling thread drives the
steps itself until its ticket is done (`run`), and a waiting caller takes over from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from inference.errors import Cancelled
from inference.musicgen.decode import (
    Sampler,
    apply_pattern,
    build_delay_pattern,
    pattern_length,
    predicted_columns,
    prefill,
    undelay,
)
from inference.musicgen.kv_cache import KVCache
from inference.musicgen.model import MusicGenDecoder, Prefix, RowPositions
from inference.runtime.compute import ComputeThread

log = logging.getLogger("continuo.inference")

CACHE_GRANULE = 256  # positions grow in steps of this many
WindowStep = Callable[[int, Tensor, int, int], Callable[[int, Tensor], None]]  # (before, codes, ctx, win) -> step


@dataclass(eq=False)
class Ticket:
    """One request's decode: n samples (variations) of one prompt, window after window."""

    codes: Tensor  # (n, K, P): the prompt codes, then every frame decoded so far
    windows: list[tuple[int, int]]  # (context frames, new frames) still to decode (engine.plan_windows)
    memory: object  # per-layer (keys, values, mask) for these rows, or a melody Prefix
    sampler: Sampler
    window_step: WindowStep  # the per-step callback of one window (progress, cancel, streaming)
    delay_steps: int  # steps past a window's new frames (the longest codebook delay)
    channels: int  # audio channels (stereo models interleave codebooks)
    label: str = ""
    row: int = 0  # its first cache row
    pattern: Tensor | None = None  # the window being decoded: its delay pattern, sequence and known position
    sequence: Tensor | None = None
    whole_columns: list[bool] | None = None  # per position of the window: a prediction goes in whole
    position: int = 0  # the next step predicts position + 1
    start: int = 0
    on_step: Callable[[int, Tensor], None] | None = None
    steps_before: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    @property
    def rows(self) -> int:
        return self.codes.shape[0] * self.sampler.copies

    @property
    def offset(self) -> int:
        """Positions a melody prefix takes ahead of the codes."""
        return self.memory.length if isinstance(self.memory, Prefix) else 0

    def positions_needed(self) -> int:
        context, new = self.windows[0]
        return self.offset + pattern_length(context + new, self.codes.shape[1], self.channels)

    def positions_written(self) -> int:
        return 0 if self.sequence is None else self.offset + self.position + 1

    def finish(self, error: BaseException | None) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    def result(self) -> Tensor:
        if self.error is not None:
            raise self.error
        return self.codes


class BatchScheduler(ComputeThread):
    """The decode loop of every ticket of one decoder, on the compute thread that runs the engine's torch calls.

    cache_factory(rows, positions) -> a layer_index -> KVCache callable (the engine's cache mode).
    guard(): the engine's context turning failures into InferenceError / OutOfMemory (a failed step fails every
    ticket in it; a failed prefill, its ticket alone).
    """

    def __init__(self, decoder: MusicGenDecoder, cache_factory: Callable[[int, int], Callable[[int], KVCache]],
                 guard: Callable, *, max_positions: int):
        super().__init__()
        self.decoder, self.cache_factory, self.guard = decoder, cache_factory, guard
        self.max_positions = max_positions
        self.active: list[Ticket] = []
        self.pending: list[Ticket] = []
        self.caches: list[KVCache] | None = None
        self.row_views: tuple | None = None  # use_rows' last ((start, stop), caches, views); None with the caches
        self.memory_cache: list | None = None  # the active tickets' memory, combined (rebuilt when they change)
        self.row_positions: Tensor | None = None  # (rows,) on the device, rebuilt when the rows change
        self.steps = 0
        self.max_rows = 0  # the most rows one step has run

    def run(self, ticket: Ticket) -> Tensor:
        """Decode ticket with whatever else runs: its codes (n, K, frames), or its error raised here."""
        with self.cond:
            self.pending.append(ticket)
            self.cond.notify_all()
        self.wait_for(ticket.done)
        return ticket.result()

    # ---- between tasks: joins, then one step ----------------------------------------------------------------

    def has_work(self) -> bool:
        return bool(self.pending or self.active)

    def work(self) -> None:
        """Waiting tickets join (prefill), then one step of every active ticket. Always in inference mode, which
        is the thread's own: the driver may be any caller, in it or not (an in-place update of a tensor made in
        inference mode fails outside it)."""
        with self.cond:
            joining, self.pending = self.pending, []
        with torch.inference_mode():
            for ticket in joining:
                self.join(ticket)
            if self.active:
                self.step()

    def stopped(self, error: BaseException) -> None:
        with torch.inference_mode():  # leaving moves cache rows, made in inference mode
            self.fail_all(error)

    def join(self, ticket: Ticket) -> None:
        ticket.row = self.rows()
        self.active.append(ticket)
        self.memory_cache = self.row_positions = None
        try:
            with self.guard():
                self.reserve()
                self.start_window(ticket)
        except BaseException as error:
            self.leave(ticket, error)
            return
        log.debug("batch: %s joined at row %d (%d rows)", ticket.label, ticket.row, self.rows())

    def start_window(self, ticket: Ticket) -> None:
        """Prefill the ticket's rows with BOS + its context frames (positions 0..start-1, after any prefix)."""
        context, new = ticket.windows[0]
        window = context + new
        args = self.decoder.args
        prompt = ticket.codes[:, :, ticket.codes.shape[2] - context :]
        ticket.pattern = build_delay_pattern(prompt, window, args.audio_channels, args.pad_id)
        ticket.whole_columns = predicted_columns(ticket.pattern)
        ticket.start = 1 + context
        ticket.on_step = ticket.window_step(ticket.steps_before, ticket.codes, context, window)
        self.use_rows(ticket.row, ticket.row + ticket.rows)
        with torch.inference_mode():
            self.decoder.start_sequence(ticket.memory)
            first = prefill(self.decoder, ticket.pattern, ticket.start, ticket.memory, ticket.sampler)
        sequence = ticket.pattern.clone()
        sequence[:, :, ticket.start] = first
        self.row_positions = None
        ticket.sequence, ticket.position = sequence, ticket.start
        ticket.on_step(1, sequence)
        if ticket.position == sequence.shape[2] - 1:
            self.end_window(ticket)

    def step(self) -> None:
        """One token for every row of every active ticket, each at its own position.

        Its own Python and small ops (issue 24's step profile `bookkeeping`: the step less decode_rows and sampling;
        musicgen-small int4 + int8 heads, 2 cores AMD EPYC, A/B alternated in one process), CPU a step, before ->
        after issue 24's pass: load 4.3-5.6, 0.58-1.05 -> 0.28-0.37 ms; load 2.0, 0.41-0.54 -> 0.33-0.38 ms; load
        1.6-3.2, 0.37-1.46 -> 0.30-0.35 ms; load 2.7-3.0, 0.32-0.42 -> 0.27-0.31 ms. The tokens gathered in one cat;
        use_rows' check through `_modules`; a column the pattern leaves wholly to the prediction
        (Ticket.whole_columns) written as is, not through apply_pattern. Decoder stubbed (a 24-layer tiny model):
        104 -> 46 us a step."""
        tickets = list(self.active)
        host = [ticket.position + ticket.offset for ticket in tickets]
        if self.row_positions is None:  # the rows changed: their positions go to the device once
            self.row_positions = torch.tensor([p for ticket, p in zip(tickets, host) for _ in range(ticket.rows)],
                                              device=self.decoder.positions.device)
        columns = []  # each ticket's tokens at its position, twice under CFG ([conditional; null], Sampler.expand)
        for ticket in tickets:
            columns += [ticket.sequence[:, :, ticket.position]] * ticket.sampler.copies
        tokens = torch.cat(columns)
        rows = RowPositions.build(self.row_positions, max(host), len(set(host)) == 1)
        self.use_rows(0, tokens.shape[0])
        try:
            with self.guard(), torch.inference_mode():
                logits = self.decoder.decode_rows(tokens[:, :, None], rows, max(host) + 1, self.layer_memory())
        except BaseException as error:
            self.fail_all(error)
            return
        self.row_positions += 1  # every row moves one position per step (on the device)
        batch_rows = tokens.shape[0]
        self.steps += 1
        self.max_rows = max(self.max_rows, batch_rows)
        spans = [(ticket, ticket.row) for ticket in tickets]
        failed, finished = [], []
        for ticket, row in spans:
            try:
                predicted = ticket.sampler(logits[row : row + ticket.rows])
                position = ticket.position + 1
                if not ticket.whole_columns[position]:  # pads or prompt codes in this column: the pattern's stay
                    predicted = apply_pattern(predicted, ticket.pattern[:, :, position])
                ticket.sequence[:, :, position] = predicted
                ticket.position = position
                ticket.on_step(position + 1 - ticket.start, ticket.sequence)
                if position == ticket.sequence.shape[2] - 1:
                    finished.append(ticket)
            except BaseException as error:  # its cancel, or its streaming failed: it alone leaves
                failed.append((ticket, error))
        for ticket, error in failed:
            self.leave(ticket, error)
        for ticket in finished:
            try:
                with self.guard():
                    self.end_window(ticket)
            except BaseException as error:
                self.leave(ticket, error)

    def end_window(self, ticket: Ticket) -> None:
        """The window's codes onto the ticket's; the next window prefills at once, or the ticket is done."""
        context, new = ticket.windows.pop(0)
        frames = undelay(ticket.sequence, context + new, self.decoder.args.audio_channels)
        ticket.codes = torch.cat([ticket.codes, frames[:, :, context:]], dim=2)
        ticket.steps_before += new + ticket.delay_steps
        ticket.pattern = ticket.sequence = ticket.whole_columns = None
        if ticket.windows:
            self.reserve()
            self.start_window(ticket)
        else:
            self.leave(ticket, None)

    def leave(self, ticket: Ticket, error: BaseException | None) -> None:
        """The ticket out of the batch (done or failed); the rows after it close up."""
        if ticket in self.active:
            index = self.active.index(ticket)
            self.active.remove(ticket)
            row = ticket.row
            for other in self.active[index:]:
                used = other.positions_written()
                if self.caches is not None and used:
                    for cache in self.caches:
                        cache.move_rows(other.row, row, other.rows, used)
                other.row = row
                row += other.rows
            self.memory_cache = self.row_positions = None
        ticket.finish(error)
        if error is not None and not isinstance(error, Cancelled):
            log.info("batch: %s left: %s: %s", ticket.label, type(error).__name__, error)

    def fail_all(self, error: BaseException) -> None:
        """Every ticket, waiting or running, and every waiting task fails with error."""
        for ticket in list(self.active):
            self.leave(ticket, error)
        with self.cond:
            waiting, self.pending = self.pending, []
        for ticket in waiting:
            ticket.finish(error)
        super().stopped(error)

    # ---- caches and memory --------------------------------------------------------------------------------

    def rows(self) -> int:
        return sum(ticket.rows for ticket in self.active)

    def reserve(self) -> None:
        """Caches with room for every active row and the longest active window. Growing keeps what running
        tickets wrote; caches more than twice what a lone new ticket needs shrink to it (no running rows)."""
        rows = self.rows()
        needed = max(ticket.positions_needed() for ticket in self.active if ticket.windows)
        positions = min(self.max_positions, -(-needed // CACHE_GRANULE) * CACHE_GRANULE)
        running = any(ticket.sequence is not None for ticket in self.active)
        have = self.caches
        if have is not None:
            fits = have[0].rows >= rows and have[0].positions >= positions
            oversized = have[0].rows >= 2 * rows or have[0].positions >= 2 * positions
            if fits and (running or not oversized):
                return
            if running:  # grow, keeping what the running tickets wrote (old and new held while copying)
                rows, positions = max(rows, have[0].rows), max(positions, have[0].positions)
        self.caches = self.row_views = None
        if not running:  # nothing to keep: the old caches go before the new ones come
            have = None
            self.decoder.setup_caches(lambda index: None)
        factory = self.cache_factory(rows, positions)
        caches = [factory(index) for index in range(len(self.decoder.layers))]
        if have is not None:
            for old, new in zip(have, caches):
                old.copy_into(new)
        self.caches = caches
        log.debug("batch: caches %d rows x %d positions", rows, positions)

    def use_rows(self, start: int, stop: int) -> None:
        """Every layer's cache set to rows start..stop-1 of the scheduler's caches. The views of the last call are
        kept while every layer still holds them (most steps use the same rows of the same caches): a view is a
        copy of the cache module, 24 of them 0.3-0.5 ms of Python a step (issue 24's step profile). The check reads
        each layer's modules through `_modules`, as MusicGenDecoder.fast_layers does: through nn.Module's attribute
        lookup (two a layer) it was 42-88 us a step at 24 layers."""
        held = self.row_views
        if (held is not None and held[0] == (start, stop) and held[1] is self.caches
                and all(layer._modules["attention"]._modules.get("kv_cache") is view
                        for layer, view in zip(self.decoder.layers, held[2]))):
            return
        views = [cache.row_view(start, stop) for cache in self.caches]
        for layer, view in zip(self.decoder.layers, views):
            layer.attention.kv_cache = view
        self.row_views = ((start, stop), self.caches, views)

    def release(self) -> None:
        """The caches go (when nothing runs)."""
        if not self.active:
            self.caches = self.row_views = None
            self.memory_cache = None

    def layer_memory(self) -> list:
        """Per layer, the active tickets' (keys, values, mask), padded to the longest text; None for melody."""
        if self.memory_cache is None:
            self.memory_cache = combine_memory([ticket.memory for ticket in self.active], len(self.decoder.layers))
        return self.memory_cache

    def cache_bytes(self) -> int:
        return 0 if self.caches is None else sum(cache.nbytes() for cache in self.caches)

    @property
    def cache_shape(self) -> tuple[int, int] | None:
        """(rows, positions) of the caches, None before the first request."""
        return None if self.caches is None else (self.caches[0].rows, self.caches[0].positions)


def combine_memory(memories: list, layers: int) -> list:
    """Tickets' per-layer cross-attention (keys, values, mask) as one batch: each ticket's text padded with
    zeros to the longest and masked (B, 1, 1, S_max); the mask is None when every row sees every key. Melody
    tickets (their Prefix is in the cache) have no cross-attention: None per layer."""
    if any(isinstance(memory, Prefix) for memory in memories):
        return [None] * layers
    if len(memories) == 1:
        return memories[0]
    longest = max(memory[0][0].shape[2] for memory in memories)
    if all(memory[0][0].shape[2] == longest and memory[0][2] is None for memory in memories):
        return [(torch.cat([memory[layer][0] for memory in memories]),
                 torch.cat([memory[layer][1] for memory in memories]), None) for layer in range(layers)]
    combined = []
    for layer in range(layers):
        keys, values, masks = [], [], []
        for memory in memories:
            k, v, mask = memory[layer]
            rows, _, length, _ = k.shape
            pad = longest - length
            keys.append(F.pad(k, (0, 0, 0, pad)))
            values.append(F.pad(v, (0, 0, 0, pad)))
            seen = torch.ones((rows, 1, 1, length), dtype=torch.bool, device=k.device) if mask is None else \
                mask.expand(rows, -1, -1, -1)
            masks.append(F.pad(seen, (0, pad), value=False))
        combined.append((torch.cat(keys), torch.cat(values), torch.cat(masks)))
    return combined
