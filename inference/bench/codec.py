"""The codec row of `continuo bench engine` (issue 24): EnCodec's decode of 10 s of codes, transformers'
EncodecModel.decode against ours (inference/musicgen/codec.py) in one run, on random weights of the model's codec.

- `transformers_s`: EncodecModel.decode, the whole clip at once (fp32);
- `whole_s`: FastCodecDecoder on the whole clip (what a render without streaming pays after its last step);
- `streamed_s`: CodecStream fed as the engine's ExactStreamer feeds it with the default options (`engine_pushes`:
  the first chunk's 25 frames and the codec's lookahead, then 50 at a time), the sum of the pushes (what the engine
  pays between decode steps while it streams), `first_piece_s`: the first push that returned audio (until
  2026-12-07 the row pushed 25 frames at a time, which costs about half again as much as the engine's pushes);
- `previous_whole_s`: the fast decoder before its time-major stack, as recorded (PREVIOUS: not rerun);
- `error_db` (ours whole against transformers) and `streamed_error_db` (streamed against whole): the accuracy the
  speed is held to (tests/inference/musicgen/test_codec.py: under -100 dB and -60 dB).
Each figure is the best of `repeats` runs; the thread count and the load are in the row.
"""

from __future__ import annotations

import math
import os
import time

import torch

from inference.musicgen.codec import LAG, CodecStream, FastCodecDecoder
from inference.musicgen.engine import EngineOptions

FRAME_RATE = 50  # EnCodec 32 kHz: 640 samples a frame
# FastCodecDecoder before the time-major stack (main at 80b82be), 10 s, 2 threads, a quiet machine (issue 24's
# brief; docs/benchmarks.md has its loaded figures, 1.9-2.3 s)
PREVIOUS = {"previous_whole_s": 1.48, "previous_threads": 2}


def error_db(audio: torch.Tensor, expected: torch.Tensor) -> float:
    """The error's energy against the expected audio's, in dB (-inf for the same bits)."""
    noise = float((audio - expected).double().pow(2).sum())
    return -math.inf if noise == 0 else 10 * math.log10(noise / float(expected.double().pow(2).sum()))


def best_of(repeats: int, run) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def engine_pushes(frames: int, options: EngineOptions | None = None) -> list[int]:
    """The frames of each push as the engine's ExactStreamer makes them (inference/musicgen/streaming.py): the
    first chunk and the codec's lookahead, then a chunk at a time as the steps complete them, the rest with the
    final push."""
    first, chunk = (options or EngineOptions()).stream_frames(FRAME_RATE)
    first += LAG
    sizes: list[int] = []
    done = 0
    while done < frames:
        sizes.append(min(chunk if sizes else first, frames - done))
        done += sizes[-1]
    return sizes


def codec_row(codec, seconds: float = 10.0, repeats: int = 2, seed: int = 0) -> dict:
    """One row for a transformers EncodecModel (random codes of `seconds`)."""
    codebooks = codec.quantizer.get_num_quantizers_for_bandwidth(codec.config.target_bandwidths[0])
    frames = round(seconds * FRAME_RATE)
    codes = torch.randint(0, codec.config.codebook_size, (1, codebooks, frames),
                          generator=torch.Generator().manual_seed(seed))
    fast = FastCodecDecoder(codec).eval()
    pushes = engine_pushes(frames)

    def streamed() -> tuple[torch.Tensor, float, float]:
        stream, pieces, spent, first, start = CodecStream(fast), [], 0.0, None, 0
        for size in pushes:
            began = time.perf_counter()
            piece = stream.push(codes[:, :, start : start + size], final=start + size >= frames)
            spent += time.perf_counter() - began
            start += size
            if piece is not None:
                pieces.append(piece)
                first = spent if first is None else first
        return torch.cat(pieces, dim=-1), spent, first

    with torch.inference_mode():
        transformers_s, expected = best_of(1, lambda: codec.decode(codes[None], [None]).audio_values)
        whole_s, whole = best_of(repeats, lambda: fast(codes))
        runs = [streamed() for _ in range(repeats)]
    stream_audio, streamed_s, first_s = min(runs, key=lambda run: run[1])
    return {
        "suite": "engine", "backend": "codec", "audio_s": seconds, "frames": frames, "pushes": len(pushes),
        "first_push_frames": pushes[0], "push_frames": pushes[1] if len(pushes) > 1 else pushes[0],
        "transformers_s": round(transformers_s, 3), "whole_s": round(whole_s, 3),
        "streamed_s": round(streamed_s, 3), "first_piece_s": round(first_s, 3),
        "whole_rtf": round(whole_s / seconds, 3), "vs_transformers": round(transformers_s / whole_s, 2), **PREVIOUS,
        "vs_previous": round(PREVIOUS["previous_whole_s"] / whole_s, 2),
        "error_db": round(error_db(whole, expected), 1), "streamed_error_db": round(error_db(stream_audio, whole), 1),
        "threads": torch.get_num_threads(), "load_1min": round(os.getloadavg()[0], 2),
    }
