"""The LM heads on our kernels (MusicGenDecoder.head_logits, quantize.fuse_rows): four heads of one quantized kind
run as one kernel call whose logits match the dequantized weights, bit for bit what each head gives alone, with no
weight byte held twice."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inference.musicgen.model import ModelArgs, MusicGenDecoder
from inference.runtime import kernels
from inference.runtime.quantize import Int4Linear, int4_unpack, kept_linear

needs_kernels = pytest.mark.skipif(not kernels.kernels_status().usable, reason="our CPU kernels cannot be built here")


def decoder_with_heads(kind: str) -> MusicGenDecoder:
    torch.manual_seed(0)
    args = ModelArgs(dim=256, n_layer=1, n_head=4, ffn_dim=256, vocab_size=2048, text_dim=16, max_positions=64)
    decoder = MusicGenDecoder(args).eval()
    with torch.no_grad():
        decoder.norm.weight.uniform_(0.5, 1.5)
        decoder.norm.bias.normal_(0, 0.1)
    for index, head in enumerate(list(decoder.heads)):
        decoder.heads[index] = kept_linear(head, kind)
    return decoder


def dequantized(head) -> torch.Tensor:
    if isinstance(head, Int4Linear):
        return int4_unpack(head.packed, head.scales)
    return head.codes.float() * head.scales[:, None]


@needs_kernels
@pytest.mark.parametrize("kind", ["int8", "int4"])
@pytest.mark.parametrize("positions", [1, 5])  # a decode step, and teacher forcing's many positions
def test_quantized_heads_run_fused_and_match_the_dequantized_heads(kind, positions):
    decoder = decoder_with_heads(kind)
    x = torch.randn(2, positions, 256) * 3
    with torch.inference_mode():
        logits = decoder.head_logits(x)
        normed = decoder.norm(x)
        alone = torch.stack([head(normed) for head in decoder.heads], dim=1)
    assert decoder.fused_heads() is not None and logits.shape == (2, 4, positions, 2048) and logits.is_contiguous()
    assert torch.equal(logits, alone)  # the fused call gives each head's own bits
    reference = torch.stack([F.linear(normed, dequantized(head)) for head in decoder.heads], dim=1)
    error = ((logits - reference).norm() / reference.norm()).item()
    assert error < 0.02  # the activations rounded to int8 per row (VNNI); the weights are the reference's
    swapped = reference[:, [1, 0, 2, 3]]  # control: two heads' rows fused in the wrong order would show
    assert ((logits - swapped).norm() / swapped.norm()).item() > 0.5


@needs_kernels
@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_fused_heads_hold_no_byte_twice(kind):
    decoder = decoder_with_heads(kind)
    fused = decoder.fused_heads()
    name = "codes" if kind == "int8" else "packed"
    base = getattr(fused, name)
    for head in decoder.heads:
        part = getattr(head, name)
        assert part.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()
    replaced = kept_linear(torch.nn.Linear(256, 2048, bias=False), kind)
    decoder.heads[2] = replaced  # another head module: the fused call is built again from the new modules
    assert decoder.fused_heads() is not fused
    assert getattr(replaced, name).untyped_storage().data_ptr() == getattr(
        decoder.fused_heads(), name).untyped_storage().data_ptr()


@needs_kernels
def test_heads_of_mixed_kinds_run_one_by_one():
    decoder = decoder_with_heads("int8")
    decoder.heads[0] = kept_linear(torch.nn.Linear(256, 2048, bias=False), "int4")
    assert decoder.fused_heads() is None
    with torch.inference_mode():
        assert decoder.head_logits(torch.randn(2, 1, 256)).shape == (2, 4, 1, 2048)
