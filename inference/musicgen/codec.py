"""EnCodec's decoder, fast and streaming: the same function as transformers' EncodecModel.decode, as codes arrive.

MusicGen's codec (EnCodec 32 kHz: a 7-tap convolution, a two-layer LSTM, four transposed-convolution upsamplers with
residual blocks, a 7-tap output convolution; none causal) decoded 10 s in 3.3 s on one thread here, after the last
decode step: a third of the real time on top of the decoder, and the first audio waited for it.

- Fast (`FastCodecDecoder`): weight norm folded once (transformers recomputes it every call). After the LSTM the
  whole stack is time-major (rows of channels, one tensor layout from the LSTM's output to the audio, no transposes
  between stages), every convolution MKL GEMMs:
  - a k-tap convolution is k GEMMs over row windows of its padded input, accumulating in place (`RowConv`); the ELU
    before it is written straight into the padded buffer, the one before a 1-tap convolution in place, and a
    residual block's last 1-tap convolution accumulates into its shortcut (`RowResidual`);
  - a transposed convolution (stride s) is its polyphase form: output row q holds the s samples q*s .. q*s + s - 1
    side by side, so the GEMMs write them already interleaved and the trim is a row slice (`RowUpsample`). EnCodec's
    kernels are 2 s (two taps): rows in pairs by Winograd's F(2, 2), three GEMMs for two rows instead of four
    (`WINOGRAD`; error against transformers -133.2 -> -133.2 dB; at a tenth of 10 s's rows, one thread, min of 15:
    the four upsamplers 12.9/11.0/11.6/17.5 -> 13.8/9.2/9.9/16.1 ms: the wide GEMMs gain, the first, at 25 row
    pairs, does not), from WINOGRAD_ROWS input rows: below that the three weight matrices (A, B, A + B) cost more
    to read than the quarter of the arithmetic saves (a stream's 28-row spans through the 1024-wide upsampler);
  - the output convolution (64 -> 1, 7 taps) is one GEMM to the 7 per-tap products laid out channel-major (MKL:
    W (7, 64) @ x.T 0.17 ms for 8320 rows, x @ W.T with N = 7 0.76 ms), padded along time (a row's products depend
    on that row alone), then 7 shifted adds (`RowOutput`);
  - from the second-last upsampler on (TILE_UPSAMPLERS) the stack runs in tiles of TILE_ROWS rows, each with the
    halo the rest of the stack reads (4 rows each side), so the widest tensors (64 channels x 32000 rows a second,
    82 MB for 10 s) never exist whole and the elementwise passes stay in cache. Stack at one thread (thread CPU ms,
    10 s): untiled 965-1098, tiles of 512 rows 755-925, of 2048 766-968. Under load at two threads (libgomp spin
    count 10000, wall ms) 512-row tiles lost (1570-1655 against 1007-1099 untiled: a parallel region per op per
    tile) and 2048 did not (1013-1132): 2048 it is. Peak memory of a 10 s decode (RSS growth, one process each):
    the previous decoder +366 MB, this one +37 MB.
  Same arithmetic to float rounding: within -100 dB of transformers' decode (tested; measured -133 dB at full size).
  Measured against the previous form (oneDNN channel-major convolutions, the polyphase upsamplers interleaved by a
  permute), 10 s of musicgen-small's codec, random weights, alternated A/B on the shared 2-core machine (never
  quiet; libgomp spin count 10000 as `continuo` sets it; figures are ranges over rounds):
  - one thread, thread CPU, load 2.0-2.1: whole decode 2195-2382 -> 1262-1317 ms (1.8x); streamed in 25-frame
    pushes 2048-2348 -> 1821-2010 ms (1.15x: the LSTM's per-frame products and the small spans' GEMMs dominate);
    the stack after the LSTM alone (load 2.5-3.2) 1654-2041 -> 792-941 ms (2.1x);
  - two threads, wall: one round at load 1.5 (the nearest to quiet this session saw): whole 1280 -> 614 ms (2.1x),
    streamed 1284 -> 1315 ms; at load 2.0-2.4 streamed 3970-4369 -> 3433-3708 ms.
  The quiet-machine reference for the old decoder at two threads was 1.48 s whole (front 227 ms, stack about
  1.25 s); `continuo bench engine` prints the codec row (inference/bench/codec.py) to rerun it.
  What is left, and why it stays: the stack's GEMMs are about 51 GFLOP for 10 s (60 before Winograd), and MKL's
  sgemm peaks at 92-95 GFLOP/s a core here, so 0.28 s at two threads is the floor for this arithmetic in fp32; in
  tiles the GEMMs run at 50-90 GFLOP/s. torch's ELU costs about 1.3 ns an element (its expm1), about 14 % of the
  stack at one thread: a fused C++ ELU would be the next lever (not built: it would join the shared op library).
  The LSTM (its recurrent matrix, 16.8 MB of fp32 per layer, read once per frame: bandwidth-bound matrix-vector
  products) is torch's (oneDNN), unchanged: no cheaper form is exact (int8/bf16 weights are not within -100 dB).
  Tried and not kept: the LSTM as our own loop of steps (one GEMM for the input projection, then per frame MKL's
  matrix-vector product and the gates in place; -122 dB from torch's). Alone, 500 frames in 25-frame calls, one
  thread, it took 662-774 ms against torch's 1479-1506 (oneDNN prepares its weights per call), but inside the
  stream (its input a permuted view) torch's was as fast (whole stream 1743-1798 against 1749-2018 ms), and at
  two threads oneDNN runs each step on both cores (500 frames at once: 193-306 ms against 513-723 for the loop,
  whose matrix-vector product MKL keeps on one), so the stream was slower with the loop (3815-4091 against
  3433-3708 ms). A threaded kernel of our own was then prototyped (2026-12-08, not committed: the recurrent
  matrix packed once in blocks of 16 hidden units x 4 gates, both threads splitting the units per frame, torch's
  vector exp and tanh; -123 dB from torch's): 500 frames at 2 threads, alternated with torch's, whole 139-172 ms
  against 141-200, in 50-frame calls 199-226 against 221-368. About 60 ms of a 10 s stream, within a run's noise
  here: not worth a kernel to port to every vector width. bf16 autocast over the stack halves it but is -44 dB
  from fp32: never the default.
- Streaming (`CodecStream`): frames go in as the decoder completes them, audio comes out as soon as it is final. The
  LSTM is causal, so its state (h, c) is carried and every frame goes through it once. The convolutions are not
  causal: the input convolution waits for INPUT_LOOKAHEAD frames after a frame, and the part after the LSTM is run
  over each new span with CONTEXT frames of the LSTM's output before it and LOOKAHEAD after it, keeping only the audio
  of frames whose whole receptive field was there. So chunks join exactly (no crossfade): chunked equals whole
  within -60 dB, measured about -120 dB (float rounding; tested), and the last chunk ends as the whole decode does.
  First audio waits for the first chunk's frames plus INPUT_LOOKAHEAD + LOOKAHEAD frames (6 decode steps), not for
  the end.

Where the codec's config is not one this module knows (a causal or group-normed EnCodec, normalised audio, chunked
encoding), `fast_codec` returns None and the engine keeps transformers' decode and the crossfading ChunkStreamer.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

INPUT_LOOKAHEAD = 3  # frames after a frame the input convolution (7 taps) reads
CONTEXT = 2  # frames of LSTM output before a span that the upsampling stack's receptive field reaches back
LOOKAHEAD = 1  # ... and after it: 1 each way is the whole field (0 gives -52 dB seams, 1 the same bits as whole)
LAG = INPUT_LOOKAHEAD + LOOKAHEAD  # frames after a frame that must be decoded before its audio is final
WINOGRAD = True  # two-tap upsamplers by Winograd's F(2, 2) (RowUpsample.two_taps); False: a GEMM per tap ...
WINOGRAD_ROWS = 256  # ... from this many input rows (fewer: the GEMMs read weights more than they compute)
TILE_UPSAMPLERS = 2  # the stack from its second-last upsampler on runs in tiles (FastCodecDecoder.upsample) ...
TILE_ROWS = 2048  # ... of this many input rows


def folded_weight(conv: nn.Module) -> Tensor:
    """A (possibly weight-normed) convolution's weight as it computes, detached."""
    return conv.weight.detach().clone()


def geometry(module) -> tuple[tuple[int, int], int, str]:
    """An EncodecConv1d's (left, right) padding, dilation and pad mode (stride 1, non-causal)."""
    conv = module.conv
    dilation = conv.dilation[0]
    total = (conv.kernel_size[0] - 1) * dilation + 1 - conv.stride[0]
    return (total - total // 2, total // 2), dilation, module.pad_mode


class Conv(nn.Module):
    """transformers' EncodecConv1d (stride 1, non-causal): asymmetric padding in its pad mode, then the convolution."""

    def __init__(self, module):
        super().__init__()
        conv = module.conv
        self.register_buffer("weight", folded_weight(conv), persistent=False)
        self.register_buffer("bias", conv.bias.detach().clone(), persistent=False)
        self.pad, self.dilation, self.mode = geometry(module)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(padded(x, self.pad, self.mode), self.weight, self.bias, dilation=self.dilation)


def padded(x: Tensor, pad: tuple[int, int], mode: str) -> Tensor:
    """Channel-major (..., L) padded along L as transformers' EncodecConv1d pads."""
    if pad == (0, 0):
        return x
    if mode == "reflect" and x.shape[-1] <= max(pad):
        extra = max(pad) - x.shape[-1] + 1  # transformers' short-input rule: zeros, then reflect
        return F.pad(F.pad(x, (0, extra)), pad, "reflect")[..., : x.shape[-1] + sum(pad)]
    return F.pad(x, pad, mode if mode != "zero" else "constant")


def time_major(weight: Tensor, tap: int) -> Tensor:
    """A conv1d weight (out, in, k)'s tap as the (in, out) matrix that multiplies time-major rows."""
    return weight[:, :, tap].T.contiguous()


def padded_rows(x: Tensor, pad: tuple[int, int], mode: str, activate: bool) -> Tensor:
    """Time-major rows (L, C) -> (pad[0] + L + pad[1], C) padded as transformers' EncodecConv1d pads, ELU'd on the
    way in when `activate` (written straight into the padded buffer: one pass, no copy)."""
    left, right = pad
    length = x.shape[0]
    if mode == "reflect" and length <= max(pad):  # the short-input rule (rare: tiny spans)
        return padded((F.elu(x) if activate else x).T[None], pad, mode)[0].T.contiguous()
    out = x.new_empty(left + length + right, x.shape[1])
    inner = out[left : left + length]
    if activate:
        torch._C._nn.elu(x, 1.0, 1, 1, out=inner)
    else:
        inner.copy_(x)
    if mode == "reflect":
        if left:
            out[:left] = out[left + 1 : 2 * left + 1].flip(0)
        if right:
            out[left + length :] = out[left + length - right - 1 : left + length - 1].flip(0)
    else:  # constant / zero
        out[:left] = 0
        out[left + length :] = 0
    return out


class RowConv(nn.Module):
    """transformers' EncodecConv1d (stride 1, non-causal) on time-major rows (L, C_in) -> (L, C_out): one GEMM per tap
    (MKL, accumulating in place) over row windows of the padded input; ELU fused into the padding when asked."""

    def __init__(self, module):
        super().__init__()
        conv = module.conv
        weight = folded_weight(conv)
        self.taps = weight.shape[2]
        self.register_buffer("weights", torch.stack([time_major(weight, t) for t in range(self.taps)]),
                             persistent=False)  # (k, in, out)
        self.register_buffer("bias", conv.bias.detach().clone(), persistent=False)
        self.pad, self.dilation, self.mode = geometry(module)

    def reach(self, left: int, right: int) -> tuple[int, int]:
        return left + self.pad[0], right + self.pad[1]

    def forward(self, x: Tensor, activate: bool = False) -> Tensor:
        length = x.shape[0]
        if self.pad == (0, 0):
            rows = F.elu(x) if activate else x
        else:
            rows = padded_rows(x, self.pad, self.mode, activate)
        out = torch.addmm(self.bias, rows[:length], self.weights[0])
        for tap in range(1, self.taps):
            start = tap * self.dilation
            out.addmm_(rows[start : start + length], self.weights[tap])
        return out


class RowUpsample(nn.Module):
    """transformers' EncodecConvTranspose1d (non-causal) on time-major rows (L, C_in) -> (L * s, C_out), as its
    polyphase form: output row q holds the s output samples q*s .. q*s + s - 1 side by side (s * C_out columns), so
    a GEMM per tap of stride s writes them already interleaved; then the trim, a row slice (a view)."""

    def __init__(self, module):
        super().__init__()
        conv = module.conv
        weight = folded_weight(conv)  # (in, out, k)
        self.stride, kernel = conv.stride[0], conv.kernel_size[0]
        self.taps = math.ceil(kernel / self.stride)
        padded = F.pad(weight, (0, self.taps * self.stride - kernel))  # zero taps past the kernel
        phases = padded.view(weight.shape[0], weight.shape[1], self.taps, self.stride)  # [in, out, m, p]
        self.out_channels = weight.shape[1]
        self.register_buffer("weights", phases.permute(2, 0, 3, 1).reshape(  # [m, in, p * out]
            self.taps, weight.shape[0], self.stride * self.out_channels).contiguous(), persistent=False)
        self.register_buffer("bias", conv.bias.detach().repeat(self.stride), persistent=False)
        if self.taps == 2:
            self.register_buffer("both", self.weights.sum(dim=0), persistent=False)
        self.kernel = kernel
        total = kernel - self.stride
        self.trim = (total - total // 2, total // 2)
        self.activate = False  # the ELU before it fused in (FastCodecDecoder sets it)

    def reach(self, left: int, right: int) -> tuple[int, int]:
        """Input rows either side that output samples `left` before and `right` after a span can read (bounded)."""
        return (left + self.kernel) // self.stride + 1, (right + self.kernel) // self.stride + 1

    def forward(self, x: Tensor) -> Tensor:
        """Input rows q-m meet tap m at output row q (rows 0 .. L + taps - 2); ELU'd first when `activate`."""
        if self.taps == 2 and WINOGRAD and x.shape[0] >= WINOGRAD_ROWS:
            return self.two_taps(x)
        if self.activate:
            x = F.elu(x)
        length = x.shape[0]
        rows = length + self.taps - 1
        out = x.new_empty(rows, self.stride * self.out_channels)
        torch.addmm(self.bias, x, self.weights[0], out=out[:length])
        out[length:] = self.bias
        for tap in range(1, self.taps):
            out[tap : tap + length].addmm_(x, self.weights[tap])
        return self.trimmed(out, length)

    def trimmed(self, out: Tensor, length: int) -> Tensor:
        full = (length - 1) * self.stride + self.kernel
        return out.view(-1, self.out_channels)[self.trim[0] : full - self.trim[1]]

    def two_taps(self, x: Tensor) -> Tensor:
        """Two taps (kernel = 2 * stride, EnCodec's): row q = p[q] A + p[q + 1] B over the input p padded by a zero
        row each side (A = tap 1, B = tap 0). Rows in pairs by Winograd's F(2, 2): with m = p[2i+1] (A + B),
        row 2i = (p[2i] - p[2i+1]) A + m and row 2i+1 = (p[2i+2] - p[2i+1]) B + m: three GEMMs for two rows, not
        four."""
        length = x.shape[0]
        pairs = (length + 2) // 2
        padded = padded_rows(x, (1, 2 * pairs - length), "constant", self.activate)  # 2 * pairs + 1 rows
        even, odd = padded[0::2], padded[1::2]
        differences = x.new_empty(2, pairs, x.shape[1])
        torch.sub(even[:-1], odd, out=differences[0])
        torch.sub(even[1:], odd, out=differences[1])
        out = x.new_empty(pairs, 2, self.stride * self.out_channels)
        shared = torch.addmm(self.bias, odd, self.both, out=out[:, 0])
        torch.addmm(shared, differences[1], self.weights[0], out=out[:, 1])
        shared.addmm_(differences[0], self.weights[1])
        return self.trimmed(out, length)


class RowELU(nn.Module):
    """ELU on time-major rows, in place where the rows are the stack's own."""

    def reach(self, left: int, right: int) -> tuple[int, int]:
        return left, right

    def forward(self, x: Tensor, owned: bool = True) -> Tensor:
        return F.elu(x, inplace=owned)


class RowResidual(nn.Module):
    """transformers' EncodecResnetBlock on time-major rows: ELU, conv, ELU, conv, plus the shortcut. The ELUs fused
    (into a conv's padding, or in place on the hidden rows before a 1-tap conv); a last 1-tap conv accumulated into
    the shortcut in place, so the input rows must be the caller's to overwrite (the stack's own)."""

    def __init__(self, module):
        super().__init__()
        self.convs = nn.ModuleList(RowConv(layer) for layer in module.block if not isinstance(layer, nn.ELU))
        self.shortcut = None if isinstance(module.shortcut, nn.Identity) else RowConv(module.shortcut)

    def reach(self, left: int, right: int) -> tuple[int, int]:
        for conv in self.convs:
            left, right = conv.reach(left, right)
        return left, right

    def forward(self, x: Tensor) -> Tensor:
        hidden = x
        for conv in self.convs[:-1]:
            hidden = conv(hidden, activate=True)
        last = self.convs[-1]
        out = x if self.shortcut is None else self.shortcut(x)
        if last.pad != (0, 0) or last.taps != 1:
            return out.add_(last(hidden, activate=True))
        F.elu(hidden, inplace=True)
        return out.add_(last.bias).addmm_(hidden, last.weights[0])


class RowOutput(nn.Module):
    """The last convolution (C -> audio channels, k taps) on time-major rows: one GEMM to k * channels products per
    row (tap t's weighted sum over channels), laid out channel-major (products (k * channels, L): MKL ran
    W (7, 64) @ x.T in 0.17 ms for 8320 rows, x @ W.T (N = 7) in 0.76), padded along time (a row's products depend
    on that row alone, so padding the products is padding the input), then the k shifted rows added."""

    def __init__(self, module):
        super().__init__()
        self.conv = Conv(module)
        weight = self.conv.weight  # (out, in, k)
        self.channels, self.taps = weight.shape[0], weight.shape[2]
        self.register_buffer("products", weight.permute(2, 0, 1).reshape(-1, weight.shape[1]).contiguous(),
                             persistent=False)  # (k * out, in)

    def reach(self, left: int, right: int) -> tuple[int, int]:
        return left + self.conv.pad[0], right + self.conv.pad[1]

    def forward(self, x: Tensor) -> Tensor:
        """(L, C) -> (channels, L)."""
        conv, length, channels = self.conv, x.shape[0], self.channels
        products = padded(torch.matmul(self.products, x.T), conv.pad, conv.mode)  # (k * channels, padded L)
        out = products[:channels, :length] + conv.bias[:, None]
        for tap in range(1, self.taps):
            start = tap * conv.dilation
            out += products[tap * channels : (tap + 1) * channels, start : start + length]
        return out


def supported(codec) -> str | None:
    """None when FastCodecDecoder reproduces this EncodecModel's decode, else why not."""
    config = getattr(codec, "config", None)
    if config is None or type(codec).__name__ != "EncodecModel":
        return "not a transformers EncodecModel"
    if config.use_causal_conv or config.norm_type != "weight_norm" or config.normalize:
        return "a causal, group-normed or normalising EnCodec"
    if getattr(config, "chunk_length", None):
        return "an EnCodec that encodes in chunks"
    if config.pad_mode not in ("reflect", "constant", "zero"):
        return f"pad mode {config.pad_mode!r}"
    return None


class FastCodecDecoder(nn.Module):
    """EncodecModel.decode's function for codes (B, K, T) -> audio (B, C, T * hop), built from a transformers model;
    also the pieces CodecStream runs one span at a time. After the LSTM everything is time-major (rows of channels)."""

    def __init__(self, codec):
        super().__init__()
        layers = list(codec.decoder.layers)
        self.quantizer = codec.quantizer
        self.input = Conv(layers[0])
        self.lstm = layers[1].lstm
        stack = []
        for layer in layers[2:]:
            name = type(layer).__name__
            if isinstance(layer, nn.ELU):
                stack.append(RowELU())
            elif name == "EncodecConvTranspose1d":
                stack.append(RowUpsample(layer))
                if len(stack) > 1 and isinstance(stack[-2], RowELU):
                    stack[-1].activate = True
                    del stack[-2]
            elif name == "EncodecResnetBlock":
                stack.append(RowResidual(layer))
            elif name == "EncodecConv1d":
                stack.append(RowOutput(layer))
            else:
                raise ValueError(f"unknown EnCodec decoder layer {name}")
        if not isinstance(stack[-1], RowOutput):
            raise ValueError("an EnCodec decoder that does not end in a convolution")
        self.stack = nn.ModuleList(stack)
        self.hop = int(np.prod(codec.config.upsampling_ratios))
        upsamplers = [index for index, stage in enumerate(stack) if isinstance(stage, RowUpsample)]
        self.tile(upsamplers[-min(TILE_UPSAMPLERS, len(upsamplers))] if upsamplers else 0, TILE_ROWS)

    def tile(self, tile_from: int, tile_rows: int) -> None:
        """Run stages tile_from.. in tiles of tile_rows input rows (see upsample); the halo each side is what those
        stages read, from the output's single sample back (bounded above)."""
        self.tile_from, self.tile_rows = tile_from, tile_rows
        left = right = 0
        for stage in reversed(self.stack[tile_from:]):
            left, right = stage.reach(left, right)
        self.halo = (left, right)
        self.tail_hop = int(np.prod([s.stride for s in self.stack[tile_from:] if isinstance(s, RowUpsample)]))

    def embed(self, codes: Tensor) -> Tensor:
        """codes (B, K, T) -> quantizer embeddings (B, D, T)."""
        return self.quantizer.decode(codes.transpose(0, 1))

    def recurrent(self, x: Tensor, state=None) -> tuple[Tensor, tuple]:
        """The LSTM with its residual (EncodecLSTM), (B, C, T) -> time-major (B, T, C), from state (None: zeros)."""
        sequence = x.permute(2, 0, 1)
        out, state = self.lstm(sequence, state)
        return out.add_(sequence).transpose(0, 1), state

    def upsample(self, rows: Tensor) -> Tensor:
        """The stack after the LSTM: time-major (B, T, C) -> audio (B, channels, T * hop), one batch row at a time;
        from stage tile_from on, in tiles of tile_rows rows (with the halo the rest of the stack reads), so that the
        widest tensors (64 channels x 32000 rows a second) stay in cache."""
        audio = []
        for item in rows:
            head = self.stack[: self.tile_from]
            x = self.run(item.contiguous(), head, owned=False)  # a stream keeps the LSTM's rows
            audio.append(self.tiled(x, owned=len(head) > 0))
        return torch.stack(audio)

    @staticmethod
    def run(x: Tensor, stages, owned: bool) -> Tensor:
        """Stages in order on rows x; `owned`: x may be overwritten (else the first in-place stage copies it)."""
        for stage in stages:
            if isinstance(stage, RowELU):
                x = stage(x, owned)
            else:
                x = stage(x if owned or not isinstance(stage, RowResidual) else x.clone())
            owned = True
        return x

    def tiled(self, x: Tensor, owned: bool) -> Tensor:
        """The stages from tile_from on, tile by tile: each tile's rows with the halo either side, of whose output
        only the tile's own samples are kept (the halo's are wrong at the tile's edges, as a seam would be)."""
        tail = self.stack[self.tile_from :]
        length, tile = x.shape[0], self.tile_rows
        if length <= tile + self.halo[0] + self.halo[1]:
            return self.run(x, tail, owned)
        scale = self.tail_hop
        out = x.new_empty(self.stack[-1].channels, length * scale)
        for start in range(0, length, tile):
            stop = min(length, start + tile)
            low, high = max(0, start - self.halo[0]), min(length, stop + self.halo[1])
            piece = self.run(x[low:high], tail, owned=False)
            out[:, start * scale : stop * scale] = piece[:, (start - low) * scale : (stop - low) * scale]
        return out

    def forward(self, codes: Tensor) -> Tensor:
        hidden, _ = self.recurrent(self.input(self.embed(codes)))
        return self.upsample(hidden)


class CodecStream:
    """Codes in as frames complete (push), audio out as soon as it is final (B, C, samples): see the module doc.
    Frame indices are absolute; only the frames a later span can still read are held."""

    def __init__(self, decoder: FastCodecDecoder, start_frame: int = 0):
        self.decoder = decoder
        self.embeddings: Tensor | None = None  # (B, D, frames) from frame embedded_base
        self.embedded_base = 0
        self.pushed = 0
        self.recurrent_out: Tensor | None = None  # (B, frames, C) from frame recurrent_base
        self.recurrent_base = 0
        self.through_lstm = 0
        self.state = None
        self.emitted = start_frame  # frames whose audio is out (or not wanted: a prompt's)

    @torch.inference_mode()
    def push(self, codes: Tensor, final: bool = False) -> Tensor | None:
        """codes (B, K, n): the next n frames (n may be 0 with final). Returns the audio that is now final, or None.
        Always in inference mode, whichever thread calls it: the engine pushes from its decode loop (in inference
        mode) and finishes the stream from the compute thread (not), and the state carried between the two is an
        inference tensor that the LSTM's parameters (they require grad) may not meet outside it."""
        decoder = self.decoder
        if codes.shape[2]:
            new = decoder.embed(codes)
            self.embeddings = new if self.embeddings is None else torch.cat([self.embeddings, new], dim=2)
            self.pushed += codes.shape[2]
        if self.embeddings is None:
            return None
        # the input convolution, then the LSTM, for frames whose input window is complete
        ready = self.pushed if final else self.pushed - INPUT_LOOKAHEAD
        start = self.through_lstm
        if ready > start:
            low = max(0, start - INPUT_LOOKAHEAD)
            window = self.embeddings[:, :, low - self.embedded_base :]
            convolved = decoder.input(window)[:, :, start - low : ready - low]
            out, self.state = decoder.recurrent(convolved, self.state)
            self.recurrent_out = out if self.recurrent_out is None else torch.cat([self.recurrent_out, out], dim=1)
            self.through_lstm = ready
            keep_from = max(0, ready - INPUT_LOOKAHEAD)  # the next input window starts here
            self.embeddings = self.embeddings[:, :, keep_from - self.embedded_base :]
            self.embedded_base = keep_from
        # the upsampling stack over the new span with its context: the audio of frames it saw whole
        end = self.through_lstm if final else self.through_lstm - LOOKAHEAD
        if end <= self.emitted:
            return None
        low = max(0, self.emitted - CONTEXT)
        audio = decoder.upsample(self.recurrent_out[:, low - self.recurrent_base :])
        hop = decoder.hop
        piece = audio[..., (self.emitted - low) * hop : (end - low) * hop]
        self.emitted = end
        keep_from = max(0, end - CONTEXT)  # the next span's context starts here
        self.recurrent_out = self.recurrent_out[:, keep_from - self.recurrent_base :]
        self.recurrent_base = keep_from
        return piece
