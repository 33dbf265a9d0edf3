"""The codec row of `continuo bench engine` (inference/bench/codec.py): transformers and ours timed in one run, with
the accuracy beside the speed. The control: a broken decoder shows in the row's error."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def codec():
    from transformers import EncodecConfig, EncodecModel

    from inference.bench.musicgen import ENCODEC_32KHZ

    torch.manual_seed(0)
    return EncodecModel(EncodecConfig(**{**ENCODEC_32KHZ, "hidden_size": 32, "num_filters": 16})).eval()


def test_the_codec_row_times_both_decoders_and_reports_their_accuracy(codec):
    from inference.bench.codec import codec_row, engine_pushes

    row = codec_row(codec, seconds=1.2, repeats=1)
    assert row["frames"] == 60 and engine_pushes(60) == [29, 31] and engine_pushes(500)[:2] == [29, 50]
    assert (row["pushes"], row["first_push_frames"], row["push_frames"]) == (2, 29, 31)
    assert sum(engine_pushes(500)) == 500 and len(engine_pushes(500)) == 11
    assert all(row[name] > 0 for name in ("transformers_s", "whole_s", "streamed_s", "first_piece_s"))
    assert row["first_piece_s"] <= row["streamed_s"]
    assert row["error_db"] < -100 and row["streamed_error_db"] < -60
    assert row["vs_previous"] > 0 and row["vs_transformers"] > 0


def test_a_broken_decoder_shows_in_the_row(codec, monkeypatch):
    from inference.bench.codec import codec_row
    from inference.musicgen.codec import FastCodecDecoder

    real = FastCodecDecoder.upsample
    monkeypatch.setattr(FastCodecDecoder, "upsample", lambda self, rows: real(self, rows) * 0.9)
    row = codec_row(codec, seconds=1.2, repeats=1)
    assert row["error_db"] > -30


def test_the_row_pushes_as_the_engine_s_streamer_does(codec):
    """engine_pushes against ExactStreamer itself, fed one completed frame at a time as the decode loop feeds it
    (first_frames and chunk_frames as the engine makes them: EngineOptions.stream_frames of its defaults)."""
    from inference.bench.codec import FRAME_RATE, engine_pushes
    from inference.musicgen.codec import CodecStream, FastCodecDecoder
    from inference.musicgen.engine import EngineOptions
    from inference.musicgen.streaming import ExactStreamer

    options, frames = EngineOptions(), 160
    stream = CodecStream(FastCodecDecoder(codec).eval())
    sizes: list[int] = []
    real_push = stream.push
    stream.push = lambda codes, final=False: (sizes.append(codes.shape[2]), real_push(codes, final))[1]
    first_frames, chunk_frames = options.stream_frames(FRAME_RATE)
    streamer = ExactStreamer(start_frame=0, first_frames=first_frames, chunk_frames=chunk_frames, streams=[stream],
                             emit=None)
    codes = torch.randint(0, codec.config.codebook_size, (1, 4, frames), generator=torch.Generator().manual_seed(1))
    for complete in range(1, frames + 1):
        streamer.update(complete, lambda: codes[:, :, :complete])
    streamer.finish(codes)
    assert sizes == engine_pushes(frames) == [29, 50, 50, 31]
