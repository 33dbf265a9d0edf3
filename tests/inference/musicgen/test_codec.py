"""EnCodec's decoder, fast and streaming (inference/musicgen/codec.py): the same function as transformers' decode, and
chunks that add up to the whole decode within -60 dB however the frames arrive; a stream without its lookahead is the
control that fails."""

from __future__ import annotations

import pytest
import torch

import inference.musicgen.codec as codec_module
from inference.bench.codec import error_db
from inference.musicgen.codec import CodecStream, FastCodecDecoder, supported


@pytest.fixture(scope="module")
def codec():
    """MusicGen's EnCodec 32 kHz layout (random weights) at a quarter of its widths: the same layers and strides."""
    from transformers import EncodecConfig, EncodecModel

    from inference.bench.musicgen import ENCODEC_32KHZ

    torch.manual_seed(0)
    config = EncodecConfig(**{**ENCODEC_32KHZ, "hidden_size": 32, "num_filters": 16})
    return EncodecModel(config).eval()


@pytest.fixture(scope="module")
def codes():
    return torch.randint(0, 2048, (2, 4, 60), generator=torch.Generator().manual_seed(1))


def streamed(fast, codes, chunks, start=0):
    stream, pieces, position = CodecStream(fast, start), [], 0
    for size in chunks:
        piece = stream.push(codes[:, :, position : position + size])
        position += size
        if piece is not None:
            pieces.append(piece)
    last = stream.push(codes[:, :, position:], final=True)
    return torch.cat(pieces + ([last] if last is not None else []), dim=-1)


def test_the_fast_decoder_is_transformers_decode(codec, codes):
    assert supported(codec) is None
    with torch.inference_mode():
        expected = codec.decode(codes[None], [None]).audio_values
        got = FastCodecDecoder(codec)(codes)
    assert got.shape == expected.shape == (2, 1, 60 * 640)
    assert error_db(got, expected) < -100


@pytest.mark.parametrize("chunks", [[1] * 60, [25, 25], [7, 30, 2, 5], [60]], ids=["frames", "halves", "odd", "one"])
def test_chunks_add_up_to_the_whole_decode(codec, codes, chunks):
    fast = FastCodecDecoder(codec)
    with torch.inference_mode():
        whole = fast(codes)
        assert error_db(streamed(fast, codes, chunks), whole) < -60
        tail = streamed(fast, codes, chunks, start=20)  # a continuation: the prompt's 20 frames are not output
    assert tail.shape[-1] == 40 * 640 and error_db(tail, whole[..., 20 * 640 :]) < -60


def test_a_stream_without_its_lookahead_has_audible_seams(codec, codes, monkeypatch):
    """The control: the upsampling stack's receptive field reaches a frame each way; without that frame a seam is
    wrong, so the -60 dB check above can fail."""
    fast = FastCodecDecoder(codec)
    monkeypatch.setattr(codec_module, "LOOKAHEAD", 0)
    with torch.inference_mode():
        assert error_db(streamed(fast, codes, [10] * 6), fast(codes)) > -60


def test_a_stream_begun_in_inference_mode_finishes_outside_it(codec, codes):
    """The engine pushes frames from its decode loop (inference mode) and finishes the stream from the compute thread
    (not in inference mode): the LSTM state carried between them is an inference tensor. The daemon's streamed
    generate failed there ("Inference tensors cannot be saved for backward"). The control: the LSTM itself, given
    that state outside inference mode, still fails, so the test covers the case that broke."""
    fast = FastCodecDecoder(codec)
    stream = CodecStream(fast)
    with torch.inference_mode():
        stream.push(codes[:, :, :20])
    tail = stream.push(codes[:, :, 20:], final=True)
    assert tail is not None and tail.shape[2] > 0
    with torch.inference_mode():
        state = fast.recurrent(torch.zeros(2, fast.lstm.input_size, 3))[1]
    with pytest.raises(RuntimeError, match="Inference tensors"):
        fast.recurrent(torch.zeros(2, fast.lstm.input_size, 3), state)


def test_an_unknown_codec_is_left_to_transformers(codec):
    from transformers import EncodecConfig, EncodecModel

    causal = EncodecModel(EncodecConfig(**{**codec.config.to_dict(), "use_causal_conv": True}))
    assert "causal" in supported(causal)
    assert supported(torch.nn.Linear(2, 2)) is not None


def test_tiles_join_exactly_and_without_their_halo_they_do_not(codec, codes):
    """FastCodecDecoder runs its last upsamplers in tiles of rows, each with the halo the rest of the stack reads: small
    tiles (many seams) still give transformers' decode. The control: the same tiles without the halo are wrong at
    every seam, so the -100 dB check sees seams."""
    fast = FastCodecDecoder(codec)
    with torch.inference_mode():
        expected = codec.decode(codes[None], [None]).audio_values
        fast.tile(fast.tile_from, 97)
        assert fast.halo[0] > 0 and fast.halo[1] > 0
        assert error_db(fast(codes), expected) < -100
        fast.halo = (0, 0)
        assert error_db(fast(codes), expected) > -60


def test_the_gemm_per_tap_upsampler_is_transformers_decode_too(codec, codes, monkeypatch):
    """The two-tap upsamplers run by Winograd's F(2, 2); a GEMM per tap is the path for other kernels (and the
    reference the Winograd form was measured against): both are transformers' decode."""
    monkeypatch.setattr(codec_module, "WINOGRAD", False)
    with torch.inference_mode():
        expected = codec.decode(codes[None], [None]).audio_values
        assert error_db(FastCodecDecoder(codec)(codes), expected) < -100
