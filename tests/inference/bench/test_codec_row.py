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
    from inference.bench.codec import PUSH_FRAMES, codec_row

    row = codec_row(codec, seconds=1.2, repeats=1)
    assert row["frames"] == 60 and row["push_frames"] == PUSH_FRAMES
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
