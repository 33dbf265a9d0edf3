"""ModelArgs name table and the name-mapped loading of Hugging Face decoder weights."""

from __future__ import annotations

import pytest
import torch

from inference.musicgen.model import ModelArgs, MusicGenDecoder, build_decoder


def parameters(args: ModelArgs) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in MusicGenDecoder(args).parameters())


@pytest.mark.parametrize("name, low, high", [("musicgen-small", 400e6, 450e6),
                                             ("facebook/musicgen-medium", 1.75e9, 1.9e9),
                                             ("musicgen-large", 3.1e9, 3.5e9)])
def test_named_shapes_have_the_published_sizes(name, low, high):
    """Decoder incl. cross-attention: small 420M, medium 1.84B ("1.5B" counts no cross-attention), large 3.26B."""
    assert low <= parameters(ModelArgs.from_name(name)) <= high


def test_stereo_shapes_have_eight_codebooks():
    args = ModelArgs.from_name("musicgen-stereo-small")
    assert (args.num_codebooks, args.audio_channels) == (8, 2)


def test_unknown_shape_names_the_known_ones():
    with pytest.raises(ValueError, match="musicgen-small"):
        ModelArgs.from_name("musicgen-huge")


def test_weights_map_by_name_and_a_missing_one_is_named(tiny_model_dir):
    from transformers import MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model_dir)
    args = ModelArgs.from_hf_config(model.config.decoder, text_dim=model.config.text_encoder.hidden_size)
    assert args == ModelArgs.from_name("tiny")
    state = {name: t for name, t in model.state_dict().items() if name.startswith(("decoder.", "enc_to_dec_proj."))}
    decoder = build_decoder(args, state)
    hf_q = state["decoder.model.decoder.layers.1.self_attn.k_proj.weight"]
    assert torch.equal(decoder.layers[1].attention.wqkv.weight[args.dim : 2 * args.dim], hf_q)  # fused q|k|v
    del state["decoder.lm_heads.3.weight"]
    with pytest.raises(ValueError, match="heads.3.weight"):
        build_decoder(args, state)
