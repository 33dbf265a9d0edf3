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


def three_row_logits(decoder, text_rows: list[bool], steps: int = 8) -> list[torch.Tensor]:
    """decode_rows over rows with or without text (False: a CFG null row, no text token), each row at its own
    position, on a decoder whose caches hold len(text_rows) rows."""
    from inference.musicgen.model import RowPositions

    rows = len(text_rows)
    text = torch.randn(rows, 5, 64, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(rows, 5, dtype=torch.long)
    mask[:, 4] = 0  # a padded token in every row: the mask reaches the kernel
    for row, has_text in enumerate(text_rows):
        if not has_text:
            mask[row] = 0
    memory = decoder.encode_memory(text, mask)
    tokens = torch.randint(64, (rows, 4, steps), generator=torch.Generator().manual_seed(2))
    out = []
    with torch.inference_mode():
        for position in range(steps):
            positions = torch.tensor([max(0, position - row) for row in range(rows)])
            rows_at = RowPositions.build(positions, position, False)
            out.append(decoder.decode_rows(tokens[:, :, position : position + 1], rows_at, position + 1, memory))
    return out


def silent_row_decoder(weights: str, cache: str, rows: int, bias: bool):
    from inference.musicgen.kv_cache import KVCacheMode, build_cache_factory

    decoder = random_fast_decoder(weights, cache)
    args = decoder.args
    decoder.setup_caches(build_cache_factory(KVCacheMode(cache), batch=rows, heads=args.n_head, positions=64,
                                             head_dim=args.head_dim, activation_dtype=torch.float32, device="cpu"))
    if bias:  # MusicGen's projections have none; a model with one: its silent rows still get it
        for index, layer in enumerate(decoder.layers):
            layer.cross_attention.wo.bias = torch.randn(args.dim, generator=torch.Generator().manual_seed(index))
    return decoder


@pytest.mark.parametrize("weights, cache, bias", [("int4", "int8", False), ("int8", "bf16", False),
                                                  ("int4", "fp32", True)])
def test_rows_without_text_skip_the_cross_attention_and_keep_the_bits(weights, cache, bias):
    """The one-call step leaves out the cross-attention of rows whose text memory is zeros (the CFG null rows,
    issue 24) and gets bit for bit the logits of running it for every row: rows [text, none, text, none], so the
    rows that run are not contiguous; with a bias on the output projection too (the silent rows get it)."""
    from inference.musicgen.model import fast_memory
    from inference.runtime.kernels import kernels_status

    if not kernels_status().usable:
        pytest.skip(kernels_status().reason)
    decoder = silent_row_decoder(weights, cache, rows=4, bias=bias)
    text_rows = [True, False, True, False]
    decoder.skip_silent_cross = False
    every_row = three_row_logits(decoder, text_rows)
    decoder.skip_silent_cross = True
    skipping = three_row_logits(decoder, text_rows)
    memory = decoder.encode_memory(torch.randn(4, 5, 64), torch.tensor([[1] * 5, [0] * 5, [1] * 5, [0] * 5]))
    slots, cross_rows = fast_memory(memory, 4)
    assert cross_rows.tolist() == [0, 2] and slots[0].shape[0] == 2  # the path taken: two rows run it
    assert fast_memory(memory, 4, skip_silent=False)[1] is None
    for got, want in zip(skipping, every_row):
        assert torch.equal(got, want)
    decoder.skip_silent_cross = False
    decoder.fast_step = False  # and both are the Python layer loop's logits (to LayerNorm rounding)
    loop = three_row_logits(decoder, text_rows)
    for got, want in zip(skipping, loop):
        assert ((got - want).norm() / want.norm()).item() < 2e-3


def test_every_row_with_text_runs_the_cross_attention():
    """fast_memory marks no row silent when every row has text, and one whose values are not zeros in a single layer
    still runs: the decision is the values', not the mask's."""
    from inference.musicgen.model import fast_memory

    decoder = random_fast_decoder("int8", "int8")
    memory = decoder.encode_memory(torch.randn(2, 5, 64), torch.ones(2, 5, dtype=torch.long))
    assert fast_memory(memory, 2)[1] is None
    memory = decoder.encode_memory(torch.randn(2, 5, 64), torch.tensor([[1] * 5, [0] * 5]))
    assert fast_memory(memory, 2)[1].tolist() == [0]
    keys, values, mask = memory[2]
    values = values.clone()
    values[1, 0, 0, 0] = 1e-30  # one value of the null row, in the last layer
    memory[2] = (keys, values, mask)
    assert fast_memory(memory, 2)[1] is None


def test_skipping_a_row_with_text_would_change_the_logits():
    """Control for the bit test above: the same call told to skip a row whose text memory is not zeros (cross_rows
    leaving it out) gives other logits, so that test would see a wrong skip."""
    from inference.musicgen.model import RowPositions, fast_memory
    from inference.runtime.kernels import kernels_status

    if not kernels_status().usable:
        pytest.skip(kernels_status().reason)
    decoder = random_fast_decoder("int4", "int8")
    memory = decoder.encode_memory(torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(1)),
                                   torch.ones(2, 5, dtype=torch.long))
    x = torch.randn(2, 1, 128, generator=torch.Generator().manual_seed(3))
    params, kinds, caches, slots, cross_rows, vnni = decoder.fast_layers(x, memory)
    assert cross_rows is None
    wrong = [slot if slot is None else slot[:1] for slot in fast_memory(memory, 2, skip_silent=False)[0]]
    rows = RowPositions.build(torch.tensor([0, 0]), 0, True)
    layer = decoder.layers[0]

    def run(slots, cross_rows):
        for cache in caches:
            if cache is not None:
                cache.zero_()
        return torch.ops.continuo_cpu.decode_layers(x, params, kinds, caches, slots, rows.positions, 1, rows.mask,
                                                    layer.attention.scale, decoder.args.n_head, True,
                                                    layer.attention_norm.eps, vnni, cross_rows)

    with torch.inference_mode():
        right = run(slots, None)
        skipped = run(wrong, torch.tensor([0]))
    assert torch.equal(skipped[0], right[0])  # the row that ran keeps its bits
    assert not torch.allclose(skipped[1], right[1], rtol=1e-2, atol=1e-3)


def test_the_step_input_in_one_call_has_the_bits_of_the_torch_ops():
    """embed_rows (decode_layers.cpp) against the expression it replaces: four lookups summed from 0, then the
    position, for every row and codebook, the pad id included; and a control that starts the sum from the position,
    which rounds differently, so the comparison would see a wrong order."""
    from inference.runtime.kernels import kernels_status

    if not kernels_status().usable:
        pytest.skip(kernels_status().reason)
    decoder = random_fast_decoder("int8", "int8")
    generator = torch.Generator().manual_seed(4)
    tokens = torch.randint(65, (6, 4, 1), generator=generator)
    tokens[0, :, 0] = 64  # the pad id (vocab_size): the tables hold vocab_size + 1 rows
    positions = torch.randint(decoder.args.max_positions, (6,), generator=generator)
    tables = [embedding.weight for embedding in decoder.embeddings]
    with torch.inference_mode():
        got = torch.ops.continuo_cpu.embed_rows(tokens, tables, decoder.positions, positions)
        want = sum(embedding(tokens[:, k]) for k, embedding in enumerate(decoder.embeddings))
        want = want + decoder.positions[positions][:, None]
        assert torch.equal(got, want)
        reordered = decoder.positions[positions][:, None]  # the position first: another association
        for k, table in enumerate(tables):
            reordered = reordered + table[tokens[:, k, 0]][:, None]
        assert not torch.equal(reordered, want)
        decoder.fast_step = False
        assert torch.equal(decoder.embed_rows(tokens, positions), want)  # the torch path, off the fast step
        with pytest.raises(RuntimeError, match="outside its table"):
            torch.ops.continuo_cpu.embed_rows(tokens + 100, tables, decoder.positions, positions)


def test_the_step_plan_is_kept_rebuilt_with_its_lists_and_freed():
    """fast_plan keeps one decode plan (decode_layers.cpp) while fast_layers' lists are the same objects, makes a
    new one when the memory list changes and frees the old (its number then refused by name); a step on the plan
    gives the per-call op's logits bit for bit; x of another batch size is refused; a copy holds no plan."""
    import copy

    from inference.musicgen.model import RowPositions
    from inference.runtime.kernels import kernels_status

    if not kernels_status().usable:
        pytest.skip(kernels_status().reason)
    decoder = random_fast_decoder("int4", "int8")
    memory = decoder.encode_memory(torch.randn(2, 5, 64), torch.tensor([[1] * 5, [0] * 5]))
    x = torch.randn(2, 1, 128, generator=torch.Generator().manual_seed(3))
    rows = RowPositions.build(torch.tensor([0, 0]), 0, True)
    ops = torch.ops.continuo_cpu
    with torch.inference_mode():
        fast = decoder.fast_layers(x, memory)
        plan = decoder.fast_plan(fast, 2)
        assert decoder.fast_plan(decoder.fast_layers(x, memory), 2) is plan
        params, kinds, caches, slots, cross_rows, vnni = fast
        layer = decoder.layers[0]
        planned = ops.decode_planned(x, plan.number, rows.positions, 1, rows.mask)
        for cache in caches:
            if cache is not None:
                cache.zero_()
        direct = ops.decode_layers(x, params, kinds, caches, slots, rows.positions, 1, rows.mask,
                                   layer.attention.scale, decoder.args.n_head, True, layer.attention_norm.eps, vnni,
                                   cross_rows)
        assert torch.equal(planned, direct)
        with pytest.raises(RuntimeError, match="the rows the step was set up for"):
            ops.decode_planned(x[:1], plan.number, rows.positions[:1], 1, None)
        other = decoder.encode_memory(torch.randn(2, 5, 64), torch.ones(2, 5, dtype=torch.long))
        rebuilt = decoder.fast_plan(decoder.fast_layers(x, other), 2)
        assert rebuilt is not plan and rebuilt.number != plan.number
        number = plan.number
        del plan, fast
        with pytest.raises(RuntimeError, match=f"no plan {number}"):
            ops.decode_planned(x, number, rows.positions, 1, rows.mask)
        assert ops.decode_planned(x, rebuilt.number, rows.positions, 1, rows.mask).shape == (2, 1, 128)
    assert copy.deepcopy(rebuilt) is None and copy.copy(rebuilt) is None  # a copied decoder makes its own
    assert "_fast_plan" in decoder.__dict__ and decoder.__dict__["_fast_plan"] in decoder.kept_calls()


def test_a_replaced_norm_rebuilds_the_one_call_lists():
    """fast_layers' kept lists follow every module the step reads: a layer's feed-forward norm replaced by another
    module (its weight another tensor) is in the rebuilt lists, while a replaced cache rebuilds the cache slots
    alone (the weight list is kept)."""
    from inference.runtime.kernels import kernels_status

    if not kernels_status().usable:
        pytest.skip(kernels_status().reason)
    decoder = random_fast_decoder("int8", "int8")
    x, memory = torch.zeros(2, 1, 128), [None] * 3
    first = decoder.fast_layers(x, memory)
    old = decoder.layers[1].ffn_norm
    decoder.layers[1].ffn_norm = torch.nn.LayerNorm(128)
    rebuilt = decoder.fast_layers(x, memory)
    assert rebuilt[0] is not first[0]
    assert any(p is not None and p.data_ptr() == decoder.layers[1].ffn_norm.weight.data_ptr() for p in rebuilt[0])
    assert not any(p is not None and p.data_ptr() == old.weight.data_ptr() for p in rebuilt[0])
    decoder.layers[1].attention.kv_cache = decoder.layers[1].attention.kv_cache.row_view(0, 1)
    again = decoder.fast_layers(x, memory)
    assert again[0] is rebuilt[0] and again[2] is not rebuilt[2]
