"""Streaming: decoded audio in chunks while the decoder runs.

ExactStreamer, wherever the codec is one inference/musicgen/codec.py knows (MusicGen's EnCodec): the codec's own
stream, LSTM state carried and the convolutions' lookahead waited for, so chunks join exactly and the render is
assembled from them; first audio after first_chunk_s (0.5 s) of frames plus 4 steps of lookahead.

ChunkStreamer, elsewhere: each chunk decoded whole with a little context and a short crossfade at each seam.

EnCodec's decoder is not causal, so each chunk is decoded with a little code
context before it (context_frames) and starts crossfade_samples early; those
samples are blended with the tail held back from the previous chunk, so the
chunks join without a click. Time to first audio is one chunk of frames. The engine's defaults
(EngineOptions): chunks of 1 s, 0.2 s of code context, a 10 ms raised-cosine crossfade.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from inference.api import ChunkCallback  # here: audio (B, C, samples) float32


class ChunkStreamer:
    """Feed it the frame count that is complete; it decodes and emits every chunk_frames new frames."""

    def __init__(self, *, start_frame: int, chunk_frames: int, context_frames: int, crossfade_samples: int,
                 hop: int, decode: Callable[[torch.Tensor], np.ndarray], emit: ChunkCallback):
        if context_frames * hop < crossfade_samples:
            raise ValueError("context_frames must cover the crossfade")
        self.emitted_frames = start_frame  # audio up to here is out (less the held tail)
        self.chunk_frames, self.context_frames = chunk_frames, context_frames
        self.crossfade, self.hop = crossfade_samples, hop
        self.decode, self.emit = decode, emit
        self.held: np.ndarray | None = None  # (B, C, crossfade) not yet emitted
        ramp = np.linspace(0.0, 1.0, crossfade_samples, endpoint=False, dtype=np.float32) + 0.5 / crossfade_samples
        self.fade_in = np.sin(0.5 * np.pi * ramp) ** 2  # equal-gain raised cosine: fade_in + fade_out = 1
        self.fade_out = 1.0 - self.fade_in

    def due(self, complete_frames: int) -> bool:
        return complete_frames - self.emitted_frames >= self.chunk_frames

    def update(self, complete_frames: int, codes: Callable[[], torch.Tensor]) -> None:
        """codes() -> all complete codes (B, K, complete_frames); only called when a chunk is due."""
        if self.due(complete_frames):
            available = codes()
            while self.due(complete_frames):
                self.emit_until(available, self.emitted_frames + self.chunk_frames, final=False)

    def finish(self, codes: torch.Tensor) -> None:
        """Emit everything up to codes.shape[2], the held tail included."""
        if codes.shape[2] > self.emitted_frames or self.held is not None:
            self.emit_until(codes, codes.shape[2], final=True)

    def emit_until(self, codes: torch.Tensor, end: int, final: bool) -> None:
        start = self.emitted_frames
        first = max(0, start - self.context_frames)
        audio = self.decode(codes[:, :, first:end])  # (B, C, (end - first) * hop)
        offset = (start - first) * self.hop
        if self.held is not None:
            overlap = audio[..., offset - self.crossfade : offset]
            blended = self.held * self.fade_out + overlap * self.fade_in
            piece = np.concatenate([blended, audio[..., offset:]], axis=-1)
        else:
            piece = audio[..., offset:]
        if final:
            self.held = None
            out = piece
        else:
            self.held, out = piece[..., -self.crossfade :], piece[..., : -self.crossfade]
        self.emitted_frames = end
        if out.shape[-1]:
            self.emit(np.ascontiguousarray(out, dtype=np.float32))


class ExactStreamer:
    """Streaming through CodecStream (inference/musicgen/codec.py): chunks that join exactly, no crossfade, and the
    whole result assembled from them (no second decode at the end). The first chunk is first_frames of audio, the
    later ones chunk_frames (larger chunks decode faster: the late layers' activations stay in cache); each waits
    for codec.LAG frames after it (the codec's lookahead). Stereo models stream each channel's codebooks apart."""

    def __init__(self, *, start_frame: int, first_frames: int, chunk_frames: int, streams: list,
                 emit: ChunkCallback | None):
        from inference.musicgen.codec import LAG

        self.start, self.first_frames, self.chunk_frames, self.lag = start_frame, first_frames, chunk_frames, LAG
        self.streams, self.emit = streams, emit
        for stream in streams:
            stream.emitted = start_frame  # the prompt's frames go through the LSTM, not to the output
        self.fed = 0  # frames pushed
        self.pieces: list[np.ndarray] = []

    @property
    def emitted_frames(self) -> int:
        return self.streams[0].emitted

    def due(self, complete_frames: int) -> bool:
        wanted = self.first_frames if self.emitted_frames <= self.start else self.chunk_frames
        return complete_frames - self.lag - self.emitted_frames >= wanted

    def update(self, complete_frames: int, codes: Callable[[], torch.Tensor]) -> None:
        """codes() -> all complete codes (B, K, complete_frames); only called when a chunk is due."""
        if self.due(complete_frames):
            self.push(codes()[:, :, self.fed : complete_frames], final=False)
            self.fed = complete_frames

    def finish(self, codes: torch.Tensor) -> None:
        """Everything up to codes.shape[2]: the last chunk ends where the whole decode does."""
        self.push(codes[:, :, self.fed :], final=True)
        self.fed = codes.shape[2]

    def push(self, codes: torch.Tensor, final: bool) -> None:
        channels = [codes] if len(self.streams) == 1 else [codes[:, ::2], codes[:, 1::2]]
        parts = [stream.push(part, final=final) for stream, part in zip(self.streams, channels)]
        if parts[0] is None or not parts[0].shape[-1]:
            return
        piece = np.ascontiguousarray(torch.cat(parts, dim=1).float().cpu().numpy(), dtype=np.float32)
        self.pieces.append(piece)
        if self.emit is not None:
            self.emit(piece)

    def audio(self) -> np.ndarray | None:
        """The streamed audio (B, C, samples) from start_frame on, once finished; None before any."""
        return np.concatenate(self.pieces, axis=-1) if self.pieces else None
