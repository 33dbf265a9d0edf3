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


def random_fast_decoder(weights: str, cache: str, args: ModelArgs = ModelArgs(dim=128, n_layer=3, n_head=2,
                                                                             ffn_dim=256, vocab_size=64, text_dim=64)):
    """A random decoder of head size 64 quantised to weights, fused attention, caches of mode cache for 2 rows."""
    from inference.musicgen.kv_cache import KVCacheMode, build_cache_factory
    from inference.musicgen.model import sinusoids
    from inference.runtime.quantize import INT8_KEEP, quantize_int4_cpu_, quantize_int8_cpu_

    torch.manual_seed(0)
    decoder = MusicGenDecoder(args).eval()
    decoder.positions = sinusoids(args.max_positions, args.dim)
    decoder = (quantize_int4_cpu_ if weights == "int4" else quantize_int8_cpu_)(decoder, keep=INT8_KEEP)
    decoder.set_attention_backend("fused-cpu")
    decoder.setup_caches(build_cache_factory(KVCacheMode(cache), batch=2, heads=args.n_head, positions=64,
                                             head_dim=args.head_dim, activation_dtype=torch.float32, device="cpu"))
    return decoder


def step_logits(decoder, fast: bool, steps: int = 12) -> list[torch.Tensor]:
    from inference.musicgen.model import RowPositions

    decoder.fast_step = fast
    text, mask = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(1)), torch.ones(2, 5, dtype=torch.long)
    mask[1] = 0  # the CFG null row
    memory = decoder.encode_memory(text, mask)
    tokens = torch.randint(64, (2, 4, steps), generator=torch.Generator().manual_seed(2))
    out = []
    with torch.inference_mode():
        for position in range(steps):
            positions = torch.tensor([position, max(0, position - 3)])  # rows at their own positions: masked
            rows = RowPositions.build(positions, position, bool(positions[0] == positions[1]))
            out.append(decoder.decode_rows(tokens[:, :, position : position + 1], rows, position + 1, memory))
    return out


@pytest.mark.parametrize("weights, cache", [("int4", "int8"), ("int8", "int8"), ("int4", "fp32"), ("int8", "bf16")])
def test_the_one_call_step_equals_the_python_layer_loop(weights, cache):
    """decode_layers.cpp (every layer in one C++ call) against the Python layer loop it replaces: the same logits to
    LayerNorm rounding, rows at their own positions, cross-attention with a null row; and it is the path taken."""
    from inference.runtime.kernels import kernels_status

    if not kernels_status().usable:
        pytest.skip(kernels_status().reason)
    decoder = random_fast_decoder(weights, cache)
    slow = step_logits(decoder, fast=False)
    x = torch.zeros(2, 1, 128)
    assert decoder.fast_layers(x, [None] * 3) is None  # fast_step is off: the loop ran
    fast = step_logits(decoder, fast=True)
    assert decoder.fast_layers(x, [None] * 3) is not None
    for got, want in zip(fast, slow):
        assert ((got - want).norm() / want.norm()).item() < 2e-3
    decoder.layers[1].ffn.w1 = torch.nn.Linear(128, 256, bias=False)  # a layer off the fast path: the loop runs
    assert decoder.fast_layers(x, [None] * 3) is None


def test_the_one_call_lists_are_kept_until_a_cache_or_the_memory_changes():
    """fast_layers keeps its argument lists between steps (issue 24: rebuilt, they cost 0.3-0.5 ms a step) and
    rebuilds each when what it came from is replaced: a layer's cache (a row view, new caches) or the memory list."""
    from inference.musicgen.kv_cache import KVCacheMode, build_cache_factory
    from inference.runtime.kernels import kernels_status

    if not kernels_status().usable:
        pytest.skip(kernels_status().reason)
    decoder = random_fast_decoder("int8", "int8")
    x, memory = torch.zeros(2, 1, 128), [None] * 3
    first = decoder.fast_layers(x, memory)
    again = decoder.fast_layers(x, memory)
    assert again[0] is first[0] and again[2] is first[2] and again[3] is first[3]  # kept
    assert decoder.fast_layers(x, [None] * 3)[3] is not first[3]  # another memory list: rebuilt
    view = decoder.layers[1].attention.kv_cache.row_view(0, 1)
    decoder.layers[1].attention.kv_cache = view
    assert decoder.fast_layers(x, memory)[2][4] is view.k_codes  # layer 1's first slot: the view's own codes
    decoder.setup_caches(build_cache_factory(KVCacheMode("fp32"), batch=2, heads=2, positions=64, head_dim=64,
                                             activation_dtype=torch.float32, device="cpu"))
    caches = decoder.fast_layers(x, memory)[2]
    assert caches[0] is decoder.layers[0].attention.kv_cache.k_cache and caches[2] is None  # fp32: no scales


def test_the_parity_check_sees_a_wrong_activation():
    """Control for the parity test above: decode_layers' own GELU (decode_layers.cpp: gelu_inplace) swapped for ReLU
    moves the logits far past its 2e-3, so that test would catch a wrong activation kernel."""
    import dataclasses

    from inference.runtime.kernels import kernels_status

    if not kernels_status().usable:
        pytest.skip(kernels_status().reason)
    decoder = random_fast_decoder("int8", "bf16")
    slow = step_logits(decoder, fast=False)
    decoder.args = dataclasses.replace(decoder.args, activation="relu")  # the C++ call's flag; the loop keeps GELU
    fast = step_logits(decoder, fast=True)
    assert max(((got - want).norm() / want.norm()).item() for got, want in zip(fast, slow)) > 2e-2


def test_medium_widths_take_the_int4_one_call_step():
    """musicgen-medium's widths (dim 1536, 24 heads, ffn 6144; one layer): every linear int4 and the one-call step
    taken, so a shape falling off the fast path (issue 24's medium int4 row was suspected of it) fails here."""
    from inference.runtime.kernels import kernels_status
    from inference.runtime.quantize import Int4Linear

    if not kernels_status().usable:
        pytest.skip(kernels_status().reason)
    args = ModelArgs(dim=1536, n_layer=1, n_head=24, ffn_dim=6144, vocab_size=64, text_dim=64)
    decoder = random_fast_decoder("int4", "int8", args)
    layer = decoder.layers[0]
    for linear in (layer.attention.wqkv, layer.attention.wo, layer.cross_attention.wq, layer.cross_attention.wo,
                   layer.ffn.w1, layer.ffn.w2):
        assert isinstance(linear, Int4Linear)
    logits = step_logits(decoder, fast=True, steps=2)
    assert decoder.fast_weights_built() and torch.isfinite(logits[-1]).all()
