"""EnCodec's decoder, fast and streaming: the same function as transformers' EncodecModel.decode, as codes arrive.

MusicGen's codec (EnCodec 32 kHz: a 7-tap convolution, a two-layer LSTM, four transposed-convolution upsamplers with
residual blocks, a 7-tap output convolution; none causal) decoded 10 s in 3.3 s on one thread here, after the last
decode step: a third of the real time on top of the decoder, and the first audio waited for it. Two changes:

- Fast (`FastCodecDecoder`): weight norm folded once (transformers recomputes it every call), and each transposed
  convolution run as its polyphase form, one ordinary convolution with stride-many outputs per position, interleaved
  (oneDNN's direct convolution instead of torch's transposed one: 880 -> 378 ms for the 128 -> 64 upsampler over 10 s
  at one thread). Same arithmetic to float rounding: within -100 dB of transformers' decode (tested).
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


def folded_weight(conv: nn.Module) -> Tensor:
    """A (possibly weight-normed) convolution's weight as it computes, detached."""
    return conv.weight.detach().clone()


class Conv(nn.Module):
    """transformers' EncodecConv1d (stride 1, non-causal): asymmetric padding in its pad mode, then the convolution."""

    def __init__(self, module):
        super().__init__()
        conv = module.conv
        self.register_buffer("weight", folded_weight(conv), persistent=False)
        self.register_buffer("bias", conv.bias.detach().clone(), persistent=False)
        self.dilation = conv.dilation[0]
        total = (conv.kernel_size[0] - 1) * self.dilation + 1 - conv.stride[0]
        self.pad = (total - total // 2, total // 2)
        self.mode = module.pad_mode

    def forward(self, x: Tensor) -> Tensor:
        if self.pad != (0, 0):
            if self.mode == "reflect" and x.shape[-1] <= max(self.pad):
                extra = max(self.pad) - x.shape[-1] + 1  # transformers' short-input rule: zeros, then reflect
                x = F.pad(F.pad(x, (0, extra)), self.pad, "reflect")[..., : x.shape[-1] + sum(self.pad)]
            else:
                x = F.pad(x, self.pad, self.mode if self.mode != "zero" else "constant")
        if self.weight.shape[0] == 1 and self.dilation == 1:  # the output convolution: a GEMM and shifted adds
            return narrow_conv(x, self.weight, self.bias)
        return F.conv1d(x, self.weight, self.bias, dilation=self.dilation)


def narrow_conv(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """conv1d to one output channel, (B, C, L + k - 1) -> (B, 1, L): oneDNN's direct convolution ran it at 1 GFLOP/s
    (158 ms for EnCodec's last layer over 10 s); per tap a GEMM column, then k shifted adds: 15 ms."""
    taps = weight.shape[2]
    length = x.shape[-1] - taps + 1
    per_tap = torch.matmul(weight[0].T, x)  # (B, k, L + k - 1): tap t's weighted sum over channels
    out = per_tap[:, 0, :length] + bias[0]
    for tap in range(1, taps):
        out += per_tap[:, tap, tap : tap + length]
    return out[:, None]


class PolyphaseUpsample(nn.Module):
    """transformers' EncodecConvTranspose1d (non-causal) as one ordinary convolution: output phase p of stride s is a
    convolution of the input with taps p, p + s, ... of the kernel; the phases are interleaved, then trimmed."""

    def __init__(self, module):
        super().__init__()
        conv = module.conv
        weight = folded_weight(conv)  # (in, out, k)
        self.stride, kernel = conv.stride[0], conv.kernel_size[0]
        self.taps = math.ceil(kernel / self.stride)
        padded = F.pad(weight, (0, self.taps * self.stride - kernel))  # zero taps past the kernel
        phases = padded.view(weight.shape[0], weight.shape[1], self.taps, self.stride)  # [in, out, t, p]
        self.out_channels = weight.shape[1]
        self.register_buffer("weight", phases.permute(3, 1, 0, 2).flip(-1).reshape(
            self.stride * self.out_channels, weight.shape[0], self.taps).contiguous(), persistent=False)
        self.register_buffer("bias", conv.bias.detach().clone(), persistent=False)
        self.kernel = kernel
        total = kernel - self.stride
        self.trim = (total - total // 2, total // 2)

    def forward(self, x: Tensor) -> Tensor:
        batch, _, length = x.shape
        y = F.conv1d(F.pad(x, (self.taps - 1, self.taps - 1)), self.weight)  # (B, s * out, length + taps - 1)
        y = y.view(batch, self.stride, self.out_channels, -1).permute(0, 2, 3, 1).reshape(batch, self.out_channels, -1)
        full = (length - 1) * self.stride + self.kernel
        return y[..., self.trim[0] : full - self.trim[1]] + self.bias[:, None]


class Residual(nn.Module):
    """transformers' EncodecResnetBlock: ELU, conv, ELU, conv, plus the shortcut."""

    def __init__(self, module):
        super().__init__()
        self.convs = nn.ModuleList(Conv(layer) for layer in module.block if not isinstance(layer, nn.ELU))
        self.shortcut = None if isinstance(module.shortcut, nn.Identity) else Conv(module.shortcut)

    def forward(self, x: Tensor) -> Tensor:
        hidden = x
        for conv in self.convs:
            hidden = conv(F.elu(hidden))
        return (x if self.shortcut is None else self.shortcut(x)) + hidden


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
    also the pieces CodecStream runs one span at a time."""

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
                stack.append(nn.ELU())
            elif name == "EncodecConvTranspose1d":
                stack.append(PolyphaseUpsample(layer))
            elif name == "EncodecResnetBlock":
                stack.append(Residual(layer))
            elif name == "EncodecConv1d":
                stack.append(Conv(layer))
            else:
                raise ValueError(f"unknown EnCodec decoder layer {name}")
        self.stack = nn.Sequential(*stack)
        self.hop = int(np.prod(codec.config.upsampling_ratios))

    def embed(self, codes: Tensor) -> Tensor:
        """codes (B, K, T) -> quantizer embeddings (B, D, T)."""
        return self.quantizer.decode(codes.transpose(0, 1))

    def recurrent(self, x: Tensor, state=None) -> tuple[Tensor, tuple]:
        """The LSTM with its residual (EncodecLSTM), (B, C, T) -> (B, C, T), from state (None: zeros)."""
        sequence = x.permute(2, 0, 1)
        out, state = self.lstm(sequence, state)
        return (out + sequence).permute(1, 2, 0), state

    def forward(self, codes: Tensor) -> Tensor:
        hidden, _ = self.recurrent(self.input(self.embed(codes)))
        return self.stack(hidden)


class CodecStream:
    """Codes in as frames complete (push), audio out as soon as it is final (B, C, samples): see the module doc.
    Frame indices are absolute; only the frames a later span can still read are held."""

    def __init__(self, decoder: FastCodecDecoder, start_frame: int = 0):
        self.decoder = decoder
        self.embeddings: Tensor | None = None  # (B, D, frames) from frame embedded_base
        self.embedded_base = 0
        self.pushed = 0
        self.recurrent_out: Tensor | None = None  # (B, C, frames) from frame recurrent_base
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
            self.recurrent_out = out if self.recurrent_out is None else torch.cat([self.recurrent_out, out], dim=2)
            self.through_lstm = ready
            keep_from = max(0, ready - INPUT_LOOKAHEAD)  # the next input window starts here
            self.embeddings = self.embeddings[:, :, keep_from - self.embedded_base :]
            self.embedded_base = keep_from
        # the upsampling stack over the new span with its context: the audio of frames it saw whole
        end = self.through_lstm if final else self.through_lstm - LOOKAHEAD
        if end <= self.emitted:
            return None
        low = max(0, self.emitted - CONTEXT)
        audio = decoder.stack(self.recurrent_out[:, :, low - self.recurrent_base :])
        hop = decoder.hop
        piece = audio[..., (self.emitted - low) * hop : (end - low) * hop]
        self.emitted = end
        keep_from = max(0, end - CONTEXT)  # the next span's context starts here
        self.recurrent_out = self.recurrent_out[:, :, keep_from - self.recurrent_base :]
        self.recurrent_base = keep_from
        return piece
