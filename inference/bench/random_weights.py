"""Random weights for benchmark-sized models, built fast: layers allocated uninitialised, then filled from one pool.

Default initialisation draws every weight of a 2B-parameter pipeline from torch's generator (about 0.9 GB/s
here: 13 s for ACE-Step 1.5 turbo in fp32). `uninitialised_layers` skips it for nn.Linear and nn.Embedding (and
transformers' own init pass); `fill_layers_` then copies slices of one seeded uniform pool into every linear and
embedding, scaled by 1/sqrt(fan_in) as nn.Linear's default would be (about 6 GB/s: memory bandwidth). Other
layers (norms, convolutions, tables drawn with torch.randn) keep their own small initialisation.

Embedding tables are filled only in the rows a tokenizer can emit (`rows`): the rest stay untouched, so the
operating system never backs them with memory (a 151669-row Qwen3 table read through a byte-level tokenizer
is 621 MB of which 1 MB is ever read). Weights are noise: a model built here never makes music.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

POOL_VALUES = 1 << 24  # 64 MB of uniform(-1, 1) values, reused with a moving offset


@contextmanager
def uninitialised_layers() -> Iterator[None]:
    """nn.Linear / nn.Embedding built without drawing their weights (and transformers' init_weights skipped)."""
    patched = [(nn.Linear, "reset_parameters"), (nn.Embedding, "reset_parameters")]
    try:
        from transformers import PreTrainedModel

        patched.append((PreTrainedModel, "init_weights"))
    except ImportError:  # transformers is a dependency; without it there is no init pass to skip
        pass
    originals = [(owner, name, owner.__dict__[name]) for owner, name in patched]
    try:
        for owner, name, _ in originals:
            setattr(owner, name, lambda self, *args, **kwargs: None)
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


class Pool:
    """Slices of one seeded uniform(-1, 1) tensor, handed out at a moving offset."""

    def __init__(self, seed: int, size: int = POOL_VALUES):
        generator = torch.Generator().manual_seed(seed)
        self.values = torch.empty(size).uniform_(-1.0, 1.0, generator=generator)
        self.offset = 0

    def fill_(self, target: torch.Tensor, scale: float) -> None:
        flat = target.view(-1)
        done = 0
        while done < flat.numel():
            count = min(flat.numel() - done, self.values.numel() - self.offset)
            torch.mul(self.values[self.offset:self.offset + count], scale,
                      out=flat[done:done + count].view(-1))
            done += count
            self.offset = (self.offset + count) % self.values.numel()
        self.offset = (self.offset + 4099) % self.values.numel()  # the next tensor starts elsewhere


@torch.no_grad()
def fill_layers_(module: nn.Module, *, seed: int = 0, rows: int | None = None, embedding_scale: float = 0.05) -> None:
    """Fill every nn.Linear (uniform, bound 1/sqrt(in_features), bias 0) and nn.Embedding (the first `rows` rows
    only, uniform with bound embedding_scale) below module from one pool seeded by seed."""
    pool = Pool(seed)
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            pool.fill_(layer.weight.data, 1.0 / math.sqrt(layer.in_features))
            if layer.bias is not None:
                layer.bias.data.zero_()
        elif isinstance(layer, nn.Embedding):
            used = layer.weight.data[: rows if rows is not None else layer.num_embeddings]
            pool.fill_(used, embedding_scale)
